"""Search progress: one updating line on a terminal, plain lines otherwise."""

from __future__ import annotations

import time
from typing import TextIO


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def format_status(s: dict) -> str:
    """`12 done, 2 running, 1 failed | 0.0123/0.0200 device-h | best 97.50% | front 4 | ~1m20s left`."""
    budget = f"{s['spent_h']:.4f}/{s['budget_h']:.4f} device-h" if s.get("budget_h") else f"{s['spent_h']:.4f} device-h"
    best = f"best {s['best']:.2f}%" if s.get("best") is not None else "best -"
    return (f"{s['done']} done, {s['running']} running, {s['failed']} failed | {budget} | {best} | "
            f"front {s['front']} | ~{_duration(s.get('eta_s'))} left")


class Progress:
    """Writes status lines; on a terminal it rewrites one line in place."""

    def __init__(self, out: TextIO, total_h: float | None = None, min_interval: float = 0.5):
        self.out, self.total_h = out, total_h
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.min_interval, self.last = min_interval, 0.0

    def update(self, status: dict, final_line: bool = False) -> None:
        now = time.monotonic()
        if not final_line and now - self.last < self.min_interval:
            return
        self.last = now
        line = format_status(status)
        if self.tty:
            self.out.write("\r\033[K" + line)
        elif final_line:  # plain output: one line per finished child, nothing for starts
            self.out.write(line + "\n")
        self.out.flush()

    def close(self, status: dict) -> None:
        if self.tty:
            self.out.write("\r\033[K" + format_status(status) + "\n")
            self.out.flush()
