"""`nas export`: an architecture (or a run's child, with its weights) as PyTorch code, TorchScript or ONNX."""

from __future__ import annotations

import argparse
import sys

from nas.arch import Arch
from nas.cli.common import UsageError, add_target_args, targets


def add_export(sub) -> None:
    p = sub.add_parser("export", help="write an architecture as standalone PyTorch code, TorchScript or ONNX",
                       description="Export TARGET: a .py file needing only torch (plus model.pt with --weights, "
                                   "and arch.json), a TorchScript file or an ONNX file. TARGET may be a run folder "
                                   "with --trial ID or --pareto-index K: the child's trained weights come along when "
                                   "the run kept them. Prints the written paths.")
    add_target_args(p, many=False)
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="output file (or folder)")
    p.add_argument("--weights", metavar="W", help="a state_dict checkpoint to load (e.g. from a trial)")
    p.add_argument("--from-supernet", action="store_true",
                   help="with a weight-sharing run folder: slice the child's weights out of the run's supernet "
                        "(a fine-tuning start point) instead of taking its own trained weights")
    p.add_argument("--format", choices=("py", "torchscript", "onnx"), default="py")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="ID", help="with a run folder: the child with this trial id")
    which.add_argument("--pareto-index", type=int, metavar="K", help="with a run folder: the K-th front architecture "
                                                                       "(the rank column of nas report)")
    p.set_defaults(run=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.model.export import export
    from nas.store.store_file import DB_NAME

    weights = args.weights
    if (Path(args.targets) / DB_NAME).is_file():  # a run folder: pick one of its children
        from nas.report.state import pick_trial, run_state, trial_weights
        from nas.train.trainer import load_checkpoint

        if args.input or args.classes:
            raise UsageError("--input/--classes do not apply to a run folder (its children were trained at one shape)")
        state = run_state(args.targets)
        record = pick_trial(state, args.trial, args.pareto_index)
        arch = _record_arch(record)
        if args.from_supernet:
            if weights:
                raise UsageError("give --weights or --from-supernet, not both")
            weights = _supernet_weights(Path(args.targets), state, arch)
        kept = None if weights else trial_weights(args.targets, record)
        if kept:
            _, arch, _ = load_checkpoint(kept)  # the network as trained (a proxy resolution changes its input)
            weights = kept
        elif not weights:
            print(f"nas: note: {args.targets} kept no weights for trial {record.trial_id} (a run keeps its "
                  "Pareto front's checkpoints); writing the architecture untrained", file=sys.stderr)
    else:
        if args.trial is not None or args.pareto_index is not None or args.from_supernet:
            raise UsageError(f"--trial, --pareto-index and --from-supernet need a run folder; {args.targets} has no {DB_NAME}")
        found = list(targets(args))
        if len(found) != 1:
            raise UsageError(f"export takes exactly one architecture, the target gave {len(found)}")
        arch = found[0][1]
    try:
        paths = export(arch, args.output, weights=weights, format=args.format)
    except ModuleNotFoundError as err:
        if err.name not in ("onnx", "onnxscript"):
            raise
        raise UsageError(f"--format onnx needs the {err.name} package: pip install 'nas[export]'") from None
    for path in paths:
        print(path)
    return 0


def _record_arch(record) -> Arch:
    """The trial's architecture; a record whose stored architecture is unreadable is a usage error."""
    if record.arch is None:
        raise UsageError(f"trial {record.trial_id}: the run holds no readable architecture for it")
    return record.arch


def _supernet_weights(run_dir, state, arch: Arch) -> dict:
    """The child's tensors sliced out of a weight-sharing run's supernet, as a state_dict."""
    from nas.oneshot.phases import SUPERNET_FILE
    from nas.oneshot.supernet import Supernet
    from nas.space.search_space import load_space

    path = run_dir / SUPERNET_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir}: no {SUPERNET_FILE}; --from-supernet needs a run of --controller weight-sharing "
                         "whose supernet finished training")
    return Supernet.load(path, space=load_space(state.settings["space"])).child_state_dict(arch)
