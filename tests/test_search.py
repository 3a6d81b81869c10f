"""Search engine: the Tune searcher adapter, the device-hour budget, failures, resume, a real run."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from nas.controllers.base import make_controller
from nas.report import run_state
from nas.search import Budget, SearchSettings, child_trial, run_search
from nas.search.progress import Progress
from nas.search.searcher import ControllerSearcher
from nas.space import load_space
from nas.store import RunStore


def make_searcher(tmp_path, settings, controller=None, store=None):
    space = load_space(settings.space)
    controller = controller or make_controller(settings.controller, space, seed=settings.seed, objectives=settings.objectives)
    store = store or RunStore(tmp_path / "run", create=True)
    budget = Budget(settings, store.device_seconds(), controller.next_id)
    searcher = ControllerSearcher(controller, store, settings, budget, Progress(io.StringIO()), tmp_path / "run")
    return searcher, controller, store


def finished(acc: float, macs: float, elapsed: float, status: str = "ok") -> dict:
    return {"val_acc": acc, "macs": macs, "elapsed_s": elapsed, "status": status, "final": True}


def simulate(searcher, slots: int, rng: np.random.Generator, stop_after: int | None = None) -> int:
    """Drive the searcher like Tune: fill the slots, finish the oldest child, repeat."""
    live, completed, n = [], 0, 0
    while True:
        while len(live) < slots:
            config = searcher.suggest(f"t{n}")
            if config is None or config == "FINISHED":
                break
            live.append((f"t{n}", config))
            n += 1
        if not live:
            return completed
        tune_id, config = live.pop(0)
        searcher.on_trial_complete(tune_id, finished(float(rng.uniform(50, 99)), config["macs"], float(rng.uniform(20, 40))))
        completed += 1
        if stop_after is not None and completed >= stop_after:
            return completed


def test_budget_spend_lands_within_ten_percent(tmp_path):
    settings = SearchSettings(space="nasbench_macro", controller="random", budget_gpu_hours=0.25, run_dir=str(tmp_path))
    searcher, _, store = make_searcher(tmp_path, settings)
    simulate(searcher, slots=3, rng=np.random.default_rng(0))
    spent_h = store.device_seconds() / 3600
    assert abs(spent_h - 0.25) <= 0.025, spent_h
    assert searcher.suggest("again") == "FINISHED"


def test_trial_budget_counts_children(tmp_path):
    settings = SearchSettings(space="nasbench_macro", controller="evolution", budget_trials=7, run_dir=str(tmp_path))
    searcher, controller, store = make_searcher(tmp_path, settings)
    assert simulate(searcher, slots=2, rng=np.random.default_rng(0)) == 7
    assert [t.trial_id for t in store.trials()] == list(range(7))


def test_failures_are_recorded_and_the_search_goes_on(tmp_path):
    settings = SearchSettings(space="nasbench_macro", controller="evolution", budget_trials=5, run_dir=str(tmp_path))
    searcher, controller, store = make_searcher(tmp_path, settings)
    a, b, c = (searcher.suggest(t) for t in ("a", "b", "c"))
    searcher.on_trial_complete("a", None, error=True)
    searcher.on_trial_complete("b", finished(float("nan"), b["macs"], 3.0, status="diverged"))
    searcher.on_trial_complete("c", finished(91.0, c["macs"], 3.0))
    statuses = [t.status for t in store.trials()]
    assert statuses == ["failed: ray worker lost (retried once)", "diverged", "ok"]
    assert searcher.suggest("d")["trial_id"] == 3  # still searching
    assert len(controller.finished()) == 1


def test_resume_replays_only_the_unfinished_children(tmp_path):
    settings = SearchSettings(space="nasbench_macro", controller="evolution", budget_trials=12, seed=4, run_dir=str(tmp_path))
    # the uninterrupted run
    ref, _, ref_store = make_searcher(tmp_path / "ref", settings)
    simulate(ref, slots=2, rng=np.random.default_rng(1))
    expected = [(t.trial_id, t.arch_id) for t in ref_store.trials()]
    # a run "killed" after 5 results, with one child still running
    run, _, store = make_searcher(tmp_path / "killed", settings)
    simulate(run, slots=2, rng=np.random.default_rng(1), stop_after=5)
    store.close()
    store = RunStore(tmp_path / "killed" / "run")
    assert [t.status for t in store.trials()].count("running") == 1
    controller = make_controller("evolution", load_space("nasbench_macro"), seed=4, objectives=settings.objectives)
    controller.load_state_dict(store.controller_state())
    resumed, _, store = make_searcher(tmp_path / "killed", settings, controller, store)
    first = resumed.suggest("r0")
    assert first["trial_id"] == 5  # the oldest unfinished child comes back first, same id
    resumed.on_trial_complete("r0", finished(80.0, first["macs"], 30.0))
    rng = np.random.default_rng(2)
    simulate(resumed, slots=2, rng=rng)
    got = [(t.trial_id, t.arch_id) for t in store.trials()]
    assert [i for i, _ in got] == list(range(12))  # nothing lost, nothing repeated
    assert all(t.status == "ok" for t in store.trials())
    assert got[:6] == expected[:6]  # the same architectures in the same order up to the kill


def test_child_trial_turns_exceptions_into_a_status(monkeypatch):
    reports = []
    monkeypatch.setattr("ray.tune.report", lambda metrics: reports.append(metrics))
    bad = {"input": [1, 8, 8], "classes": 10, "stem": [], "stages": [[{"type": "conv", "out": 8, "kernel": 11, "padding": 0}]]}
    child_trial({"arch": bad, "recipe": {"epochs": 1}, "macs": 0}, splits=None)
    assert reports[-1]["status"].startswith("failed: ")
    assert reports[-1]["final"] is True


def test_settings_validation_says_what_to_do():
    with pytest.raises(ValueError, match="give a budget"):
        SearchSettings(space="resnet_like")
    with pytest.raises(ValueError, match="--scheduler must be asha"):
        SearchSettings(space="resnet_like", budget_trials=1, scheduler="hyperband")
    s = SearchSettings(space="resnet_like", budget_trials=3, objectives=("accuracy", "macs"))
    assert SearchSettings.from_dict(s.to_dict()) == s


@pytest.mark.ray
@pytest.mark.slow
def test_a_real_digits_search_through_the_cli(tmp_path, capsys):
    from nas.cli import main

    run = tmp_path / "run"
    code = main(["search", "--space", "resnet_like", "--dataset", "digits", "--budget-trials", "4", "--epochs", "3",
                 "--batch-size", "64", "--lr", "0.05", "--max-macs", "2M", "--run-dir", str(run),
                 "--controller-option", "population=2", "--controller-option", "tournament=1"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(run.resolve())
    assert "4 done, 0 running, 0 failed" in captured.err
    state = run_state(run)
    assert state.counts.ok == 4
    assert all(t.val_acc is not None and t.macs <= 2e6 and t.device_s > 0 for t in state.trials)
    assert max(t.val_acc for t in state.trials) > 30  # chance is 10%
    front_ids = {t.trial_id for t in state.pareto_front}
    assert front_ids
    for t in state.trials:  # only the Pareto set keeps its checkpoint
        assert (t.checkpoint is not None) == (t.trial_id in front_ids)
    assert main(["report", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["ok"] == 4
    assert main(["report", str(run)]) == 0
    table = capsys.readouterr().out
    assert "multiply-adds" in table and "4 finished, 0 failed" in table
    assert main(["report", str(tmp_path)]) == 2  # not a run folder: one line, exit 2
    assert "not a nas run folder" in capsys.readouterr().err


def _dies_first_time(config: dict, splits=None) -> None:
    """A worker that is killed (os._exit) on its child's first attempt, or on every attempt for child 1."""
    import os
    from pathlib import Path

    from ray import tune

    marker = Path(config["checkpoint"]).with_suffix(".attempted")
    if config["trial_id"] == 1 or not marker.exists():
        marker.touch()
        os._exit(1)
    tune.report({"status": "ok", "val_acc": 50.0, "macs": config["macs"], "final": True, "elapsed_s": 0.1})


