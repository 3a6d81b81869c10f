"""The search's progress display: plain lines off a terminal, a tqdm bar on one, an honest ETA."""

from __future__ import annotations

import io

import pytest

from nas.search.progress import Progress, eta_seconds, format_status


def status(done=0, running=0, failed=0, spent_h=0.0, budget_h=None, best=None, front=0) -> dict:
    """The dict ControllerSearcher._status() passes (eta_s, the searcher's own guess, is not used)."""
    return {"done": done, "running": running, "failed": failed, "spent_h": spent_h, "budget_h": budget_h,
            "best": best, "front": front, "eta_s": 179_880.0}


def test_plain_lines_at_start_and_at_each_finished_child():
    out = io.StringIO()
    p = Progress(out, total_h=50.0, slots=4)
    p.update(status(running=1, budget_h=50.0))  # the first start: one line
    p.update(status(running=2, budget_h=50.0))  # later starts: nothing
    p.update(status(done=1, running=1, spent_h=2.0, budget_h=50.0, best=91.234, front=1), final_line=True)
    p.update(status(done=1, running=1, failed=1, spent_h=4.0, budget_h=50.0, best=91.234, front=1), final_line=True)
    p.close(status(done=1, failed=1, spent_h=4.0, budget_h=50.0, best=91.234, front=1))
    lines = out.getvalue().splitlines()
    assert lines == [
        "0 done, 1 running, 0 failed | 0.0000/50.0000 device-h (0%) | best - | front 0 | ETA -",
        "1 done, 1 running, 0 failed | 2.0000/50.0000 device-h (4%) | best 91.23% | front 1 | ETA 12h00m",
        "1 done, 1 running, 1 failed | 4.0000/50.0000 device-h (8%) | best 91.23% | front 1 | ETA 11h30m",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_no_eta_before_a_child_finishes_then_one_for_a_trial_budget():
    out = io.StringIO()
    p = Progress(out, total_h=None, total_trials=20, slots=2)
    p.update(status(running=2))
    p.update(status(done=3, failed=1, running=2, spent_h=0.1), final_line=True)  # 90 s a child, 16 left, 2 slots
    first, second = out.getvalue().splitlines()
    assert first.endswith("| 0/20 trials, 0.0000 device-h | best - | front 0 | ETA -")
    assert "4/20 trials" in second and second.endswith("ETA 12m00s")
    assert "?" not in out.getvalue()


@pytest.mark.parametrize("s,kwargs,expected", [
    (status(budget_h=50.0, running=3), {"slots": 3}, None),  # nothing finished: no guess
    (status(done=2, spent_h=1.0, budget_h=5.0), {"slots": 2}, 4 * 3600 / 2),
    (status(done=2, spent_h=6.0, budget_h=5.0), {"slots": 2}, 0.0),  # overspent: nothing left
    (status(done=1, failed=1, spent_h=1.0, running=4), {"total_trials": 10}, 8 * 1800 / 4),  # slots: those in flight
    (status(done=2, spent_h=1.0), {"total_trials": 10, "slots": 2, "devices_per_trial": 2.0}, 8 * 1800 / 4),
    (status(done=2, spent_h=1.0), {}, None),  # no budget: no end to estimate
])
def test_eta_from_the_budget_and_the_slots(s, kwargs, expected):
    eta = eta_seconds(s, **kwargs)
    assert eta == (None if expected is None else pytest.approx(expected))


def test_format_status_without_a_budget():
    assert format_status(status(done=2, spent_h=0.5, best=80.0, front=2)) == \
        "2 done, 0 running, 0 failed | 0.5000 device-h | best 80.00% | front 2 | ETA -"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_budget_bar():
    out = Tty()
    p = Progress(out, total_h=2.0, slots=1, min_interval=0.0)
    p.update(status(running=1, budget_h=2.0))
    p.update(status(done=1, spent_h=0.5, budget_h=2.0, best=90.0, front=1), final_line=True)
    p.close(status(done=1, spent_h=0.5, budget_h=2.0, best=90.0, front=1))
    text = out.getvalue()
    assert "\r" in text and text.endswith("\n")
    last = text.replace("\r", "\n").splitlines()[-1]
    assert last.startswith(" 25%|") and "1 done, 0 running, 0 failed" in last and "ETA 1h30m" in last
    assert "best 90.00%" in last
