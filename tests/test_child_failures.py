"""A failing child never stops a search, and bad search input is refused before anything is created.

The searches here run on real Ray Tune: the failures travel the way a user's would.
"""

from __future__ import annotations

import json
import socket
import sqlite3

import pytest

from nas.cli import main
from nas.report import run_state
from nas.search import SearchSettings
from nas.search.cluster import trial_slots

# Four tiny digits networks; the two with a 1e10-unit hidden layer cannot allocate it (a RuntimeError on CPU).
FLAKY_SPACE = """
name: flaky
dataset: digits
input: {channels: 1, size: 8}
classes: 10
stem: {style: cifar, channels: 8}
channels: {rule: double, base: 8}
stages:
  - {depth: {choice: [1, 2]}, stride: 1, block: {type: basic}}
head:
  hidden: {choice: [[16], [10000000000]]}
"""

SEARCH = ["search", "--dataset", "digits", "--epochs", "1", "--batch-size", "64", "--lr", "0.05"]


def _trial_rows(run) -> list[tuple]:
    with sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True) as db:
        return db.execute("SELECT trial_id, status, error, attempts FROM trials ORDER BY trial_id").fetchall()


@pytest.mark.ray
@pytest.mark.slow
def test_failing_children_are_recorded_with_reason_and_traceback_and_the_search_goes_on(tmp_path, capsys):
    space = tmp_path / "flaky.yaml"
    space.write_text(FLAKY_SPACE)
    run = tmp_path / "run"
    assert main(SEARCH + ["--space", str(space), "--controller", "random", "--budget-trials", "5",
                          "--run-dir", str(run)]) == 0
    rows = _trial_rows(run)
    assert [r[0] for r in rows] == list(range(5))
    failed = [r for r in rows if r[1] != "ok"]
    assert failed and len(failed) < 5  # both kinds were drawn: the search went past its failures
    for _, status, error, attempts in failed:
        assert status.startswith("failed: out of memory: ") and "can't allocate memory" in status
        assert error.startswith("Traceback") and "RuntimeError" in error
        assert attempts == 1  # a child's own exception is not a lost worker: no retry
    assert all(r[2] is None for r in rows if r[1] == "ok")
    for trial in run_state(run).trials:  # the child's metrics only: no Tune bookkeeping, no flattened config
        assert not [k for k in trial.metrics if k.startswith("config/") or k in ("hostname", "pid", "experiment_tag")]
    assert {"val_acc", "macs", "params", "device_s"} <= set(next(t for t in run_state(run).trials if t.ok).metrics)
    before = rows
    capsys.readouterr()
    assert main(["search", "--resume", str(run)]) == 0  # a finished run resumes to nothing new
    assert _trial_rows(run) == before
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"{5 - len(failed)} finished, {len(failed)} failed" in out and "failures: " in out


@pytest.mark.ray
@pytest.mark.slow
def test_a_search_whose_children_all_fail_stops_with_one_line(tmp_path, capsys):
    space = tmp_path / "doomed.yaml"
    space.write_text(FLAKY_SPACE.replace("[[16], [10000000000]]", "[[10000000000], [20000000000]]"))
    run = tmp_path / "run"
    argv = SEARCH + ["--space", str(space), "--controller", "random", "--budget-gpu-hours", "1",
                     "--max-failures-in-a-row", "3", "--run-dir", str(run)]
    assert main(argv) == 2  # without the limit this budget would buy thousands of failing children
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"nas: error: {run.resolve()}: the last ") and "children all failed" in err
    assert "failed: out of memory" in err
    rows = _trial_rows(run)
    assert 3 <= len(rows) <= 4 and all(r[1].startswith("failed: out of memory") for r in rows)  # 2 may run at once
    assert main(["report", str(run), "--json"]) == 0
    kinds = [e["kind"] for e in json.loads(capsys.readouterr().out)["events"]]
    assert "gave_up" in kinds and "end" not in kinds


