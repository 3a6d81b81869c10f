"""Weight-sharing search (``weight-sharing``): one supernet, many children, the winners from scratch.

A search in three phases (nas.oneshot.phases runs the first two for ``nas search``):

1. train one supernet whose weights every child of the space shares (nas.oneshot.supernet);
2. ``score_children``: an inner controller (``search``: evolution by default, or rl, random,
   tpe, nsga2) searches over the children's *inherited-weight* validation accuracy and analytic
   multiply-adds, ``children`` asks in one process, under the same limits as every controller;
3. the retrain queue: the best ``retrain`` distinct children of that search by non-dominated rank
   (front 0 first, then front 1, ...; ties by inherited accuracy) are proposed to ``ask`` one after
   another and trained from scratch as ordinary trials. When the queue is empty, ``ask`` raises
   ``Exhausted`` and the search ends.

``annotations(values)`` gives a queued child's inherited metrics (``inherited_val_acc``,
``inherited_val_loss``), which the search records beside its stand-alone result, so the report
shows both and the rank correlation between them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nas.controllers.base import (
    CONTROLLERS,
    Controller,
    Exhausted,
    make_controller,
    objective_vector,
    register_controller,
)
from nas.pareto import non_dominated_ranks
from nas.phase import Phase

SUPERNET_FILE = "supernet.pt"  # in the run folder; nas export --from-supernet reads it
RULES = ("spos", "sandwich")  # how the supernet samples children per step; nas.oneshot.training implements them


@register_controller("weight-sharing")
class WeightSharingController(Controller):
    """Score many children with inherited weights, then propose the best of them for training from scratch."""

    tabular = False

    def __init__(self, space, *, search: str = "evolution", children: int = 1000, retrain: int = 8,
                 supernet_epochs: int = 100, rule: str = "spos", supernet_lr: float | None = None,
                 calib_batches: int = 4, workers: int | None = None, search_options: dict | None = None, **kwargs):
        super().__init__(space, **kwargs)
        if search == self.name or search not in CONTROLLERS:
            known = ", ".join(sorted(n for n in CONTROLLERS if n != self.name))
            raise ValueError(f"search must name the controller that searches over inherited accuracy ({known}), got {search!r}")
        for key, value in (("children", children), ("retrain", retrain), ("supernet_epochs", supernet_epochs),
                           ("calib_batches", calib_batches), ("workers", 1 if workers is None else workers)):
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if rule not in RULES:
            raise ValueError(f"rule must be spos (one random child per step) or sandwich (largest, smallest and a "
                             f"random child per step), got {rule!r}")
        if supernet_lr is not None and not (isinstance(supernet_lr, (int, float)) and supernet_lr > 0):
            raise ValueError(f"supernet_lr must be > 0 (or omitted for the search's --lr), got {supernet_lr!r}")
        if search_options is not None and not isinstance(search_options, dict):
            raise ValueError(f"search_options must be a mapping of the inner controller's settings, got {search_options!r}")
        self.search, self.children, self.retrain = search, children, retrain
        self.supernet_epochs, self.rule, self.supernet_lr = supernet_epochs, rule, supernet_lr
        self.calib_batches, self.workers = calib_batches, workers
        self.search_options = dict(search_options or {})
        self.inner()  # fail fast on a bad inner setting
        self.queue: list[list[int]] | None = None  # None until score_children has run
        self.scores: dict[tuple[int, ...], dict] = {}  # inherited metrics of the queued children

    def inner(self) -> Controller:
        """A fresh inner controller with this one's seed, objectives and limits."""
        return make_controller(self.search, self.space, seed=self.seed, objectives=self.objectives,
                               max_macs=self.max_macs, max_params=self.max_params, **self.search_options)

    def phases(self) -> list[Phase]:
        """Train the supernet, then score children with its weights (nas.oneshot.phases runs both)."""
        return [Phase("supernet", "nas.oneshot.phases:train_supernet_phase", output=SUPERNET_FILE),
                Phase("inherited_search", "nas.oneshot.phases:inherited_search_phase")]

    @property
    def planned(self) -> bool:
        """Whether the children have been scored and the retrain queue is set."""
        return self.queue is not None

    def score_children(self, evaluate: Callable[[list[int]], dict | None]) -> list[tuple[list[int], dict | None]]:
        """Run the inner search with ``evaluate(values) -> metrics`` (None: failed); set the retrain queue.

        Each distinct child is evaluated once (a repeat is told the same metrics). Returns every
        distinct child with its metrics, in the order first asked.
        """
        inner, scored = self.inner(), {}
        for _ in range(self.children):
            p = inner.ask()
            key = tuple(p.values)
            if key not in scored:
                scored[key] = evaluate(list(p.values))
            inner.tell(p.trial_id, scored[key])
        self.plan_retrain(scored)
        return [(list(k), m) for k, m in scored.items()]

    def plan_retrain(self, scored: dict[tuple[int, ...], dict | None]) -> None:
        """Queue the best ``retrain`` children by non-dominated rank, then inherited accuracy."""
        keys, points = [], []
        for key, metrics in scored.items():
            point = objective_vector(metrics, self.objectives) if metrics else None
            if point is not None:
                keys.append(key)
                points.append(point)
        order: list[int] = []
        if points:
            pts = np.array(points)
            ranks = non_dominated_ranks(pts)
            order = sorted(range(len(keys)), key=lambda i: (ranks[i], pts[i, 0], i))[: self.retrain]
        self.queue = [list(keys[i]) for i in order]
        self.scores = {keys[i]: scored[keys[i]] for i in order}

    def propose(self) -> list[int]:
        if self.queue is None:
            raise RuntimeError("weight-sharing: no child has been scored yet; call score_children(evaluate) first "
                               "(nas search does, after training the supernet)")
        if not self.queue:
            raise Exhausted(f"weight-sharing: all {len(self.scores)} children chosen with inherited weights were proposed")
        return self.queue.pop(0)

    def annotations(self, values: list[int]) -> dict:
        metrics = self.scores.get(tuple(values)) or {}
        return {f"inherited_{k}": v for k, v in metrics.items() if k in ("val_acc", "val_loss")}

    def extra_state(self) -> dict:
        return {"queue": self.queue, "scores": [[list(k), m] for k, m in self.scores.items()]}

    def load_extra_state(self, state: dict) -> None:
        queue = state.get("queue")
        self.queue = None if queue is None else [list(v) for v in queue]
        self.scores = {tuple(k): m for k, m in state.get("scores", [])}
