"""CLI commands that train: `nas train`, `nas search`, `nas report`, `nas bench` (see nas.cli)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

from nas.cli import UsageError, _positive_int, add_target_args, parse_number, targets


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train one architecture on a data set and report its accuracy",
                       description="Train TARGET with the proxy recipe (SGD + Nesterov, cosine, label smoothing, "
                                   "crop/flip augmentation): the same function every search trial calls.")
    add_target_args(p, many=False)
    p.add_argument("--dataset", default="digits", help="cifar10, cifar100, mnist, fashion_mnist, imagefolder, digits, synthetic")
    p.add_argument("--data-dir", help="where data sets are cached (default ~/.cache/nas/data or $NAS_DATA_DIR)")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--train-fraction", type=_fraction, default=1.0, help="proxy: train on this share of the training split")
    p.add_argument("--resolution", type=int, default=0, help="proxy: train at this lower resolution")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", action="store_true", help="also report test accuracy (never used for selection)")
    p.add_argument("--checkpoint", help="save state_dict + architecture + metrics here (for nas export --weights)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from nas.data import load_splits
    from nas.train import Recipe, train_child

    found = list(targets(args))
    if len(found) != 1:
        raise UsageError(f"train takes exactly one architecture, the target gave {len(found)}")
    splits = load_splits(args.dataset, data_dir=args.data_dir, seed=args.seed)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, train_fraction=args.train_fraction,
                    resolution=args.resolution, device=args.device, seed=args.seed, eval_test=args.test)
    result = train_child(found[0][1], splits, recipe, checkpoint=args.checkpoint)
    failed = result.status.startswith("failed")
    if args.json:
        from nas.jsonio import dumps

        print(dumps(result.to_dict()))
        return 1 if failed else 0
    if failed:  # the child ran and failed (not bad input): the reason in one line, exit 1
        print(f"nas: error: {found[0][0]} on {args.dataset}: {result.status} (NAS_DEBUG=1 prints the traceback)",
              file=sys.stderr)
        if os.environ.get("NAS_DEBUG"):
            print(result.error, file=sys.stderr)
        return 1
    test = f"   test {result.test_acc:.2f}%" if result.test_acc is not None else ""
    print(f"{found[0][0]} on {args.dataset}: {result.status}   val {result.val_acc:.2f}%{test}   "
          f"loss {result.val_loss:.4f}   {result.epochs} epochs   {result.wall_s:.1f} s   "
          f"{result.images_per_s:,.0f} images/s on {result.device}   "
          f"{result.macs / 1e6:.2f} M multiply-adds   {result.params / 1e6:.3f} M params")
    return 0


def add_search(sub) -> None:
    from controllers import CONTROLLERS

    p = sub.add_parser("search", help="search a space: children trained as Ray Tune trials under a budget",
                       description="Search SPACE with a controller; every child is a Ray Tune trial; results go to a "
                                   "run folder that nas report and nas export read. --resume DIR continues a run.")
    p.add_argument("--space", help="built-in space name or .yaml path")
    p.add_argument("--controller", default="evolution", help=f"one of {', '.join(sorted(CONTROLLERS))} (default evolution)")
    p.add_argument("--dataset", help="data set (default: the space's, else cifar10)")
    p.add_argument("--data-dir")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-gpu-hours", type=_positive_float, metavar="H", help="device-hours (a CPU trial counts one device)")
    budget.add_argument("--budget-trials", type=_positive_int, metavar="N", help="number of children")
    p.add_argument("--objectives", default="accuracy,macs", help="comma-separated: accuracy, macs, params")
    p.add_argument("--max-macs", type=parse_number, metavar="M")
    p.add_argument("--max-params", type=parse_number, metavar="P")
    p.add_argument("--epochs", type=_positive_int, default=10)
    p.add_argument("--batch-size", type=_positive_int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--train-fraction", type=_fraction, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=None, help="fractional GPUs share one GPU (default 1 if any GPU, else 0)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--scheduler", choices=("asha",), help="multi-fidelity early stopping by Pareto rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", help="default runs/<date>-<space>-<controller>")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR (all settings come from it)")
    p.add_argument("--ray-address", help="auto or host:port of an existing Ray cluster (default: a private local Ray)")
    p.add_argument("--max-failures-in-a-row", type=int, default=20, metavar="N",
                   help="stop starting children after N failures in a row (default 20; 0 never stops)")
    p.add_argument("--controller-option", action="append", default=[], metavar="KEY=VALUE",
                   help="controller setting, e.g. population=20 (repeatable)")
    p.set_defaults(run=cmd_search)


def _controller_options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--controller-option needs KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_search(args: argparse.Namespace) -> int:
    from nas.search import SearchSettings, default_run_dir, run_search
    from nas.space import load_space

    if args.resume:
        run_dir = run_search_resume(args.resume, args.ray_address)
    else:
        if not args.space:
            raise UsageError("give --space SPACE (or --resume DIR)")
        space = load_space(args.space)
        gpus = args.gpus_per_trial
        if gpus is None:
            import torch

            gpus = 1.0 if torch.cuda.is_available() else 0.0
        settings = SearchSettings(
            space=args.space, controller=args.controller, dataset=args.dataset or space.spec.dataset,
            budget_gpu_hours=args.budget_gpu_hours, budget_trials=args.budget_trials,
            objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()),
            max_macs=args.max_macs, max_params=args.max_params, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, train_fraction=args.train_fraction, gpus_per_trial=gpus, cpus_per_trial=args.cpus_per_trial,
            seed=args.seed, run_dir=str(args.run_dir or default_run_dir(args.space, args.controller)),
            ray_address=args.ray_address, scheduler=args.scheduler, data_dir=args.data_dir,
            controller_options=_controller_options(args.controller_option),
            max_failures_in_a_row=args.max_failures_in_a_row)
        run_dir = run_search(settings)  # checks every input before it creates the run folder
    print(run_dir)
    return 0


def run_search_resume(run_dir: str, ray_address: str | None) -> Path:
    from dataclasses import replace

    from nas.search import SearchSettings, run_search
    from nas.store import RunStore

    store = RunStore(run_dir, readonly=True)
    try:
        settings = SearchSettings.from_dict(store.settings()["search"])
    finally:
        store.close()
    settings = replace(settings, run_dir=str(Path(run_dir)), ray_address=ray_address or settings.ray_address)
    return run_search(settings, resume=True)


def add_report(sub) -> None:
    p = sub.add_parser("report", help="a run's Pareto front, totals and report files (csv, json, png, html)",
                       description="Report on a run folder (finished, running or killed): the accuracy-vs-MACs front "
                                   "and totals on the terminal; pareto.csv, pareto.json, pareto.png, hypervolume.png "
                                   "and a self-contained report.html written into the folder (or -o DIR). "
                                   "--compare RUN_A RUN_B ... puts several runs on one plot (compare.png, compare.html).")
    p.add_argument("run_dir", metavar="RUN_DIR", nargs="?")
    p.add_argument("--json", action="store_true", help="the machine-readable state (with the front's summaries) "
                                                      "as one JSON object; writes no files")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="compare these runs (and RUN_DIR, if given)")
    p.add_argument("-o", "--output", metavar="DIR", help="where the files go (default: the run folder; "
                                                         "with --compare, the current directory)")
    p.set_defaults(run=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from nas.jsonio import dumps
    from nas.report import front_rows, run_phase, run_state, weight_sharing_line, write_report

    if args.compare:
        return _compare(([args.run_dir] if args.run_dir else []) + args.compare, args.output or ".", args.json)
    if not args.run_dir:
        raise UsageError("give RUN_DIR (or --compare RUN_A RUN_B ...)")
    state = run_state(args.run_dir)
    rows = front_rows(state)
    if args.json:
        print(dumps({**state, "front": rows}))
        return 0
    from nas.report_html import front_table
    from nas.table import format_table, printable

    header, cells, numeric = front_table(rows)
    print(printable(f"Pareto front of {args.run_dir} (accuracy vs multiply-adds; FLOPs are multiply-adds; {run_phase(state)})"))
    print(format_table(header, cells, align="".join("r" if c == "n" else "l" for c in numeric)))
    running = [t for t in state["trials"] if t["status"] == "running"]
    if running:
        print(printable("running: " + ", ".join(f"trial {t['trial_id']} ({t['arch_id']})" for t in running[:10])
                        + (f" and {len(running) - 10} more" if len(running) > 10 else "")))
    c, b = state["counts"], state["budget"]
    spent = f"{b['spent_device_hours']:.4f}" + (f" of {b['gpu_hours']} device-hours" if b["gpu_hours"] else " device-hours")
    hv = f"{state['hypervolume']:.4f}" if state["hypervolume"] is not None else "-"
    print(f"trials: {c['ok']} finished, {c['failed']} failed, {c['stopped']} stopped, {c['running']} running | "
          f"spent {spent} | hypervolume {hv}")
    ws = weight_sharing_line(state)
    if ws:
        print(printable(ws))
    reasons = Counter(t["status"] for t in state["trials"] if t["status"] not in ("ok", "running", "stopped"))
    if reasons:
        print(printable("failures: " + "; ".join(f"{n} x {why}" for why, n in reasons.most_common(3))
                        + (f"; {len(reasons) - 3} other reasons" if len(reasons) > 3 else "")))
    out = Path(args.output) if args.output else Path(args.run_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = write_report(out, state, rows)
    print(printable(f"wrote {', '.join(p.name for p in paths)} in {out}"))
    return 0


def _compare(run_dirs: list[str], out_dir: str, as_json: bool) -> int:
    from nas.jsonio import dumps
    from nas.report import write_compare
    from nas.table import format_table, printable

    if len(run_dirs) < 2:
        raise UsageError("--compare needs at least two run folders")
    paths, runs, scale = write_compare(run_dirs, out_dir)
    rows = []
    for r in runs:
        s = r["state"]
        best = max((t["val_acc"] for t in s["pareto_front"] if t["val_acc"] is not None), default=None)
        rows.append({"run": r["label"], "run_dir": s["run_dir"], "finished": s["counts"]["ok"], "failed": s["counts"]["failed"],
                     "device_hours": s["budget"]["spent_device_hours"], "front": len(s["pareto_front"]),
                     "best_val_acc": best, "hypervolume": r["hypervolume"]})
    if as_json:
        print(dumps({"runs": rows, "reference_macs": scale, "files": [str(p) for p in paths]}))
        return 0
    print(format_table(["run", "finished", "failed", "device-hours", "front", "best val %", "hypervolume"],
                       [[r["run"], r["finished"], r["failed"], f"{r['device_hours']:.4f}", r["front"], _pct(r["best_val_acc"]),
                         "-" if r["hypervolume"] is None else f"{r['hypervolume']:.4f}"] for r in rows], align="lrrrrrr"))
    print(f"hypervolumes share one reference point: 0% accuracy and {scale or 0:,.0f} multiply-adds")
    print(printable(f"wrote {', '.join(str(p) for p in paths)}"))
    return 0


def add_retrain(sub) -> None:
    p = sub.add_parser("retrain", help="train a found architecture from scratch with a longer recipe",
                       description="Train one child of RUN_DIR again from scratch on the full training split at full "
                                   "resolution, with the run's recipe but more epochs, and report validation and test "
                                   "accuracy; the result is recorded in the run, so nas report shows it beside the "
                                   "proxy accuracy.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--pareto-index", type=int, metavar="K", help="the K-th front architecture (nas report's rank)")
    which.add_argument("--trial", type=int, metavar="ID", help="the child with this trial id")
    p.add_argument("--epochs", type=_positive_int, required=True)
    p.add_argument("--batch-size", type=_positive_int, help="default: the run's")
    p.add_argument("--lr", type=float, help="default: the run's")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=cmd_retrain)


def cmd_retrain(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from nas.arch import Arch
    from nas.data import load_splits
    from nas.jsonio import dumps
    from nas.report import pick_trial, run_state
    from nas.search import SearchSettings
    from nas.store import RunStore
    from nas.table import printable
    from nas.train import train_child, with_overrides

    state = run_state(args.run_dir)
    record = pick_trial(state, args.trial, args.pareto_index)
    settings = SearchSettings.from_dict(state["settings"])
    # The run's recipe, minus its proxies (a share of the data, a lower resolution), trained longer.
    recipe = replace(with_overrides(settings.recipe(), batch_size=args.batch_size, lr=args.lr), epochs=args.epochs,
                     train_fraction=1.0, resolution=0, device=args.device, threads=0, eval_test=True)
    splits = load_splits(settings.dataset, data_dir=settings.data_dir, val_fraction=settings.val_fraction, seed=settings.seed)
    checkpoint = Path(args.run_dir) / "checkpoints" / f"retrain_trial_{record['trial_id']}_e{args.epochs}.pt"
    result = train_child(Arch.from_dict(record["arch"]), splits, recipe, checkpoint=checkpoint)
    metrics = {k: v for k, v in result.to_dict().items() if k != "history"}
    store = RunStore(args.run_dir)
    try:
        store.add_retrain(record["trial_id"], asdict(recipe), metrics, result.device_s,
                          str(checkpoint) if checkpoint.exists() else None)
    finally:
        store.close()
    if args.json:
        print(dumps({"trial_id": record["trial_id"], "proxy_val_acc": record["val_acc"], **metrics}))
        return 0
    test = _pct(result.test_acc)
    print(printable(f"trial {record['trial_id']} ({record['arch_id']}) retrained {result.epochs} epochs: {result.status}   "
                    f"final val {result.val_acc:.2f}% / test {test}%   proxy val {_pct(record['val_acc'])}%   "
                    f"{result.wall_s:.1f} s on {result.device}"))
    return 0


def _pct(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="run controllers on a tabular NAS benchmark (no training, no Ray)",
                       description="Score a controller against real ground truth: training is a table lookup.")
    p.add_argument("--space", required=True, choices=("nasbench201", "nasbench_macro"))
    p.add_argument("--table", required=True, help="the benchmark's CSV (see ../shared/benchmarks)")
    p.add_argument("--controller", default="evolution")
    p.add_argument("--queries", type=_positive_int, default=150)
    p.add_argument("--seeds", type=_positive_int, default=10)
    p.add_argument("--objectives", default="accuracy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from nas.bench import format_bench, run_bench
    from nas.jsonio import dumps

    if not Path(args.table).exists():
        raise UsageError(f"{args.table}: no such table")
    objectives = tuple(o.strip() for o in args.objectives.split(",") if o.strip())
    result = run_bench(args.space, args.table, args.controller, args.queries, args.seeds, objectives)
    print(dumps(result) if args.json else format_bench(result))
    return 0


COMMANDS = [add_train, add_search, add_report, add_retrain, add_bench]
