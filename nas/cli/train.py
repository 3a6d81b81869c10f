"""`nas train`: train one architecture with the proxy recipe, as every search trial does."""

from __future__ import annotations

import argparse
import os
import sys

from nas.cli.common import UsageError, add_target_args, fraction, positive_int, targets


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train one architecture on a data set and report its accuracy",
                       description="Train TARGET with the proxy recipe (SGD + Nesterov, cosine, label smoothing, "
                                   "crop/flip augmentation): the same function every search trial calls.")
    add_target_args(p, many=False)
    p.add_argument("--dataset", default="digits", help="cifar10, cifar100, mnist, fashion_mnist, imagefolder, digits, synthetic")
    p.add_argument("--data-dir", help="where data sets are cached (default ~/.cache/nas/data or $NAS_DATA_DIR)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--train-fraction", type=fraction, default=1.0, help="proxy: train on this share of the training split")
    p.add_argument("--resolution", type=int, default=0, help="proxy: train at this lower resolution")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", action="store_true", help="also report test accuracy (never used for selection)")
    p.add_argument("--checkpoint", help="save state_dict + architecture + metrics here (for nas export --weights)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from nas.data import load_splits
    from nas.outcome import TrialStatus
    from nas.train.recipe import Recipe
    from nas.train.trainer import train_child

    found = list(targets(args))
    if len(found) != 1:
        raise UsageError(f"train takes exactly one architecture, the target gave {len(found)}")
    splits = load_splits(args.dataset, data_dir=args.data_dir, seed=args.seed)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, train_fraction=args.train_fraction,
                    resolution=args.resolution, device=args.device, seed=args.seed, eval_test=args.test)
    result = train_child(found[0][1], splits, recipe, checkpoint=args.checkpoint)
    failed = result.outcome.status is TrialStatus.FAILED
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
