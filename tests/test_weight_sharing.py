"""Weight-sharing search: the controller's retrain queue, the search loop around it, budget and report.

The supernet itself is tested in tests/test_supernet.py; the ask/tell/resume contract of the
controller in tests/test_controllers.py. The last test runs the whole route on Ray.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch

from nas.controllers.base import Exhausted, make_controller
from nas.model.cost import arch_cost
from nas.pareto import non_dominated_ranks
from nas.report import hypervolume_curve, inherited_line, phase_rows, phase_seconds, run_state
from nas.search import Budget, SearchSettings
from nas.search.progress import Progress
from nas.search.searcher import ControllerSearcher
from nas.space import load_space
from nas.store import RunStore


@pytest.fixture(scope="module")
def macro():
    return load_space("nasbench_macro")


def fake_inherited(space):
    """A deterministic inherited accuracy: more mbconv layers score higher."""
    return lambda v: {"val_acc": 50.0 + 5 * sum(x > 0 for x in v) + 0.1 * v[-1], "val_loss": 1.0,
                      "macs": arch_cost(space.decode(v)).macs}


def test_queue_holds_the_best_children_by_rank_then_accuracy(macro):
    ctrl = make_controller("weight-sharing", macro, seed=0, children=150, retrain=5, objectives=("accuracy", "macs"))
    scored = ctrl.score_children(fake_inherited(macro))
    assert len(scored) == len({tuple(v) for v, _ in scored}) > 100  # distinct children, each scored once

    points = np.array([[-m["val_acc"], m["macs"]] for _, m in scored])
    ranks = non_dominated_ranks(points)
    queued = [tuple(v) for v in ctrl.queue]
    assert len(queued) == 5
    position = {tuple(v): i for i, (v, _) in enumerate(scored)}
    queued_ranks = [ranks[position[q]] for q in queued]
    assert queued_ranks == sorted(queued_ranks) and queued_ranks[0] == 0
    worst_queued = max(queued_ranks)
    assert all(ranks[i] >= worst_queued for i in range(len(scored)) if tuple(scored[i][0]) not in queued)

    proposals = [ctrl.ask() for _ in range(5)]
    assert [tuple(p.values) for p in proposals] == queued
    assert ctrl.annotations(proposals[0].values) == {
        "inherited_val_acc": fake_inherited(macro)(proposals[0].values)["val_acc"], "inherited_val_loss": 1.0}
    rng = np.random.default_rng(0)
    unscored = next(v for v in iter(lambda: macro.sample_values(rng), None) if tuple(v) not in position)
    assert ctrl.annotations(unscored) == {}
    with pytest.raises(Exhausted):
        ctrl.ask()


@pytest.mark.parametrize("search", ["random", "evolution", "rl"])
def test_accuracy_alone_queues_the_most_accurate(macro, search):
    ctrl = make_controller("weight-sharing", macro, seed=1, children=80, retrain=4, search=search)
    scored = ctrl.score_children(fake_inherited(macro))
    best = sorted((-m["val_acc"], i) for i, (_, m) in enumerate(scored))[:4]
    assert [tuple(v) for v in ctrl.queue] == [tuple(scored[i][0]) for _, i in best]


def test_failed_children_are_never_queued(macro):
    ctrl = make_controller("weight-sharing", macro, seed=2, children=60, retrain=100, search="random")
    inherited = fake_inherited(macro)
    scored = ctrl.score_children(lambda v: None if v[0] == 1 else inherited(v))
    assert any(m is None for _, m in scored)
    assert ctrl.queue and all(v[0] != 1 for v in ctrl.queue)
    assert len(ctrl.queue) == sum(m is not None for _, m in scored)


def test_asking_before_scoring_says_what_to_do(macro):
    ctrl = make_controller("weight-sharing", macro)
    with pytest.raises(RuntimeError, match="score_children"):
        ctrl.ask()


@pytest.mark.parametrize("options, match", [
    ({"search": "weight-sharing"}, "search must name the controller"),
    ({"search": "annealing"}, "search must name the controller"),
    ({"children": 0}, "children must be a positive integer"),
    ({"retrain": 1.5}, "option retrain=1.5: input should be a valid integer"),
    ({"rule": "fairnas"}, "rule must be spos"),
    ({"supernet_lr": -1}, "supernet_lr must be > 0"),
    ({"search_options": {"population": 1}}, "population"),
])
def test_settings_are_validated(macro, options, match):
    with pytest.raises(ValueError, match=match):
        make_controller("weight-sharing", macro, **options)


def test_search_loop_records_inherited_beside_standalone_and_ends_when_the_queue_does(tmp_path, macro):
    settings = SearchSettings(space="nasbench_macro", controller="weight-sharing", budget_gpu_hours=10.0,
                              run_dir=str(tmp_path / "run"), controller_options={"children": 40, "retrain": 4})
    ctrl = make_controller("weight-sharing", macro, seed=0, objectives=settings.objectives, children=40, retrain=4)
    store = RunStore(tmp_path / "run", create=True)
    store.save_settings({"search": settings.to_dict()})
    scored = ctrl.score_children(fake_inherited(macro))
    rows = [(macro.decode(v).arch_id, macro.decode(v).to_json(), v, m) for v, m in scored]
    store.finish_phase("supernet", 1800.0, {"epochs": 3})
    store.finish_phase("inherited_search", 360.0, {"children": len(scored)}, inherited=rows,
                       controller_state=ctrl.state_dict())
    assert store.device_seconds() == pytest.approx(2160.0)  # phases are charged to the budget

    budget = Budget(settings, store.device_seconds(), ctrl.next_id)
    searcher = ControllerSearcher(ctrl, store, settings, budget, Progress(io.StringIO()), tmp_path / "run")
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    assert all(isinstance(c, dict) for c in configs)
    assert searcher.suggest("t4") is None  # queue empty, children still running: wait
    for i, c in enumerate(configs):  # stand-alone accuracy: the inherited ranking reversed for two of them
        acc = 90.0 + (i if i < 2 else -i)
        searcher.on_trial_complete(f"t{i}", {"val_acc": acc, "macs": c["macs"], "elapsed_s": 60.0, "status": "ok", "final": True})
    assert searcher.suggest("t5") == "FINISHED"
    store.close()

    state = run_state(tmp_path / "run")
    assert state.budget.spent_device_hours == pytest.approx((2160 + 4 * 60) / 3600)
    assert set(state.phases) == {"supernet", "inherited_search"}
    inherited = {tuple(v): m["val_acc"] for v, m in scored}
    for t in state.trials:
        assert t.metrics["inherited_val_acc"] == inherited[tuple(t.decisions)]
    ws = state.inherited
    assert ws["children"] == len(scored) and ws["retrained"] == 4
    from scipy import stats

    a = [t.metrics["inherited_val_acc"] for t in state.trials]
    b = [t.val_acc for t in state.trials]
    assert ws["kendall_tau"] == pytest.approx(stats.kendalltau(a, b).statistic)
    assert ws["spearman_rho"] == pytest.approx(stats.spearmanr(a, b).statistic)
    hours, _ = hypervolume_curve(state.trials, state.hypervolume_macs, phase_seconds(state.phases))
    assert hours[0] == pytest.approx((2160 + 60) / 3600)  # the curve starts after the supernet and the scoring
    assert f"Kendall tau {ws['kendall_tau']:.3f}" in inherited_line(state)
    assert [row[:2] for row in phase_rows(state.phases)] == [["supernet", "0.5000"], ["inherited_search", "0.1000"]]


@pytest.mark.ray
@pytest.mark.slow
def test_weight_sharing_search_end_to_end_on_ray(tmp_path):
    """Supernet on Ray Train, children scored in a Ray task, the best two trained from scratch, resumable, exported."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "nas", "search", "--space", "nasbench_macro", "--controller", "weight-sharing",
           "--dataset", "digits", "--budget-trials", "2", "--epochs", "1", "--batch-size", "128", "--lr", "0.05",
           "--run-dir", str(run), "--controller-option", "supernet_epochs=1", "--controller-option", "children=12",
           "--controller-option", "retrain=2", "--controller-option", "calib_batches=1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "supernet trained" in done.stderr and "children scored" in done.stderr
    state = run_state(run)
    assert set(state.phases) == {"supernet", "inherited_search"}
    assert state.phases["supernet"]["device_s"] > 0
    assert state.inherited["children"] >= 2
    ok = [t for t in state.trials if t.status == "ok"]
    assert len(ok) == 2 and all("inherited_val_acc" in t.metrics for t in ok)
    trials_s = sum(t.device_s for t in state.trials)
    phases_s = sum(p["device_s"] for p in state.phases.values())
    assert state.budget.spent_device_hours == pytest.approx((trials_s + phases_s) / 3600)

    # resuming a finished run repeats no phase and trains nothing again
    stamp = (run / "supernet.pt").stat().st_mtime_ns
    again = subprocess.run([sys.executable, "-m", "nas", "search", "--resume", str(run)], capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "training the supernet" not in again.stderr and "children scored" not in again.stderr
    assert (run / "supernet.pt").stat().st_mtime_ns == stamp
    resumed = run_state(run)
    assert resumed.phases == state.phases and len(resumed.trials) == len(state.trials)

    report = subprocess.run([sys.executable, "-m", "nas", "report", str(run)], capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "inherited val %" in report.stdout and "phases before the children:" in report.stdout
    assert "children scored with inherited weights" in report.stdout

    out = tmp_path / "export" / "model.py"
    exported = subprocess.run([sys.executable, "-m", "nas", "export", str(run), "--pareto-index", "0", "--from-supernet",
                               "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    from nas.arch import Arch
    from nas.oneshot.supernet import Supernet

    arch = Arch.from_json(out.with_name("arch.json").read_text())
    sliced = Supernet.load(run / "supernet.pt", space=load_space("nasbench_macro")).child_state_dict(arch)
    saved = torch.load(out.with_suffix(".pt"), weights_only=True)
    assert saved.keys() == sliced.keys() and all(torch.equal(saved[k], sliced[k]) for k in saved)
    missing = subprocess.run([sys.executable, "-m", "nas", "export", "resnet18", "--from-supernet", "-o", str(out)],
                             capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "need a run folder" in missing.stderr and "Traceback" not in missing.stderr
