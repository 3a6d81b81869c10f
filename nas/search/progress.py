"""Search progress: a tqdm budget bar on a terminal, plain lines (start, each finished child) otherwise."""

from __future__ import annotations

from typing import TextIO

from tqdm import tqdm


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def eta_seconds(s: dict, total_trials: int | None = None, slots: int | None = None,
                devices_per_trial: float = 1.0) -> float | None:
    """Wall seconds left: the budget left over the slots, at the mean cost of the finished children.

    None until a child has finished (nothing to measure a child's cost by) and without a budget.
    """
    finished = s["done"] + s["failed"]
    if finished <= 0:
        return None
    spent_s = s["spent_h"] * 3600
    lanes = max(1, slots or s["running"]) * max(devices_per_trial, 1e-9)  # device-seconds per wall second
    if s.get("budget_h"):
        return max(0.0, s["budget_h"] * 3600 - spent_s) / lanes
    if total_trials:
        return max(0, total_trials - finished) * (spent_s / finished) / lanes
    return None


def budget_text(s: dict, total_trials: int | None = None) -> str:
    """`0.0123/0.0200 device-h (62%)`, `3/20 trials, 0.0123 device-h`, or the device-hours alone."""
    if s.get("budget_h"):
        return f"{s['spent_h']:.4f}/{s['budget_h']:.4f} device-h ({s['spent_h'] / s['budget_h']:.0%})"
    if total_trials:
        return f"{s['done'] + s['failed']}/{total_trials} trials, {s['spent_h']:.4f} device-h"
    return f"{s['spent_h']:.4f} device-h"


def format_status(s: dict, total_trials: int | None = None, eta_s: float | None = None) -> str:
    """`12 done, 2 running, 1 failed | 0.0123/0.0200 device-h (62%) | best 97.50% | front 4 | ETA 1m20s`."""
    best = f"best {s['best']:.2f}%" if s.get("best") is not None else "best -"
    return (f"{s['done']} done, {s['running']} running, {s['failed']} failed | {budget_text(s, total_trials)} | "
            f"{best} | front {s['front']} | ETA {_duration(eta_s)}")


class Progress:
    """The search's progress: a tqdm bar of the budget on a terminal; plain lines otherwise.

    The searcher calls `update(status)` when a child starts, `update(status, final_line=True)` when
    one finishes and `close(status)` at the end; status holds done, running, failed, spent_h,
    budget_h, best and front.
    """

    def __init__(self, out: TextIO, total_h: float | None = None, min_interval: float = 0.5, *,
                 total_trials: int | None = None, slots: int | None = None, devices_per_trial: float = 1.0):
        self.out, self.total_h = out, total_h
        self.total_trials = None if total_h else total_trials  # the bar follows the device-hour budget when both
        self.slots, self.devices_per_trial = slots, devices_per_trial
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.min_interval = min_interval
        self.started = False
        self.bar: tqdm | None = None

    def _bar(self) -> tqdm:
        if self.bar is None:
            total = self.total_h or self.total_trials or None
            unit = "device-h" if self.total_h else "trials"
            fmt = ("{percentage:3.0f}%|{bar}| {postfix}" if total else "{postfix}")
            # tqdm's own rate and ETA would count bar updates; ours comes from the finished children
            self.bar = tqdm(total=total, file=self.out, unit=unit, bar_format=fmt, mininterval=self.min_interval,
                            dynamic_ncols=True, leave=True)
        return self.bar

    def line(self, status: dict) -> str:
        """The status as one line of text."""
        return format_status(status, self.total_trials, self.eta(status))

    def eta(self, status: dict) -> float | None:
        """Wall seconds left, or None ("-") before a child has finished."""
        return eta_seconds({**status, "budget_h": self.total_h or status.get("budget_h")}, self.total_trials,
                           self.slots, self.devices_per_trial)

    def update(self, status: dict, final_line: bool = False) -> None:
        if not self.tty:
            if final_line or not self.started:  # plain output: one line at start, one per finished child
                self.out.write(self.line(status) + "\n")
                self.out.flush()
            self.started = True
            return
        self.started = True
        bar = self._bar()
        bar.n = self._position(status)
        bar.set_postfix_str(self.line(status), refresh=False)
        if final_line:
            bar.refresh()
        else:
            bar.update(0)  # redraws only when min_interval has passed

    def _position(self, status: dict) -> float:
        if self.total_h:
            return min(status["spent_h"], self.total_h)  # an overspent run shows a full bar, not past it
        if self.total_trials:
            return min(status["done"] + status["failed"], self.total_trials)
        return status["done"] + status["failed"]

    def close(self, status: dict) -> None:
        if not self.tty:
            return
        bar = self._bar()
        bar.n = self._position(status)
        bar.set_postfix_str(self.line(status), refresh=False)
        bar.close()
        self.bar = None

