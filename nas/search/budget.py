"""The device-hour and trial budget of a search: what is spent, and whether another child fits."""

from __future__ import annotations

import math

import numpy as np

from nas.search.settings import SearchSettings


class Budget:
    """Device-seconds spent, and whether another child fits in what is left.

    Running children are charged their predicted cost (a least-squares fit of device-seconds on
    multiply-adds over the finished ones) less what they have used; a new child is charged the
    mean cost. A child starts when the projected total stays within half a child of the budget.
    """

    def __init__(self, settings: SearchSettings, spent_s: float, started: int):
        self.limit_s = settings.budget_gpu_hours * 3600 if settings.budget_gpu_hours else math.inf
        self.max_trials = settings.budget_trials or math.inf
        self.spent_s, self.started = spent_s, started
        self.costs: list[tuple[float, float]] = []  # (macs, device-seconds) of finished children

    def estimate(self) -> float | None:
        """Expected device-seconds of a child not chosen yet."""
        return float(np.mean([c for _, c in self.costs])) if self.costs else None

    def predict(self, macs: float) -> float:
        """Expected device-seconds of a child with this many multiply-adds."""
        x = np.array([m for m, _ in self.costs], float)
        y = np.array([c for _, c in self.costs], float)
        if len(self.costs) < 3 or np.ptp(x) == 0:
            return float(np.mean(y))
        slope, intercept = np.polyfit(x, y, 1)
        return float(max(slope, 0.0) * macs + max(intercept, 0.0)) if slope > 0 else float(np.mean(y))

    def allows(self, running: list[tuple[float, float]]) -> bool:
        """running: (macs, device-seconds used so far) of each child in flight."""
        if self.started >= self.max_trials:
            return False
        if self.limit_s == math.inf:
            return True
        est = self.estimate()
        if est is None:  # nothing finished yet: the first wave runs to learn the cost
            return self.spent_s < self.limit_s
        committed = sum(max(self.predict(m) - used, 0.0) for m, used in running)
        return self.spent_s + committed + est <= self.limit_s + 0.5 * est

    def record(self, device_s: float, macs: float = 0.0) -> None:
        self.spent_s += device_s
        self.costs.append((float(macs), float(device_s)))