@pytest.mark.ray
@pytest.mark.slow
def test_a_lost_worker_is_retried_once(tmp_path):
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/
    settings = SearchSettings(space="nasbench_macro", controller="random", dataset="digits", budget_trials=2,
                              run_dir=str(tmp_path / "run"), keep_checkpoints="all")
    run_search(settings, out=io.StringIO(), trainable=_dies_first_time)
    state = run_state(tmp_path / "run")
    assert [t.status for t in state.trials] == ["ok", "failed: ray worker lost (retried once)"]
    assert [t.attempts for t in state.trials] == [2, 2]
    assert all(t.lost_device_s > 0 for t in state.trials)  # the first attempt is charged too
    charged = sum(t.device_s + t.lost_device_s for t in state.trials)
    assert state.budget.spent_device_hours * 3600 == pytest.approx(charged)


def test_budget_charges_a_running_child_by_its_size():
    settings = SearchSettings(space="nasbench_macro", budget_gpu_hours=100 / 3600, run_dir="unused")
    budget = Budget(settings, spent_s=0.0, started=0)
    for macs in (1e6, 2e6, 3e6, 4e6):
        budget.record(macs / 1e6 * 5, macs)  # 5 device-seconds per million multiply-adds
    assert budget.predict(10e6) == pytest.approx(50.0)
    assert budget.allows([(1e6, 0.0)])  # 50 spent + 5 left for a small one + 12.5 for a new one
    assert not budget.allows([(10e6, 0.0)])  # a big child in flight will spend the rest


