"""`nas retrain`: one child of a run trained again from scratch, longer; recorded in the run."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.common import UsageError, pct, positive_int


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
    p.add_argument("--epochs", type=positive_int, required=True)
    p.add_argument("--batch-size", type=positive_int, help="default: the run's")
    p.add_argument("--lr", type=float, help="default: the run's")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=cmd_retrain)


def cmd_retrain(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from nas.data import load_splits
    from nas.jsonio import dumps
    from nas.report.state import pick_trial, run_state
    from nas.report.table import printable
    from nas.search.settings import SearchSettings
    from nas.store.run_store import RunStore
    from nas.train.recipe import with_overrides
    from nas.train.trainer import train_child

    state = run_state(args.run_dir)
    record = pick_trial(state, args.trial, args.pareto_index)
    if record.arch is None:
        raise UsageError(f"trial {record.trial_id}: the run holds no readable architecture for it")
    settings = SearchSettings.from_dict(state.settings)
    # The run's recipe, minus its proxies (a share of the data, a lower resolution), trained longer.
    recipe = replace(with_overrides(settings.recipe(), batch_size=args.batch_size, lr=args.lr), epochs=args.epochs,
                     train_fraction=1.0, resolution=0, device=args.device, threads=0, eval_test=True)
    splits = load_splits(settings.dataset, data_dir=settings.data_dir, val_fraction=settings.val_fraction, seed=settings.seed)
    checkpoint = _new_checkpoint(Path(args.run_dir) / "checkpoints", record.trial_id, args.epochs)
    result = train_child(record.arch, splits, recipe, checkpoint=checkpoint)
    metrics = {k: v for k, v in result.to_dict().items() if k != "history"}
    store = RunStore(args.run_dir)
    try:
        store.add_retrain(record.trial_id, asdict(recipe), metrics, result.device_s,
                          str(checkpoint) if checkpoint.exists() else None)
    finally:
        store.close()
    saved = str(checkpoint) if checkpoint.exists() else None
    if args.json:
        print(dumps({"trial_id": record.trial_id, "proxy_val_acc": record.val_acc, **metrics, "checkpoint": saved}))
        return 0
    test = pct(result.test_acc)
    print(printable(f"trial {record.trial_id} ({record.arch_id}) retrained {result.epochs} epochs: {result.status}   "
                    f"final val {result.val_acc:.2f}% / test {test}%   proxy val {pct(record.val_acc)}%   "
                    f"{result.wall_s:.1f} s on {result.device}"))
    print(printable(f"weights saved to {saved}" if saved else "no weights saved (the training did not finish)"))
    return 0


def _new_checkpoint(folder: Path, trial_id: int, epochs: int) -> Path:
    """A file name no earlier retrain used: retrain_trial_T_eE.pt, then _2, _3, ..."""
    stem, n = f"retrain_trial_{trial_id}_e{epochs}", 1
    path = folder / f"{stem}.pt"
    while path.exists():
        n += 1
        path = folder / f"{stem}_{n}.pt"
    return path
