"""What every command shares: the usage error, argument types, architecture targets."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Iterator

from nas.arch import Arch
from nas.cli.targets import TargetError, iter_labeled, parse_io

EXIT_USAGE = 2


class UsageError(Exception):
    """A command's own complaint about its arguments; main prints it as one line and exits 2."""


_SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_number(text: str) -> float:
    """'2e8', '300M', '1.5G', '50k', '1_000_000' -> a positive number (K/M/G/T are powers of 1000)."""
    m = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)\s*([kmgt]?)\s*", text.lower())
    if not m or not 0 < float(m[1]) * _SUFFIXES[m[2]] < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number like 2e8, 300M or 1.5G, got {text!r}")
    value = float(m[1]) * _SUFFIXES[m[2]]
    return int(value) if value.is_integer() else value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def io_shape(text: str) -> tuple[int, int, int]:
    try:
        return parse_io(text)
    except TargetError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_io_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", type=io_shape, metavar="CxHxW", help="input shape, e.g. 3x32x32 (overrides the target's)")
    p.add_argument("--classes", type=positive_int, metavar="K", help="number of classes (overrides the target's)")


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


def pct(x) -> str:
    """A percentage with two decimals, or - when there is none."""
    return "-" if x is None else f"{x:.2f}"
