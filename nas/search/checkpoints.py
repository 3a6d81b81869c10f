"""Which checkpoints a search keeps with --keep-checkpoints pareto: those of the current Pareto set.

The set is held in memory, seeded from the store once when the search starts or resumes; each
finished child then costs one comparison against the set and one store write per checkpoint
that leaves it (re-reading every trial after every child made pruning quadratic in the run's size).
"""

from __future__ import annotations

from pathlib import Path

from nas.objectives import objective_vector
from nas.store.run_store import RunStore


def dominates(a: list[float], b: list[float]) -> bool:
    """Whether a is no worse than b everywhere and better somewhere (all objectives minimised)."""
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


class CheckpointFront:
    """The kept checkpoints: trial id -> (objective point, checkpoint path), all mutually non-dominated."""

    def __init__(self, store: RunStore, objectives: tuple[str, ...]):
        self.store, self.objectives = store, tuple(objectives)
        self.kept: dict[int, tuple[list[float], str]] = {}
        for t in store.trials():  # the only full read: a resumed run's kept checkpoints
            if t.ok and t.checkpoint:
                self.add(t.trial_id, t.metrics, t.checkpoint)

    def add(self, trial_id: int, metrics: dict, checkpoint: str | None) -> None:
        """Consider a finished child's checkpoint: keep it if on the front, drop what it dominates."""
        if not checkpoint:
            return
        point = objective_vector(metrics, self.objectives)
        if point is None or any(dominates(p, point) for p, _ in self.kept.values()):
            self._drop(trial_id, checkpoint)
            return
        for other in [i for i, (p, _) in self.kept.items() if dominates(point, p)]:
            self._drop(other, self.kept.pop(other)[1])
        self.kept[trial_id] = (point, checkpoint)

    def _drop(self, trial_id: int, checkpoint: str) -> None:
        Path(checkpoint).unlink(missing_ok=True)
        self.store.set_checkpoint(trial_id, None)
