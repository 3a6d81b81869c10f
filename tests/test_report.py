"""nas report / export RUN_DIR / retrain: summaries, incremental hypervolume, report files, HTML safety, a browser."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nas.arch import Arch, Block
from nas.cli import main
from nas.model.reference import reference
from nas.model.summary import summarize
from nas.outcome import Outcome
from nas.pareto import hypervolume_2d
from nas.report import IncrementalFront, front_hypervolume, hypervolume_curve, run_state
from nas.search import SearchSettings
from nas.space import load_space
from nas.store import RunStore, TrialRecord

EVIL = "<script>alert(1)</script>\"'"


# ---------------------------------------------------------------------------- summaries

def test_summary_collapses_blocks_and_abbreviates_options():
    arch = Arch((3, 32, 32), 10, (Block.make("conv", 32, 1, kernel=3),), (
        (Block.make("basic", 64), Block.make("basic", 64)),
        (Block.make("basic", 128, 2, se_ratio=0.25), Block.make("basic", 128, 1, se_ratio=0.25), Block.make("basic", 128)),
        (Block.make("resnext", 256, 2, groups=8, mid_ratio=0.5), Block.make("mbconv", 256, 1, kernel=5, expansion=6)),
    ))
    assert summarize(arch) == ("stem c32 | s1 basic x2 c64 | s2 basic/2 se0.25 x2 c128, basic c128 | "
                               "s3 resnext/2 g8 m0.5 c256, mb k5 e6 c256")


def test_summary_of_references_and_cells():
    assert summarize(reference("resnet18")) == ("stem c64/2 k7, maxpool/2 k3 p1 | s1 basic x2 c64 | s2 basic/2 x2 c128 | "
                                                "s3 basic/2 x2 c256 | s4 basic/2 x2 c512")
    assert summarize(reference("mobilenet_v2")).endswith("s7 mb k3 e6 c320 | head c1280 drop0.2 relu6")
    space = load_space("nasbench201")
    text = summarize(space.sample(np.random.default_rng(3)))
    assert re.search(r"s1 cell\[[a-z0-9]+\|[a-z0-9]+,[a-z0-9]+\|[a-z0-9]+,[a-z0-9]+,[a-z0-9]+\] x5 c16", text), text
    assert "head bn-act" in text


# ---------------------------------------------------------------------------- hypervolume

def test_incremental_hypervolume_matches_the_batch_computation():
    rng = np.random.default_rng(0)
    acc = np.round(rng.uniform(5, 99, 400), 1)  # rounding makes ties and duplicates
    macs = np.round(rng.uniform(1, 120, 400)) * 1e4
    acc[50], macs[50] = acc[10], macs[10]
    front = IncrementalFront(scale=1e6)
    for i in range(len(acc)):
        volume = front.add(acc[i], macs[i])
        pts = np.column_stack([-acc[: i + 1] / 100, macs[: i + 1] / 1e6])
        assert volume == pytest.approx(hypervolume_2d(pts, np.array([0.0, 1.0])), abs=1e-12)
    assert all(np.diff(front.macs) > 0) and all(np.diff(front.acc) > 0)


def test_hypervolume_curve_follows_end_time_and_skips_failures_and_references():
    def trial(i, ended, acc, macs, status="ok", **extra):
        return TrialRecord(trial_id=i, arch_id=f"a{i}", arch=None, decisions=[], outcome=Outcome.parse(status),
                           metrics={"val_acc": acc, "macs": macs, **extra}, device_s=3600.0, started=None, ended=ended,
                           attempts=1, checkpoint=None)
    trials = [trial(0, 30.0, 90.0, 5e5), trial(1, 10.0, 50.0, 1e5), trial(2, 20.0, None, None, status="failed: x"),
              trial(3, 40.0, 99.0, 1e4, reference="resnet18"), trial(4, None, 95.0, 1e5, status="running")]
    hours, volume = hypervolume_curve(trials, 1e6)
    assert hours.tolist() == [1.0, 2.0, 3.0, 4.0]  # running children have spent nothing yet
    first = front_hypervolume([trials[1].metrics], 1e6)
    both = front_hypervolume([trials[0].metrics, trials[1].metrics], 1e6)
    assert volume.tolist() == pytest.approx([first, first, both, both])


# ---------------------------------------------------------------------------- a synthetic run folder

def _settings(run_dir: Path, **changes) -> SearchSettings:
    base = dict(space="resnet_like", dataset="digits", budget_trials=9, epochs=2, batch_size=64, lr=0.05, seed=1,
                val_fraction=0.2, max_macs=2e6, run_dir=str(run_dir), controller_options={"note": EVIL})
    return SearchSettings(**{**base, **changes})


def _add(store: RunStore, trial_id: int, arch: Arch, status: str, metrics: dict, checkpoint: str | None = None) -> None:
    store.start_trial(trial_id, arch.to_json(), arch.arch_id, [0])
    if status != "running":
        store.finish_trial(trial_id, status, metrics, metrics.get("device_s", 2.0), {}, checkpoint)


@pytest.fixture
def fake_run(tmp_path) -> Path:
    """A run with a front, failures (one hostile), a child still running, a reference and a hostile name."""
    run = tmp_path / "fake"
    store = RunStore(run, create=True)
    store.save_settings({"search": _settings(run).to_dict(), "created": time.time()})
    store.log("start", {"finished": 0})
    space = load_space("resnet_like").with_io((1, 8, 8), 10)
    rng = np.random.default_rng(0)
    for i in range(6):
        arch = space.sample(rng, max_macs=2e6)
        if i == 2:
            arch = Arch(arch.input, arch.classes, arch.stem, arch.stages, arch.head, name=EVIL)
        from nas.model.cost import arch_cost

        cost = arch_cost(arch)
        _add(store, i, arch, "ok", {"val_acc": 60.0 + 5 * i - (12 if i % 2 else 0), "macs": cost.macs,
                                    "params": cost.params, "device_s": 3.0})
    evil_arch = Arch.from_dict({"input": [1, 8, 8], "classes": 10, "stages": [[{"type": EVIL, "out": 8}]], "name": EVIL})
    _add(store, 6, evil_arch, "ok", {"val_acc": 99.0, "macs": 1.9e6, "params": 5})  # unreadable, yet on the front
    _add(store, 7, space.sample(rng), f"failed: ValueError: {EVIL}", {"device_s": 1.0})
    _add(store, 8, space.sample(rng), "running", {})
    ref = reference("resnet18").with_io((1, 8, 8), 10)
    _add(store, 9, ref, "ok", {"val_acc": 70.0, "macs": 3e5, "params": 1e6, "reference": "resnet18"})
    store.close()
    return run


def test_report_writes_every_file_and_escapes_everything(fake_run, capsys):
    assert main(["report", str(fake_run)]) == 0
    out = capsys.readouterr().out
    assert "multiply-adds" in out and "running: trial 8" in out and "in progress, or killed" in out
    assert "8 finished, 1 failed, 0 stopped, 1 running" in out and "failures: 1 x failed: ValueError" in out
    for name in ("pareto.csv", "pareto.json", "pareto.png", "hypervolume.png", "report.html"):
        assert (fake_run / name).stat().st_size > 0, name
    state = run_state(fake_run)
    assert [t.trial_id for t in state.references] == [9]
    assert 9 not in {t.trial_id for t in state.pareto_front}  # references are not search results
    with open(fake_run / "pareto.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial_id"]) for r in rows] == [t.trial_id for t in state.pareto_front]
    assert all(r["summary"] for r in rows)
    page = (fake_run / "report.html").read_text()
    assert "<script" not in page.lower() and "alert(1)</" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;" in page  # shown, escaped, quotes too
    assert "failed: ValueError: &lt;script&gt;" in page and "resnet18" in page and "Running (1)" in page
    assert re.findall(r'<img src="([a-z]+):', page) == ["data", "data"]  # self-contained
    assert "http://" not in page and "https://" not in page and "<link" not in page
    assert f"nas export {fake_run} --pareto-index 0 -o model.py" in page
    assert "per-layer cost" in page and "unreadable architecture" in page


def test_run_state_is_typed_and_its_json_is_the_report_json(fake_run, capsys):
    state = run_state(fake_run)
    assert all(isinstance(t, TrialRecord) for t in (*state.trials, *state.pareto_front, *state.references))
    assert all(t.arch is None or isinstance(t.arch, Arch) for t in state.trials)
    assert state.counts.total == len(state.trials) and state.budget.spent_fraction is None
    with pytest.raises(AttributeError):
        state.hypervolume = 0.0  # frozen
    data = state.to_dict()
    strict = json.loads(json.dumps(data, allow_nan=False))  # strict JSON: no NaN, no infinity, no objects
    assert strict == data
    assert main(["report", str(fake_run), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed) == [*data, "front"]  # same keys, same order, then the front's rows
    assert {k: v for k, v in printed.items() if k != "front"} == strict


def test_report_one_trial_with_its_traceback(fake_run, capsys):
    store = RunStore(fake_run)
    arch = load_space("resnet_like").with_io((1, 8, 8), 10).sample(np.random.default_rng(5))
    store.start_trial(10, arch.to_json(), arch.arch_id, [0])
    store.retry_trial(10, 30.0, time.time())
    store.finish_trial(10, "failed: out of memory: CUDA out of memory", {"device_s": 4.0}, 4.0, {},
                       error="Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: CUDA out of memory")
    store.close()
    assert main(["report", str(fake_run), "--trial", "10"]) == 0
    out = capsys.readouterr().out
    assert f"trial 10 ({arch.arch_id}): failed" in out and "reason: out of memory: CUDA out of memory" in out
    assert "device seconds: 34.0 (30.0 of them in 1 lost attempt(s))" in out and "device_s=4.0" in out
    assert "Traceback (most recent call last):" in out and out.rstrip().endswith("RuntimeError: CUDA out of memory")
    assert not (fake_run / "report.html").exists()  # one trial's record writes no files

    assert main(["report", str(fake_run), "--trial", "0"]) == 0
    out = capsys.readouterr().out
    assert "trial 0 (" in out and ": ok" in out and "traceback" not in out

    assert main(["report", str(fake_run), "--trial", "77"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trial 77: no such trial" in err


def test_report_json_and_not_a_run(fake_run, tmp_path, capsys):
    assert main(["report", str(fake_run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"counts", "trials", "pareto_front", "budget", "events", "front"} <= set(data)
    assert data["front"][0]["summary"].startswith("stem c")
    assert not (fake_run / "report.html").exists()  # --json is for scripts: no files
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a nas run folder" in err


def test_compare_uses_one_reference_point(fake_run, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(fake_run, other)
    store = RunStore(other)
    settings = store.settings()
    settings["search"]["max_macs"] = 4e6  # a larger box: both runs must be measured in it
    store.save_settings(settings)
    store.close()
    out = tmp_path / "cmp"
    assert main(["report", "--compare", str(fake_run), str(other), "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reference_macs"] == 4e6
    a, b = data["runs"]
    assert a["hypervolume"] == pytest.approx(b["hypervolume"])  # same trials, same box
    front = [t.metrics for t in run_state(fake_run).pareto_front]
    assert a["hypervolume"] == pytest.approx(front_hypervolume(front, 4e6))
    assert a["run"] != b["run"]
    assert not out.exists()  # --json is for scripts: no files
    assert data["settings_differ"] == ["max_macs: 2000000.0 vs 4000000.0"]
    assert main(["report", "--compare", str(fake_run), str(other), "-o", str(out)]) == 0
    assert (out / "compare.png").stat().st_size > 0 and "data:image/png;base64," in (out / "compare.html").read_text()
    assert main(["report", "--compare", str(fake_run)]) == 2


# ---------------------------------------------------------------------------- issue 16: tables, budget, compare

@pytest.mark.parametrize("inherited,retrained", [(False, False), (True, False), (False, True), (True, True)])
def test_every_front_header_has_its_column(inherited, retrained):
    from nas.report.html import _table, front_table
    from nas.report.table import format_table

    row = {"rank": 1, "trial_id": 3, "arch_id": "abc", "val_acc": 90.0, "test_acc": 89.0, "macs": 1e6, "params": 1e4,
           "activation_bytes": 2048, "device_s": 12.0, "summary": "conv3x3 LAST",
           **({"inherited_val_acc": 50.0} if inherited else {}),
           **({"final_val_acc": 95.0, "final_test_acc": 94.0} if retrained else {})}
    header, cells, numeric = front_table([row])
    assert len(numeric) == len(header) == len(cells[0])
    assert numeric[header.index("device-s")] == "n" and numeric[-1] == "l"
    text = format_table(header, cells, align="".join("r" if c == "n" else "l" for c in numeric))
    head, _, body = text.splitlines()
    assert head.split()[-1] == "architecture" and body.endswith("conv3x3 LAST")
    page = _table(header, cells, numeric)
    assert page.count("<th>") == page.count("<td") == len(header)
    assert '<td class="n">12.0</td><td>conv3x3 LAST</td>' in page


def test_a_short_align_string_is_an_error_not_a_dropped_column():
    from nas.report.html import _table
    from nas.report.table import format_table

    with pytest.raises(ValueError, match="align has 1 letters, the header 2"):
        format_table(["a", "b"], [[1, 2]], align="r")
    with pytest.raises(ValueError, match="numeric has 1 letters"):
        _table(["a", "b"], [[1, 2]], "n")


def test_front_of_report_shows_the_summary_column(fake_run, capsys):
    assert main(["report", str(fake_run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].rstrip().endswith("architecture")
    from nas.report.state import front_rows
    from nas.report.table import printable

    rows = front_rows(run_state(fake_run))
    assert len(rows) > 1
    for row, line in zip(rows, lines[3:]):
        assert line.rstrip().endswith(printable(row["summary"]).rstrip()), line


def test_hypervolume_reference_says_what_it_is(fake_run, tmp_path, capsys):
    from nas.report.state import hypervolume_reference

    assert "the MACs limit" in hypervolume_reference(2e6, 2e6) and "--max-macs" in hypervolume_reference(2e6, 2e6)
    free = hypervolume_reference(None, 1.1e6)
    assert "MACs limit" not in free and "1.1 x the largest child's MACs" in free and "no --max-macs" in free
    run = _copy_with(fake_run, tmp_path / "free", [], max_macs=None)
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "the run has no --max-macs" in page and "the MACs limit" not in page
    assert main(["report", str(fake_run)]) == 0
    assert "the MACs limit (2,000,000 multiply-adds, --max-macs)" in (fake_run / "report.html").read_text()


def test_an_overspent_budget_is_flagged(fake_run, tmp_path, capsys):
    assert main(["report", str(fake_run)]) == 0  # a trial budget: nothing to overspend
    assert "over budget" not in capsys.readouterr().out
    assert "over budget" not in (fake_run / "report.html").read_text()
    spent_h = run_state(fake_run).budget.spent_device_hours
    within = _copy_with(fake_run, tmp_path / "within", [], budget_gpu_hours=spent_h * 2)
    assert main(["report", str(within)]) == 0
    assert "over budget" not in capsys.readouterr().out
    over = _copy_with(fake_run, tmp_path / "over", [], budget_gpu_hours=spent_h / 2)
    assert main(["report", str(over)]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if "over budget" in x]
    assert f"of {spent_h / 2:g} device-hours" in line and "200% of the budget" in line
    assert 'class="warn overspent">over budget: spent' in (over / "report.html").read_text()
    assert run_state(over).to_dict()["budget"]["overspent_device_hours"] == pytest.approx(spent_h / 2)


def test_compare_warns_when_settings_differ(fake_run, tmp_path, capsys, monkeypatch):
    same = _copy_with(fake_run, tmp_path / "same", [])
    assert main(["report", "--compare", str(fake_run), str(same), "-o", str(tmp_path / "a")]) == 0
    assert "different settings" not in capsys.readouterr().err
    assert "different settings" not in (tmp_path / "a" / "compare.html").read_text()
    other = _copy_with(fake_run, tmp_path / "other", [], dataset="cifar10", epochs=5,
                       objectives=["accuracy", "macs", "params"], controller="random")
    assert main(["report", "--compare", str(fake_run), str(other), "-o", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "(dataset: digits vs cifar10; objectives: accuracy,macs vs accuracy,macs,params; epochs: 2 vs 5)" in err[0]
    assert "controller" not in err[0]  # what a comparison usually varies is no warning
    page = (tmp_path / "b" / "compare.html").read_text()
    assert 'class="warn settings-differ">warning: these runs used different settings (' in page
    assert "dataset: digits vs cifar10" in page
    monkeypatch.chdir(tmp_path / "b")
    before = sorted(p.name for p in Path(".").iterdir())
    assert main(["report", "--compare", str(fake_run), str(other), "--json"]) == 0
    assert sorted(p.name for p in Path(".").iterdir()) == before  # --json writes nothing, not even here
    assert "dataset: digits vs cifar10" in json.loads(capsys.readouterr().out)["settings_differ"][0]


# ---------------------------------------------------------------------------- hostile names, NaN (issue 17)

def _copy_with(fake_run: Path, run: Path, trials: list[tuple[int, Arch, str, dict]], **search) -> Path:
    """fake_run copied to run, with more trials and search settings written straight into its store."""
    shutil.copytree(fake_run, run)
    store = RunStore(run)
    settings = store.settings()
    settings["search"].update(search)
    store.save_settings(settings)
    for trial_id, arch, status, metrics in trials:
        _add(store, trial_id, arch, status, metrics)
    store.close()
    return run


def test_dollar_signs_in_names_are_plain_text_in_figures(fake_run, tmp_path, capsys):
    ref = reference("resnet18").with_io((1, 8, 8), 10)
    name = r"a$\frac{1}{0}$b$x^2$c$\frac{1}{$"  # mathtext would fail on the last pair
    runs = [_copy_with(fake_run, tmp_path / f"{name}{k}", [(10, ref, "ok", {"val_acc": 71.0, "macs": 2e5,
                                                                             "reference": r"ref$\frac{1}{$"})])
            for k in (1, 2)]
    assert main(["report", str(runs[0])]) == 0
    assert all((runs[0] / f).stat().st_size > 0 for f in ("pareto.png", "hypervolume.png", "report.html"))
    assert main(["report", "--compare", *map(str, runs), "-o", str(tmp_path / "cmp")]) == 0  # names in the legends
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0
    assert "nas: error" not in capsys.readouterr().err


def test_control_characters_are_escaped_on_the_terminal_and_in_html(fake_run, tmp_path, capsys):
    space = load_space("resnet_like").with_io((1, 8, 8), 10)
    reason = "failed: ValueError: \x1b[31mred\x1b[0m\r\nsecond line\x07"
    run = _copy_with(fake_run, tmp_path / "ctl", [(10, space.sample(np.random.default_rng(1)), reason, {})])
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert not set(out) & {"\x1b", "\x07", "\r"}
    (failures,) = [line for line in out.splitlines() if line.startswith("failures:")]
    assert r"ValueError: \x1b[31mred\x1b[0m\r\nsecond line\x07" in failures  # one line, shown not obeyed
    page = (run / "report.html").read_text()
    assert not set(page) & {"\x1b", "\x07", "\r"}
    assert r"ValueError: \x1b[31mred\x1b[0m\r\nsecond line\x07" in page and "&lt;script&gt;" in page


def _strict_json(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_json_output_has_null_for_nan(fake_run, tmp_path, capsys):
    space = load_space("resnet_like").with_io((1, 8, 8), 10)
    diverged = {"val_acc": 10.0, "val_loss": float("nan"), "train_loss": float("inf"), "macs": 1e5}
    run = _copy_with(fake_run, tmp_path / "nan", [(10, space.sample(np.random.default_rng(2)), "diverged", diverged)],
                     budget_gpu_hours=float("nan"))
    assert main(["report", str(run), "--json"]) == 0
    data = _strict_json(capsys.readouterr().out)
    assert data["budget"]["gpu_hours"] is None and data["settings"]["budget_gpu_hours"] is None
    (child,) = [t for t in data["trials"] if t["trial_id"] == 10]
    assert child["metrics"]["val_loss"] is None and child["metrics"]["train_loss"] is None
    assert main(["report", str(run)]) == 0
    _strict_json((run / "pareto.json").read_text())
    assert main(["report", "--compare", str(run), str(fake_run), "--json", "-o", str(tmp_path / "cmp")]) == 0
    _strict_json(capsys.readouterr().out.splitlines()[-1])


# ---------------------------------------------------------------------------- a real (tiny) digits run

@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """Three children trained exactly as a search trains them (train_child + checkpoint), stored like a search."""
    from nas.data import load_splits
    from nas.train import train_child

    run = tmp_path_factory.mktemp("digits") / "run"
    settings = _settings(run, controller_options={})
    store = RunStore(run, create=True)
    store.save_settings({"search": settings.to_dict(), "created": time.time()})
    splits = load_splits("digits", val_fraction=settings.val_fraction, seed=settings.seed)
    space = load_space("resnet_like").with_io(splits.info.input_shape, splits.info.classes)
    rng = np.random.default_rng(5)
    for i in range(3):
        arch = space.sample(rng, max_macs=4e5)
        checkpoint = run / "checkpoints" / f"trial_{i}.pt"
        result = train_child(arch, splits, settings.recipe(), checkpoint=checkpoint)
        metrics = {k: v for k, v in result.to_dict().items() if k != "history"}
        _add(store, i, arch, result.status, {**metrics, "device_s": result.device_s}, str(checkpoint))
    store.log("end", {})
    store.close()
    return run


def test_exported_child_reproduces_its_validation_accuracy(digits_run, tmp_path, capsys):
    import torch

    from nas.data import load_splits
    from nas.train import DeviceData, evaluate

    state = run_state(digits_run)
    settings = state.settings
    splits = load_splits("digits", seed=settings["seed"], val_fraction=settings["val_fraction"])
    val = DeviceData(splits.val_x, splits.val_y, splits.info.mean, splits.info.std, torch.device("cpu"))
    for k, record in enumerate(state.pareto_front):
        out = tmp_path / f"k{k}"
        assert main(["export", str(digits_run), "--pareto-index", str(k), "-o", str(out / "model.py")]) == 0
        assert capsys.readouterr().out.split() == [str(out / n) for n in ("model.py", "model.pt", "arch.json")]
        spec = importlib.util.spec_from_file_location(f"exported_{k}", out / "model.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        model = module.build_model()
        model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
        accuracy, _ = evaluate(model, val, 512, contextlib.nullcontext, False)
        assert accuracy == pytest.approx(record.val_acc, abs=1e-6)
        assert json.loads((out / "arch.json").read_text())["arch_id"] == record.arch_id


def test_export_by_trial_without_weights_and_bad_choices(digits_run, fake_run, tmp_path, capsys):
    assert main(["export", str(fake_run), "--trial", "1", "-o", str(tmp_path / "t.py")]) == 0  # the run kept no weights
    assert "kept no weights for trial 1" in capsys.readouterr().err
    assert (tmp_path / "t.py").exists() and not (tmp_path / "t.pt").exists()
    assert main(["export", str(digits_run), "--trial", "0", "--format", "torchscript", "-o", str(tmp_path / "ts")]) == 0
    assert (tmp_path / "ts" / "model.pt").exists()
    capsys.readouterr()
    for argv, message in (([], "give exactly one of --trial"), (["--pareto-index", "50"], "--pareto-index 50"),
                          (["--trial", "99"], "--trial 99: no such trial")):
        assert main(["export", str(digits_run), *argv, "-o", str(tmp_path / "x.py")]) == 2
        assert message in capsys.readouterr().err
    assert main(["export", "resnet18", "--pareto-index", "0", "-o", str(tmp_path / "x.py")]) == 2
    assert "need a run folder" in capsys.readouterr().err
    assert main(["export", "resnet18", "-o", str(tmp_path / "r.py")]) == 0  # the old form still works


def test_retrain_is_recorded_and_reported_beside_the_proxy(digits_run, capsys):
    assert main(["retrain", str(digits_run), "--pareto-index", "0", "--epochs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok" and result["test_acc"] is not None and result["epochs"] == 1
    store = RunStore(digits_run)
    (retrain,) = store.retrains()
    store.close()
    assert retrain["recipe"]["eval_test"] is True and retrain["recipe"]["epochs"] == 1
    assert main(["report", str(digits_run)]) == 0
    out = capsys.readouterr().out
    assert "proxy val" in out and "final val / test" in out
    assert f"{result['val_acc']:.2f} / {result['test_acc']:.2f}" in out
    assert "final val / test" in (digits_run / "report.html").read_text()


# ---------------------------------------------------------------------------- a real browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
PROBE = """<script nonce="nastest">
window.__errors = []; window.__alerts = [];
window.onerror = function (m) { window.__errors.push(String(m)); };
window.alert = function (m) { window.__alerts.push(String(m)); };
var _ce = console.error; console.error = function (m) { window.__errors.push(String(m)); _ce.apply(console, arguments); };
document.addEventListener("securitypolicyviolation", function (e) { window.__errors.push("csp " + e.violatedDirective); });
window.addEventListener("load", function () {
  var pre = document.createElement("pre"); pre.id = "nas-probe";
  pre.textContent = JSON.stringify({images: Array.from(document.images).map(function (i) {
    return [i.complete, i.naturalWidth, i.naturalHeight]; }), errors: window.__errors, alerts: window.__alerts,
    tables: document.querySelectorAll("table").length, title: document.title});
  document.body.appendChild(pre);
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs it: apt-get install chromium)")
def test_report_renders_in_a_headless_browser(fake_run, tmp_path, capsys):
    assert main(["report", str(fake_run)]) == 0
    capsys.readouterr()
    page = (fake_run / "report.html").read_text()
    # The probe page is the report with one nonce-allowed script; the hostile names must still not run.
    assert "script-src" not in page
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("default-src 'none';", "default-src 'none'; script-src 'nonce-nastest';", 1)
                     .replace("<head>", "<head>" + PROBE, 1))
    done = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="nas-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert len(result["images"]) == 2 and all(ok and w > 0 and h > 0 for ok, w, h in result["images"]), result
    assert result["errors"] == [] and result["alerts"] == [], result
    assert result["tables"] >= 4 and EVIL[:8] not in done.stdout.split('<pre id="nas-probe">')[0].replace("&lt;", "")
    # the report itself, as written: a screenshot, and no console errors or CSP complaints on stderr
    shot = tmp_path / "report.png"
    done = _chromium(tmp_path, "--enable-logging=stderr", "--v=0", "--window-size=1280,2000", f"--screenshot={shot}",
                     (fake_run / "report.html").as_uri())
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line
               or "Content Security Policy" in line]
    assert console == [], console