@pytest.mark.parametrize("extra, message", [
    (["--lr", "-1"], "lr must be a positive number (--lr), got -1.0"),
    (["--budget-gpu-hours", "nan"], "--budget-gpu-hours: expected a positive finite number, got 'nan'"),
    (["--budget-gpu-hours", "inf"], "--budget-gpu-hours: expected a positive finite number, got 'inf'"),
    (["--budget-gpu-hours", "1e308"], "--budget-gpu-hours must be a positive number of at most 1e+07"),
    (["--max-macs", "1e400"], "--max-macs: expected a positive number"),
    (["--cpus-per-trial", "nan"], "--cpus-per-trial must be a positive number"),
    (["--controller-option", "nosuch=1"], "controller evolution has no option 'nosuch'"),
    (["--controller-option", "populaton=4"], "did you mean population?"),
    (["--controller-option", "population=abc"], "option population='abc': input should be a valid integer"),
    (["--controller-option", "tournament=2.5"], "option tournament=2.5: input should be a valid integer"),
    (["--controller-option", "seed=3"], "--controller-option seed: set it with --seed"),
    (["--max-failures-in-a-row", "-1"], "--max-failures-in-a-row must be >= 0"),
    (["--controller", "weight-sharing", "--controller-option", 'search_options={"population": "x"}'],
     "option population='x': input should be a valid integer"),
])
def test_bad_search_input_is_one_line_and_creates_nothing(tmp_path, capsys, extra, message):
    run = tmp_path / "run"
    budget = [] if "--budget-gpu-hours" in extra else ["--budget-trials", "2"]
    assert main(SEARCH + ["--space", "nasbench_macro", "--run-dir", str(run)] + budget + extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nas: error: ") and message in err, err
    assert not run.exists()


def test_settings_refuse_budgets_that_would_disable_themselves():
    for hours in (float("nan"), float("inf"), 1e308, -1.0, 0.0):
        with pytest.raises(ValueError, match="--budget-gpu-hours must be a positive number"):
            SearchSettings(space="resnet_like", budget_gpu_hours=hours)
    assert SearchSettings(space="resnet_like", budget_gpu_hours=1e7).budget_gpu_hours == 1e7


def _node(cpus: float, gpus: float = 0.0, alive: bool = True) -> dict:
    return {"Alive": alive, "Resources": {"CPU": cpus, **({"GPU": gpus} if gpus else {})}}


def test_trial_slots_count_what_each_node_can_hold():
    settings = SearchSettings(space="resnet_like", budget_trials=1, cpus_per_trial=2, gpus_per_trial=0.5)
    assert trial_slots(settings, [_node(8, 1), _node(16, 4), _node(64, 8, alive=False)]) == 2 + 8
    with pytest.raises(ValueError, match=r"--cpus-per-trial 100: no node .* has that many CPUs \(the largest has 16\)"):
        trial_slots(SearchSettings(space="resnet_like", budget_trials=1, cpus_per_trial=100), [_node(2), _node(16)])
    with pytest.raises(ValueError, match=r"--gpus-per-trial 2: .*the largest node has 1"):
        trial_slots(SearchSettings(space="resnet_like", budget_trials=1, gpus_per_trial=2), [_node(8, 1)])
    with pytest.raises(ValueError, match="the cluster has none"):
        trial_slots(SearchSettings(space="resnet_like", budget_trials=1, gpus_per_trial=0.25), [_node(8)])


@pytest.mark.ray
def test_cpus_no_node_has_are_refused_once_ray_is_up(tmp_path, capsys):
    run = tmp_path / "run"
    argv = SEARCH + ["--space", "nasbench_macro", "--budget-trials", "1", "--cpus-per-trial", "1000", "--run-dir", str(run)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--cpus-per-trial 1000: no node of the Ray cluster has that many CPUs" in err and err.count("\n") == 1
    assert not run.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:{port}", "nothing answers there (Connection refused)"),
    ("ray://127.0.0.1:{port}", "nothing answers there (Connection refused)"),
    ("no-port-here", "--ray-address must be auto, host:port or ray://host:port"),
])
def test_an_unreachable_ray_address_is_one_line(tmp_path, capsys, address, message):
    run = tmp_path / "run"
    argv = SEARCH + ["--space", "nasbench_macro", "--budget-trials", "1", "--run-dir", str(run),
                     "--ray-address", address.format(port=_closed_port())]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not run.exists()


def test_a_child_the_searcher_cannot_cost_is_failed_and_the_search_goes_on(tmp_path, monkeypatch):
    from nas.model.cost import arch_cost
    from tests.test_search import finished, make_searcher

    settings = SearchSettings(space="nasbench_macro", controller="random", budget_trials=3, run_dir=str(tmp_path))
    searcher, controller, store = make_searcher(tmp_path, settings)
    calls = []

    def cost_once_impossible(arch):
        calls.append(arch)
        if len(calls) == 1:
            raise ValueError("a 2x2 window does not fit a 1-pixel input")
        return arch_cost(arch)

    monkeypatch.setattr("nas.search.searcher.arch_cost", cost_once_impossible)
    assert searcher.suggest("a") is None  # nothing to run this step; Tune asks again
    config = searcher.suggest("b")
    searcher.on_trial_complete("b", finished(90.0, config["macs"], 1.0))
    trials = store.trials()
    assert [t.status for t in trials] == ["failed: ValueError: a 2x2 window does not fit a 1-pixel input", "ok"]
    assert str(controller.history[0].outcome).startswith("failed: ValueError")


def test_a_failing_child_of_nas_train_is_one_line_and_exit_1(tmp_path, capsys):
    arch = tmp_path / "arch.json"
    assert main(["sample", "nasbench_macro", "--input", "1x8x8"]) == 0
    data = json.loads(capsys.readouterr().out)
    data.pop("arch_id")
    data["head"]["dropout"] = 5.0
    arch.write_text(json.dumps(data))
    assert main(["train", str(arch), "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "failed: ValueError: dropout probability has to be between 0 and 1, but got 5.0" in err
    assert main(["train", str(arch), "--epochs", "1", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"].startswith("Traceback")

