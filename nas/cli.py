"""The `nas` command line: one small function per command over the library.

Adding a command: write `cmd_NAME(args) -> int` and `add_NAME(sub)` (which creates the subparser and
calls `set_defaults(run=cmd_NAME)`), then append `add_NAME` to COMMANDS. Commands that take
architectures use `add_target_args` and `targets(args)` (see nas.targets for the forms a target takes).

Bad user input of any kind prints one line `nas: error: ...` and exits with 2; set NAS_DEBUG=1 to see
the traceback instead. Heavy modules (torch) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Callable, Iterator

from nas.arch import Arch
from nas.jsonio import dumps, recode
from nas.table import printable
from nas.targets import TargetError, iter_labeled, parse_io

EXIT_USAGE = 2


class UsageError(Exception):
    """A command's own complaint about its arguments; main prints it as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are the one line every other error is."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"nas: error: {message} (see '{self.prog} --help')\n")


# ---------------------------------------------------------------------------- argument types

_SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_number(text: str) -> float:
    """'2e8', '300M', '1.5G', '50k', '1_000_000' -> a positive number (K/M/G/T are powers of 1000)."""
    m = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)\s*([kmgt]?)\s*", text.lower())
    if not m or not 0 < float(m[1]) * _SUFFIXES[m[2]] < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number like 2e8, 300M or 1.5G, got {text!r}")
    value = float(m[1]) * _SUFFIXES[m[2]]
    return int(value) if value.is_integer() else value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _io_shape(text: str) -> tuple[int, int, int]:
    try:
        return parse_io(text)
    except TargetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_io_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=_io_shape, metavar="CxHxW", help="input shape, e.g. 3x32x32 (overrides the target's)")
    p.add_argument("--classes", type=_positive_int, metavar="K", help="number of classes (overrides the target's)")


def add_target_args(p: argparse.ArgumentParser, many: bool = True) -> None:
    """TARGET(s) and --input/--classes; read them back with `targets(args)`."""
    p.add_argument("targets", nargs="+" if many else None, metavar="TARGET",
                   help="architecture JSON file, '-' (stdin, one per line), reference name (resnet18, ...), "
                        "SPACE:i,j,k (decision indices) or nasbench201:|op~0|+|op~0|op~1|+...")
    add_io_args(p)


def targets(args: argparse.Namespace) -> Iterator[tuple[str, Arch]]:
    """(label, arch) for each of the command's targets, stdin expanded, lazily."""
    names = args.targets if isinstance(args.targets, list) else [args.targets]
    return iter_labeled(names, sys.stdin, args.input, args.classes)


# ---------------------------------------------------------------------------- commands

