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
    p.add_argument("--format", choices=("py", "torchscript", "onnx"), default=None,
                   help="default: from the output's extension (.py, .pt/.ts TorchScript, .onnx), else py")
    p.add_argument("--dataset", metavar="NAME", help="with a plain TARGET: the data set the weights were trained on, "
                                                   "for the input contract when the checkpoint does not record it")
    p.add_argument("--proxy-weights", action="store_true",
                   help="with a run folder: export the search's own (proxy) checkpoint even when the child was retrained")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="ID", help="with a run folder: the child with this trial id")
    which.add_argument("--pareto-index", type=int, metavar="K", help="with a run folder: the K-th front architecture "
                                                                       "(the rank column of nas report)")
    p.set_defaults(run=cmd_export)


_EXTENSIONS = {".py": "py", ".pt": "torchscript", ".ts": "torchscript", ".onnx": "onnx"}


def output_format(output: str, given: str | None) -> str:
    """The export format: --format, else the output's extension, else py; a mismatch is a usage error."""
    from pathlib import Path

    implied = _EXTENSIONS.get(Path(output).suffix.lower())
    if given and implied and given != implied:
        raise UsageError(f"{output}: the extension means --format {implied}, but --format {given} was given")
    return given or implied or "py"


def cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nas.model.export import export
    from nas.store.store_file import DB_NAME

    fmt = output_format(args.output, args.format)
    weights, contract, source, used = args.weights, None, None, None
    if (Path(args.targets) / DB_NAME).is_file():  # a run folder: pick one of its children
        from nas.report.state import pick_trial, run_state, trial_weights
        from nas.train.trainer import load_checkpoint

        if args.input or args.classes or args.dataset:
            raise UsageError("--input/--classes/--dataset do not apply to a run folder (its children were trained "
                             "on its data set at one shape)")
        state = run_state(args.targets)
        record = pick_trial(state, args.trial, args.pareto_index)
        arch = _record_arch(record)
        if args.from_supernet:
            if weights:
                raise UsageError("give --weights or --from-supernet, not both")
            weights = _supernet_weights(Path(args.targets), state, arch)
        kept = None
        if not weights:
            retrained = None if args.proxy_weights else _newest_retrain(Path(args.targets), state, record.trial_id)
            kept = retrained or trial_weights(args.targets, record)
            if retrained:
                used = f"the retrained weights {retrained} (--proxy-weights exports the search's own)"
            elif kept:
                used = f"the search's (proxy) weights {kept}"
        if kept:
            _, arch, _ = load_checkpoint(kept)  # the network as trained (a proxy resolution changes its input)
            weights = kept
            contract = _checkpoint_contract(kept)
        elif not weights:
            print(f"nas: note: {args.targets} kept no weights for trial {record.trial_id} (a run keeps its "
                  "Pareto front's checkpoints); writing the architecture untrained", file=sys.stderr)
        if contract is None:
            contract = _dataset_contract(state.settings.get("dataset"), arch, state.settings.get("data_dir"))
            source = f"the run's data set {state.settings.get('dataset')}"
        else:
            source = f"the checkpoint ({contract.get('dataset')})"
    else:
        if args.trial is not None or args.pareto_index is not None or args.from_supernet or args.proxy_weights:
            raise UsageError("--trial, --pareto-index, --from-supernet and --proxy-weights need a run folder; "
                             f"{args.targets} has no {DB_NAME}")
        found = list(targets(args))
        if len(found) != 1:
            raise UsageError(f"export takes exactly one architecture, the target gave {len(found)}")
        arch = found[0][1]
        from nas.cli.targets import CHECKPOINT_SUFFIXES

        if weights is None and Path(args.targets).suffix in CHECKPOINT_SUFFIXES and Path(args.targets).is_file():
            weights = args.targets  # a checkpoint target brings its own weights
        if weights is not None:
            contract = _checkpoint_contract(weights)
            source = "the checkpoint" if contract else None
        if contract is None and args.dataset:
            contract, source = _dataset_contract(args.dataset, arch, None), f"--dataset {args.dataset}"
    try:
        paths = export(arch, args.output, weights=weights, format=fmt, contract=contract)
    except ModuleNotFoundError as err:
        if err.name not in ("onnx", "onnxscript"):
            raise
        raise UsageError(f"--format onnx needs the {err.name} package: pip install 'nas[export]'") from None
    # Said after the export succeeded, so a refused file stays one error line.
    if used:
        print(f"nas: used {used}", file=sys.stderr)
    if source:
        print(f"nas: input contract from {source}", file=sys.stderr)
    elif contract is None:
        print("nas: note: no input contract recorded (the weights do not name their data set; give --dataset "
              "NAME): the export cannot preprocess raw images", file=sys.stderr)
    for path in paths:
        print(path)
    return 0


def _newest_retrain(run_dir, state, trial_id: int):
    """The newest retrain checkpoint of the trial that still exists (looked up in the folder for moved runs)."""
    from pathlib import Path

    for row in reversed(state.retrains):  # oldest first in the store
        if row["trial_id"] != trial_id or not row.get("checkpoint"):
            continue
        path = Path(row["checkpoint"])
        for candidate in (path, run_dir / "checkpoints" / path.name):
            if candidate.is_file():
                return candidate
    return None


def _checkpoint_contract(weights) -> dict | None:
    """The input contract a checkpoint file records, or None (a raw state_dict, an older checkpoint)."""
    from nas.model.checkpoint import load_file
    from nas.model.export import check_contract

    if isinstance(weights, dict):
        return None
    data = load_file(weights)
    if not isinstance(data, dict) or "input_contract" not in data:
        return None
    return check_contract(f"{weights}: field input_contract", data["input_contract"])


def _dataset_contract(name, arch: Arch, data_dir) -> dict | None:
    """The input contract of a data set by name, at the architecture's input shape."""
    from nas.data import dataset_info
    from nas.model.export import input_contract

    if not name:
        return None
    info = dataset_info(name, data_dir=data_dir)
    return input_contract(arch.input, info.classes, info.mean, info.std, info.name)


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
