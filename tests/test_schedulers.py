"""Pareto-rank ASHA: a rung keeps the best 1/eta by non-dominated rank, not by accuracy alone."""

from __future__ import annotations

import numpy as np
from ray.tune.schedulers import TrialScheduler

from nas.search.schedulers import ParetoASHA, keeps


def test_keeps_orders_by_rank_then_crowding():
    # (-accuracy, macs): a small accurate-enough net and a big accurate one are both on the front
    points = np.array([[-90, 1e6], [-95, 9e6], [-80, 5e6], [-70, 8e6], [-60, 9e6], [-85, 6e6]])
    assert keeps(points, 0, 3) and keeps(points, 1, 3)
    assert not keeps(points, 3, 3) and not keeps(points, 4, 3)


def test_rungs_stop_dominated_children_but_not_small_ones():
    sched = ParetoASHA(max_t=10, objectives=("accuracy", "macs"), eta=3)
    assert sorted(sched.rungs) == [1, 3, 9]

    def report(acc, macs, epoch=1):
        return {"epoch": epoch, "val_acc": acc, "macs": macs, "final": False}

    decisions = [sched.on_trial_result(None, None, report(a, m)) for a, m in
                 [(90, 9e6), (91, 8e6), (92, 7e6), (60, 9.5e6), (65, 9.6e6), (70, 1e6)]]
    assert decisions[:3] == [TrialScheduler.CONTINUE] * 3  # fewer than eta seen: keep going
    assert decisions[3:5] == [TrialScheduler.STOP] * 2  # dominated by everything before them
    assert decisions[5] == TrialScheduler.CONTINUE  # least accurate of the front, but by far the smallest
    assert sched.on_trial_result(None, None, report(10, 1e9, epoch=2)) == TrialScheduler.CONTINUE  # not a rung
    assert sched.on_trial_result(None, None, {"epoch": 1, "final": True}) == TrialScheduler.CONTINUE


def test_accuracy_only_behaves_like_asha():
    sched = ParetoASHA(max_t=4, objectives=("accuracy",), eta=2)
    outcomes = [sched.on_trial_result(None, None, {"epoch": 1, "val_acc": a, "final": False}) for a in (50, 60, 40, 70)]
    assert outcomes == [TrialScheduler.CONTINUE, TrialScheduler.CONTINUE, TrialScheduler.STOP, TrialScheduler.CONTINUE]
