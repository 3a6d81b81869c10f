"""Regularized (aging) evolution, Real et al. 2019, with a multi-objective selection option."""

from __future__ import annotations

from collections import deque

import numpy as np

from nas.controllers.base import Controller, register_controller
from nas.pareto import crowding_distance, non_dominated_ranks


@register_controller("evolution")
class RegularizedEvolution(Controller):
    """Fill a population at random, then mutate the best of a random tournament; the oldest dies.

    With several objectives the tournament winner is the one with the lowest non-dominated rank
    (within the tournament), ties broken by the largest crowding distance (NSGA-II's order).
    """

    def __init__(self, space, *, population: int = 20, tournament: int = 5, **kwargs):
        super().__init__(space, **kwargs)
        if population < 2 or not 1 <= tournament <= population:
            raise ValueError(f"need population >= 2 and 1 <= tournament <= population (got {population}, {tournament})")
        self.population_size, self.tournament = population, tournament
        self.population: deque[int] = deque()  # indices into history, oldest first
        self.seen: set[tuple[int, ...]] = set()

    def propose(self) -> list[int]:
        if len(self.population) < self.population_size:
            return self._fresh(self.sample_within_limits)
        picks = self.rng.choice(len(self.population), size=self.tournament, replace=False)
        parent = self.history[self._best([self.population[i] for i in picks])]
        return self._fresh(lambda: self.space.mutate_values(parent.values, self.rng), fallback=parent.values)

    def _fresh(self, make, fallback=None) -> list[int]:
        """A candidate within limits, preferring one not evaluated yet (a few tries, no more)."""
        candidate = None
        for _ in range(50):
            candidate = make()
            if (fallback is None or self.within_limits(candidate)) and tuple(candidate) not in self.seen:
                return candidate
        if candidate is not None and (fallback is None or self.within_limits(candidate)):
            return candidate
        return list(fallback)

    def _best(self, members: list[int]) -> int:
        points = np.array([self.history[m].objectives for m in members])
        if points.shape[1] == 1:
            return members[int(np.argmin(points[:, 0]))]
        ranks = non_dominated_ranks(points)
        top = np.flatnonzero(ranks == ranks.min())
        crowd = crowding_distance(points[top])
        return members[int(top[int(np.argmax(crowd))])]

    def observe(self, obs) -> None:
        self.seen.add(tuple(obs.values))
        if obs.objectives is None:
            return  # a failed child never becomes a parent
        self.population.append(len(self.history) - 1)
        if len(self.population) > self.population_size:
            self.population.popleft()

    def extra_state(self) -> dict:
        return {"population": list(self.population)}

    def load_extra_state(self, state: dict) -> None:
        self.population = deque(state.get("population", []))
        self.seen = {tuple(o.values) for o in self.history}
