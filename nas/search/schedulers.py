"""Multi-fidelity early stopping that respects several objectives (ASHA with Pareto ranks)."""

from __future__ import annotations

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from nas.objectives import objective_vector
from nas.pareto import crowding_distance, non_dominated_ranks


def keeps(points: np.ndarray, index: int, eta: int) -> bool:
    """Whether point `index` is in the best 1/eta of points, ordered by Pareto rank then crowding."""
    ranks = non_dominated_ranks(points)
    order_key = np.zeros(len(points))
    for r in np.unique(ranks):
        members = np.flatnonzero(ranks == r)
        crowd = crowding_distance(points[members])
        # larger crowding first within a front: a finite key that sorts infinities first
        order_key[members] = -np.where(np.isinf(crowd), 1e300, crowd)
    order = np.lexsort((order_key, ranks))
    keep = max(1, len(points) // eta)
    return index in set(order[:keep].tolist())


class ParetoASHA(FIFOScheduler):
    """Asynchronous successive halving whose rungs compare children by non-dominated rank.

    A child reporting at rung epoch r (1, eta, eta^2, ... below max_t) continues only when its
    (accuracy, macs, ...) point is in the best 1/eta of the points recorded at that rung so far,
    so a small network is not stopped merely for being less accurate than a huge one.
    """

    def __init__(self, max_t: int, objectives: tuple[str, ...] = ("accuracy",), grace: int = 1, eta: int = 3):
        super().__init__()
        if eta < 2 or grace < 1:
            raise ValueError(f"ParetoASHA needs eta >= 2 and grace >= 1 (got {eta}, {grace})")
        self.objectives, self.eta = tuple(objectives), eta
        self.rungs: dict[int, list[list[float]]] = {}
        r = grace
        while r < max_t:
            self.rungs[r] = []
            r *= eta

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # the objectives are our own; Tune's single metric is not used for ranking

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        epoch = result.get("epoch")
        if result.get("final") or epoch not in self.rungs:
            return TrialScheduler.CONTINUE
        point = objective_vector(result, self.objectives)
        if point is None:
            return TrialScheduler.STOP
        recorded = self.rungs[epoch]
        recorded.append(point)
        if len(recorded) < self.eta:
            return TrialScheduler.CONTINUE
        return TrialScheduler.CONTINUE if keeps(np.array(recorded), len(recorded) - 1, self.eta) else TrialScheduler.STOP
