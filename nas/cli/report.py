"""`nas report`: a run's front and totals on the terminal, its report files; --compare of several runs."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from nas.cli.common import UsageError, pct

if TYPE_CHECKING:
    from nas.store.run_store import TrialRecord


def add_report(sub) -> None:
    p = sub.add_parser("report", help="a run's Pareto front, totals and report files (csv, json, png, html)",
                       description="Report on a run folder (finished, running or killed): the accuracy-vs-MACs front "
                                   "and totals on the terminal; pareto.csv, pareto.json, pareto.png, hypervolume.png "
                                   "and a self-contained report.html written into the folder (or -o DIR). "
                                   "--compare RUN_A RUN_B ... puts several runs on one plot (compare.png, compare.html).")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?")
    p.add_argument("--json", action="store_true", help="the machine-readable state (with the front's summaries) "
                                                      "as one JSON object; writes no files (with --compare too)")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="compare these runs (and RUN_DIR, if given)")
    p.add_argument("--trial", type=int, metavar="N", help="print trial N's record (status, reason, metrics, device "
                                                          "time) and, when it failed, its full traceback; writes no files")
    p.add_argument("-o", "--output", metavar="DIR", help="where the files go (default: the run folder; "
                                                         "with --compare, the current directory)")
    p.set_defaults(run=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from nas.jsonio import dumps
    from nas.outcome import TrialStatus
    from nas.report.files import write_report
    from nas.report.phases import PHASE_HEADER, inherited_line, phase_rows
    from nas.report.state import front_rows, pick_trial, run_phase, run_state, trial_json

    if args.compare:
        return _compare(([args.run_dir] if args.run_dir else []) + args.compare, args.output or ".", args.json)
    if not args.run_dir:
        raise UsageError("give RUN_DIR (or --compare RUN_A RUN_B ...)")
    state = run_state(args.run_dir)
    if args.trial is not None:
        try:
            record = pick_trial(state, trial=args.trial)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if args.json:
            print(dumps(trial_json(record)))
            return 0
        return _print_trial(record)
    rows = front_rows(state)
    if args.json:
        print(dumps({**state.to_dict(), "front": rows}))
        return 0
    from nas.report.html import front_table
    from nas.report.table import format_table, printable

    header, cells, numeric = front_table(rows)
    print(printable(f"Pareto front of {args.run_dir} (accuracy vs multiply-adds; FLOPs are multiply-adds; {run_phase(state)})"))
    print(format_table(header, cells, align="".join("r" if c == "n" else "l" for c in numeric)))
    running = [t for t in state.trials if t.outcome.status is TrialStatus.RUNNING]
    if running:
        print(printable("running: " + ", ".join(f"trial {t.trial_id} ({t.arch_id})" for t in running[:10])
                        + (f" and {len(running) - 10} more" if len(running) > 10 else "")))
    c, b = state.counts, state.budget
    spent = f"{b.spent_device_hours:.4f}" + (f" of {b.gpu_hours} device-hours" if b.gpu_hours else " device-hours")
    hv = f"{state.hypervolume:.4f}" if state.hypervolume is not None else "-"
    print(f"trials: {c.ok} finished, {c.failed} failed, {c.stopped} stopped, {c.running} running | "
          f"spent {spent} | hypervolume {hv}")
    if b.overspent_line():
        print(b.overspent_line())
    phases = phase_rows(state.phases)
    if phases:
        print("phases before the children:")
        print(format_table(PHASE_HEADER, [[printable(c) for c in row] for row in phases], align="lrl"))
    inherited = inherited_line(state)
    if inherited:
        print(printable(inherited))
    reasons = Counter(t.status for t in state.trials if t.outcome.unusable)
    if reasons:
        print(printable("failures: " + "; ".join(f"{n} x {why}" for why, n in reasons.most_common(3))
                        + (f"; {len(reasons) - 3} other reasons" if len(reasons) > 3 else "")))
    out = Path(args.output) if args.output else Path(args.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = write_report(out, state, rows)
    print(printable(f"wrote {', '.join(p.name for p in paths)} in {out}"))
    return 0


def _print_trial(record: TrialRecord) -> int:
    """One trial's record on the terminal, with the traceback of a failure."""
    from nas.report.table import printable

    outcome = record.outcome
    lost, device_s = record.lost_device_s or 0.0, record.device_s or 0.0
    lines = [f"trial {record.trial_id} ({record.arch_id}): {outcome.status.value}",
             *([f"reason: {outcome.reason}"] if outcome.reason else []),
             f"device seconds: {device_s + lost:.1f} ({lost:.1f} of them in {record.attempts - 1} "
             f"lost attempt(s))" if lost else f"device seconds: {device_s:.1f}",
             "metrics: " + ", ".join(f"{k}={v}" for k, v in sorted(record.metrics.items()))]
    if record.checkpoint:
        lines.append(f"checkpoint: {record.checkpoint}")
    for line in lines:
        print(printable(line))
    if record.error:
        print("traceback:")
        for line in record.error.rstrip().splitlines():  # line by line: a message in it may hold terminal escapes
            print(printable(line))
    return 0


def _compare(run_dirs: list[str], out_dir: str, as_json: bool) -> int:
    import sys

    from nas.jsonio import dumps
    from nas.report.files import compare_runs, settings_differences, write_compare
    from nas.report.html import different_settings_line
    from nas.report.table import format_table, printable

    if len(run_dirs) < 2:
        raise UsageError("--compare needs at least two run folders")
    runs, scale = compare_runs(run_dirs)
    differences = settings_differences([r["state"] for r in runs])
    if differences:
        print(printable(different_settings_line(differences)), file=sys.stderr)
    rows = []
    for r in runs:
        s = r["state"]
        best = max((t.val_acc for t in s.pareto_front if t.val_acc is not None), default=None)
        rows.append({"run": r["label"], "run_dir": s.run_dir, "finished": s.counts.ok, "failed": s.counts.failed,
                     "device_hours": s.budget.spent_device_hours, "front": len(s.pareto_front),
                     "best_val_acc": best, "hypervolume": r["hypervolume"]})
    if as_json:  # for scripts: the numbers only, no files
        print(dumps({"runs": rows, "reference_macs": scale, "settings_differ": differences}))
        return 0
    paths, _, _ = write_compare(run_dirs, out_dir, (runs, scale))
    print(format_table(["run", "finished", "failed", "device-hours", "front", "best val %", "hypervolume"],
                       [[r["run"], r["finished"], r["failed"], f"{r['device_hours']:.4f}", r["front"], pct(r["best_val_acc"]),
                         "-" if r["hypervolume"] is None else f"{r['hypervolume']:.4f}"] for r in rows], align="lrrrrrr"))
    print(f"hypervolumes share one reference point: 0% accuracy and {scale or 0:,.0f} multiply-adds")
    print(printable(f"wrote {', '.join(str(p) for p in paths)}"))
    return 0