def add_spaces(sub) -> None:
    p = sub.add_parser("spaces", help="list the built-in search spaces, or one space's decisions",
                       description="Without SPACE: the built-in spaces with their exact sizes. With SPACE (a "
                                   "built-in name or a .yaml file): its decisions, in the order SPACE:i,j,k uses.")
    p.add_argument("space", nargs="?", metavar="SPACE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(run=cmd_spaces)


def cmd_spaces(args: argparse.Namespace) -> int:
    from nas.space import load_space
    from nas.table import format_table
    from search_spaces import builtin_space_files

    if args.space:
        return _print_decisions(load_space(args.space), args.json)
    rows = []
    for name in builtin_space_files():
        space = load_space(name)
        rows.append({"name": space.name, "size": space.size(), "decisions": len(space.decisions),
                     "dataset": space.spec.dataset, "description": space.spec.description})
    if args.json:
        for row in rows:
            print(dumps(row))
    else:
        print(format_table(["space", "architectures", "decisions", "dataset", "description"],
                           [list(r.values()) for r in rows], align="lrrll"))
    return 0


def _print_decisions(space, as_json: bool) -> int:
    from nas.table import format_table

    if as_json:
        for k, d in enumerate(space.decisions):
            print(dumps({"index": k, "name": d.name, "options": list(d.options), "path": d.path,
                         "when": {n: sorted(allowed) for n, allowed in d.condition}}))
        return 0
    rows, by_name = [], {d.name: d for d in space.decisions}
    for k, d in enumerate(space.decisions):
        options = " | ".join(f"{i}={_option(o)}" for i, o in enumerate(d.options))
        when = ", ".join(f"{n} in {{{', '.join(_option(by_name[n].options[i]) for i in sorted(a))}}}"
                         for n, a in d.condition)
        rows.append([k, d.name, options, when])
    print(f"{space.name}: {space.size():,} architectures, {len(space.decisions)} decisions")
    print(format_table(["#", "decision", "options (index=value)", "active when"], rows, align="rlll"))
    return 0


def _option(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    return str(value)


def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="sample architectures uniformly from a space (one JSON per line)",
                       description="Uniformly random architectures of SPACE (a built-in name or a .yaml file), "
                                   "one Arch JSON per line; the same seed gives the same lines.")
    p.add_argument("space", metavar="SPACE")
    p.add_argument("-n", type=_positive_int, default=1, help="how many (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--max-macs", type=parse_number, metavar="M", help="at most this many multiply-adds (2e8, 300M)")
    p.add_argument("--max-params", type=parse_number, metavar="P", help="at most this many parameters (1.5M)")
    add_io_args(p)
    p.set_defaults(run=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from nas.space import load_space

    space = load_space(args.space)
    if args.input or args.classes:
        space = space.with_io(args.input, args.classes)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.n):
        print(recode(space.sample(rng, args.max_macs, args.max_params).to_json()))
    return 0


def add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="per-layer shapes, parameters, MACs and memory of architectures",
                       description="The per-layer cost table of each TARGET (exact, analytic; nothing is built).")
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per target and line")
    p.set_defaults(run=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from dataclasses import fields as dataclass_fields

    from nas.cost import arch_cost
    from nas.layers import LayerRow
    from nas.table import cost_table

    fields = [f.name for f in dataclass_fields(LayerRow)]
    for n, (label, arch) in enumerate(targets(args)):
        cost = arch_cost(arch, detail=True)
        if args.json:
            layers = [{k: getattr(row, k) for k in fields} for row in cost.layers]  # Cost.to_dict's asdict is slow
            print(dumps({"arch_id": arch.arch_id, "input": list(arch.input), "classes": arch.classes,
                         **cost.to_dict(layers=False), "layers": layers}, separators=(",", ":")))
            continue
        c, h, w = arch.input
        print(("\n" if n else "") + printable(f"{label}   arch_id {arch.arch_id}   input {c}x{h}x{w}   classes {arch.classes}"))
        print(cost_table(cost))
    return 0


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

    from nas.export import export
    from nas.store import DB_NAME

    weights = args.weights
    if (Path(args.targets) / DB_NAME).is_file():  # a run folder: pick one of its children
        from nas.report import pick_trial, run_state, trial_weights
        from nas.train import load_checkpoint

        if args.input or args.classes:
            raise UsageError("--input/--classes do not apply to a run folder (its children were trained at one shape)")
        state = run_state(args.targets)
        record = pick_trial(state, args.trial, args.pareto_index)
        arch = Arch.from_dict(record["arch"])
        if args.from_supernet:
            if weights:
                raise UsageError("give --weights or --from-supernet, not both")
            weights = _supernet_weights(Path(args.targets), state, arch)
        kept = None if weights else trial_weights(args.targets, record)
        if kept:
            _, arch, _ = load_checkpoint(kept)  # the network as trained (a proxy resolution changes its input)
            weights = kept
        elif not weights:
            print(f"nas: note: {args.targets} kept no weights for trial {record['trial_id']} (a run keeps its "
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


def _supernet_weights(run_dir, state: dict, arch: Arch) -> dict:
    """The child's tensors sliced out of a weight-sharing run's supernet, as a state_dict."""
    from nas.space import load_space
    from nas.supernet import Supernet
    from nas.weight_sharing import SUPERNET_FILE

    path = run_dir / SUPERNET_FILE
    if not path.is_file():
        raise UsageError(f"{run_dir}: no {SUPERNET_FILE}; --from-supernet needs a run of --controller weight-sharing "
                         "whose supernet finished training")
    return Supernet.load(path, space=load_space(state["settings"]["space"])).child_state_dict(arch)


COMMANDS: list[Callable] = [add_spaces, add_sample, add_inspect, add_export]


# ---------------------------------------------------------------------------- entry point

def build_parser() -> argparse.ArgumentParser:
    from nas import __version__

    parser = _Parser(prog="nas", description="Neural architecture search for convolutional networks.")
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    from nas.cli_search import COMMANDS as TRAINING_COMMANDS  # they import helpers from this module

    for add in COMMANDS + TRAINING_COMMANDS:
        add(sub)
    return parser


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        text = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        text = str(err) or type(err).__name__
    return printable(" ".join(text.split()))  # a hostile file name or reason must not drive the terminal


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (2 for bad input, with one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, argparse errors (already printed)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    try:
        return args.run(args) or 0
    except BrokenPipeError:  # `nas sample -n 1000 | head`: stop quietly
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        return 130
    except (UsageError, ValueError, OSError) as err:  # SpaceError, ArchError, NotInSpace, TargetError, JSON, files
        if os.environ.get("NAS_DEBUG"):
            raise
        try:
            sys.stdout.flush()  # what was printed before the error comes first
        except OSError:
            pass
        print(f"nas: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
