"""The report files of a run folder (pareto.csv/.json/.png, hypervolume.png, report.html) and of a comparison."""

from __future__ import annotations

import csv
from pathlib import Path

from nas.jsonio import dumps
from nas.report.html import compare_html, report_html
from nas.report.phases import phase_seconds
from nas.report.plots import compare_png, hypervolume_png, pareto_png
from nas.report.state import (
    RunState,
    front_hypervolume,
    front_rows,
    hypervolume_curve,
    hypervolume_reference,
    run_state,
)

CSV_COLUMNS = ("rank", "trial_id", "arch_id", "val_acc", "test_acc", "macs", "params", "activation_bytes",
               "device_s", "final_val_acc", "final_test_acc", "checkpoint", "summary")



def write_tables(run_dir: str | Path, rows: list[dict]) -> list[Path]:
    """pareto.csv and pareto.json in the run folder."""
    out = Path(run_dir)
    with open(out / "pareto.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(k) is None else row[k] for k in CSV_COLUMNS])
    (out / "pareto.json").write_text(dumps(rows, indent=1) + "\n")
    return [out / "pareto.csv", out / "pareto.json"]


def write_report(run_dir: str | Path, state: RunState | None = None, rows: list[dict] | None = None) -> list[Path]:
    """Every report file in the run folder: pareto.csv/.json/.png, hypervolume.png, report.html."""
    state = state if state is not None else run_state(run_dir)
    rows = rows if rows is not None else front_rows(state)
    out = Path(run_dir)
    written = write_tables(out, rows)
    hours, volume = hypervolume_curve(state.trials, state.hypervolume_macs, phase_seconds(state.phases))
    images = {"pareto": pareto_png(state, f"{out.name}: accuracy vs multiply-adds"),
              "hypervolume": hypervolume_png([(out.name, hours, volume)],
                                             hypervolume_reference(state.settings.get("max_macs"), state.hypervolume_macs))}
    for name, data in images.items():
        (out / f"{name}.png").write_bytes(data)
        written.append(out / f"{name}.png")
    (out / "report.html").write_text(report_html(state, rows, images), encoding="utf-8")
    return written + [out / "report.html"]


# the settings that decide what a child's numbers mean; the controller, seed and budget are what a
# comparison usually varies, so they are left out
COMPARABLE_SETTINGS = ("space", "dataset", "objectives", "epochs", "batch_size", "lr", "train_fraction", "val_fraction",
                       "resolution", "max_macs", "max_params", "scheduler")


def settings_differences(states: list[RunState]) -> list[str]:
    """`dataset: digits vs cifar10` for each comparable setting that differs between the runs."""
    out = []
    for key in COMPARABLE_SETTINGS:
        values = [s.settings.get(key) for s in states]
        values = [tuple(v) if isinstance(v, list) else v for v in values]  # JSON gives lists for tuples
        if len(set(map(repr, values))) > 1:
            seen = dict.fromkeys(",".join(v) if isinstance(v, tuple) else str(v) for v in values)
            out.append(f"{key}: {' vs '.join(seen)}")
    return out


def compare_runs(run_dirs: list[str | Path]) -> tuple[list[dict], float | None]:
    """Several runs read for a comparison, their hypervolumes under one reference point (its MACs returned)."""
    states = [run_state(d) for d in run_dirs]
    # one box for every run: the largest of their own boxes, so no run's front is cut off
    scale = max((s.hypervolume_macs for s in states if s.hypervolume_macs), default=None)
    runs = []
    for d, s in zip(run_dirs, states):
        hours, volume = hypervolume_curve(s.trials, scale, phase_seconds(s.phases))
        runs.append({"label": _label(d, runs), "state": s, "hours": hours, "volume": volume,
                     "hypervolume": front_hypervolume([t.metrics for t in s.pareto_front], scale),
                     "rows": front_rows(s)})
    return runs, scale


def write_compare(run_dirs: list[str | Path], out_dir: str | Path,
                  compared: tuple[list[dict], float | None] | None = None) -> tuple[list[Path], list[dict], float | None]:
    """compare.png and compare.html for several runs (compared: `compare_runs` of them, when already read)."""
    runs, scale = compared if compared is not None else compare_runs(run_dirs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    image = compare_png(runs)
    (out / "compare.png").write_bytes(image)
    html = compare_html(runs, scale, image, settings_differences([r["state"] for r in runs]))
    (out / "compare.html").write_text(html, encoding="utf-8")
    return [out / "compare.png", out / "compare.html"], runs, scale


def _label(run_dir: str | Path, earlier: list[dict]) -> str:
    """A run's folder name, made unique among the runs compared."""
    name, taken = Path(run_dir).resolve().name or str(run_dir), {r["label"] for r in earlier}
    label, k = name, 1
    while label in taken:
        k += 1
        label = f"{name} ({k})"
    return label