@pytest.mark.ray
@pytest.mark.slow
def test_a_search_leaves_the_callers_ray_session_and_environment_as_they_were(tmp_path, monkeypatch):
    import os

    import ray

    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")  # the caller's own choice
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        settings = SearchSettings(space="nasbench_macro", controller="random", dataset="digits", budget_trials=1,
                                  epochs=1, run_dir=str(tmp_path / "run"))
        run_search(settings, out=io.StringIO())
        assert ray.is_initialized()  # the caller started it, the caller shuts it down
        assert run_state(tmp_path / "run").counts.ok == 1
    finally:
        ray.shutdown()
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "1" and "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ


def test_a_resume_raises_the_trial_budget_of_a_finished_run(tmp_path, capsys):
    from nas.cli import main

    run = tmp_path / "run"
    assert main(["search", "--space", "resnet_like", "--dataset", "digits", "--budget-trials", "2", "--epochs", "1",
                 "--batch-size", "64", "--max-macs", "2M", "--run-dir", str(run),
                 "--controller-option", "population=2", "--controller-option", "tournament=1"]) == 0
    before = {t.trial_id: t.arch_id for t in run_state(run).trials}
    assert main(["search", "--resume", str(run), "--lr", "0.1"]) == 2  # a run keeps its recipe
    assert "--lr cannot change on --resume" in capsys.readouterr().err
    assert main(["search", "--resume", str(run), "--budget-trials", "1"]) == 2  # a limit only goes up
    assert main(["search", "--resume", str(run), "--budget-trials", "6"]) == 0
    state = run_state(run)
    assert [t.trial_id for t in state.trials] == list(range(6))  # the old ones kept, none repeated
    assert all(t.status == "ok" for t in state.trials)
    assert {t.trial_id: t.arch_id for t in state.trials[:2]} == before
    store = RunStore(run, readonly=True)
    try:
        assert store.settings()["search"]["budget_trials"] == 6
        assert [d for _, kind, d in store.events() if kind == "budget_raised"] == [{"budget_trials": [2, 6]}]
    finally:
        store.close()
