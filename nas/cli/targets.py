"""Architecture targets: the one way every command names an architecture on the command line.

A target is one of
  * a path to an architecture JSON file (as `Arch.to_json` writes it; `arch_id` is ignored),
  * an inline JSON object (``{"input": ...}``), or an object holding one under ``"arch"``
    (a trial record as `nas report --json` prints it),
  * a checkpoint file (``.pt``, ``.pth``, ``.ckpt`` as `nas train --checkpoint` writes it): its ``arch`` field,
  * a reference name (``resnet18``, ``mobilenet_v2``, ... -- see `nas.model.reference.REFERENCES`),
  * ``SPACE:i,j,k,...`` -- the space's decision indices in `SearchSpace.encode` order; SPACE is a
    built-in space name or a .yaml path. Without commas, ``SPACE:22212220`` reads one digit per
    decision when every decision has at most 10 options,
  * ``SPACE:|op~0|+|op~0|op~1|+...|`` -- a NAS-Bench-201 style cell string, for cell spaces
    (``nasbench201``); a bare ``|op~0|+...|`` means ``nasbench201:``,
  * ``-``: read targets from stdin, one per line (any of the forms above; blank lines and lines
    starting with ``#`` are skipped).

Every error is a `TargetError` (a ValueError) or a SpaceError, with a one-line message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO

from nas.arch import Arch

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")  # a checkpoint as nas train / a search write it
CELL_STRING_SPACE = "nasbench201"  # the space a bare |op~0|+... string refers to
_CELL_DECISION = re.compile(r"^cell\.(\d+)<-(\d+)$")


class TargetError(ValueError):
    """A target that does not name an architecture; str() is one line."""


def resolve_target(text: str, input: tuple[int, int, int] | None = None, classes: int | None = None) -> Arch:
    """The architecture a target names, for the given input shape and classes (if given)."""
    return _resolve(text.strip(), text.strip(), input, classes)


def _said(label: str, message: str) -> str:
    return f"{label}: {message}" if label else message


def iter_labeled(args: Iterable[str], stdin: IO[str] | None = None, input: tuple[int, int, int] | None = None,
                 classes: int | None = None) -> Iterator[tuple[str, Arch]]:
    """(label, arch) for each target in args, expanding ``-`` into stdin's lines, lazily and in order."""
    for arg in args:
        if arg.strip() != "-":
            yield arg.strip(), resolve_target(arg, input, classes)
            continue
        if stdin is None:
            raise TargetError("'-' reads targets from stdin, but no stdin was given")
        for lineno, line in enumerate(stdin, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"stdin line {lineno}"
            label = where if line.startswith("{") or len(line) > 60 else line
            try:
                yield label, _resolve(line, "", input, classes)
            except ValueError as err:  # SpaceError, TargetError, ArchError: say which line
                raise TargetError(f"{where}: {err}") from None


def iter_targets(args: Iterable[str], stdin: IO[str] | None = None, input: tuple[int, int, int] | None = None,
                 classes: int | None = None) -> Iterator[Arch]:
    """Each target's architecture (see the module docstring for the forms a target takes)."""
    for _, arch in iter_labeled(args, stdin, input, classes):
        yield arch


def parse_io(text: str) -> tuple[int, int, int]:
    """'3x32x32' (or '3,32,32') -> (3, 32, 32)."""
    parts = re.split(r"[x,×]", text.strip().lower())
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise TargetError(f"input shape must be CxHxW with positive integers, like 3x32x32; got {text!r}")
    return shape  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------

def _resolve(text: str, label: str, input, classes) -> Arch:
    from nas.model.reference import REFERENCES, reference

    if not text:
        raise TargetError("empty target")
    if text.startswith("{"):
        return _checked(_from_json(text, label), label, input, classes)
    if text.startswith("|"):
        return _checked(_from_space(CELL_STRING_SPACE, text, input, classes), label, None, None)
    looks_like_file = text.endswith(".json") or "/" in text or "\\" in text
    if not looks_like_file and text in REFERENCES:
        return _checked(reference(text), label, input, classes)
    space, sep, rest = text.rpartition(":")
    if sep and _is_space_name(space):
        return _checked(_from_space(space, rest, input, classes), label, None, None)
    path = Path(text)
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return _checked(_from_checkpoint(path), text, input, classes)
    if path.is_file() and path.suffix not in (".yaml", ".yml"):
        return _checked(_from_file(path), text, input, classes)
    if _is_space_name(text):
        raise TargetError(f"'{text}' is a space; name one architecture in it as {text}:i,j,k,... "
                          f"(decision indices; `nas spaces {text}` lists the decisions)")
    if path.is_dir():
        raise TargetError(f"{text}: is a folder, not an architecture JSON file")
    if looks_like_file:
        raise TargetError(f"{text}: no such file")
    raise TargetError(f"unknown target '{text}': expected an architecture JSON file, '-' (stdin), a reference "
                      f"({', '.join(REFERENCES)}) or SPACE:i,j,k,... with SPACE a .yaml file or one of "
                      f"{', '.join(_builtin_spaces())}")


def _builtin_spaces() -> list[str]:
    from nas.search_spaces import builtin_space_files
    return list(builtin_space_files())


def _is_space_name(text: str) -> bool:
    return text in _builtin_spaces() or text.endswith((".yaml", ".yml"))


def _checked(arch: Arch, label: str, input, classes) -> Arch:
    """arch with the io overrides, validated (block types, channels, shapes) with the target named."""
    from nas.model.cost import arch_cost

    arch = arch.with_io(input, classes)
    try:
        arch_cost(arch)
    except ValueError as err:
        raise TargetError(_said(label, str(err))) from None
    return arch


def _from_json(text: str, label: str) -> Arch:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        hint = " (one architecture per file; for JSON lines use: nas inspect - < FILE)" if err.msg == "Extra data" else ""
        raise TargetError(_said(label, f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}{hint}")) from None
    if isinstance(data, dict) and "stages" not in data and isinstance(data.get("arch"), dict):
        data = data["arch"]  # a trial record: {"trial_id": ..., "arch": {...}}
    try:
        return Arch.from_dict(data)
    except ValueError as err:
        raise TargetError(_said(label, str(err))) from None


def _from_checkpoint(path: Path) -> Arch:
    """A checkpoint's architecture (its arch field); errors name the file and field."""
    from nas.model.checkpoint import load_checkpoint

    try:
        return load_checkpoint(path)[1]
    except ValueError as err:  # CheckpointError
        raise TargetError(str(err)) from None


def _from_file(path: Path) -> Arch:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise TargetError(f"{path}: cannot read: {getattr(err, 'strerror', None) or err}") from None
    return _from_json(text, str(path))


@lru_cache(maxsize=64)
def _space(name: str, input, classes):
    """Loaded once per process (stdin can name thousands of architectures of one space)."""
    from nas.space.search_space import load_space

    space = load_space(name)
    return space.with_io(input, classes) if (input or classes) else space


def _from_space(name: str, rest: str, input, classes) -> Arch:
    space = _space(name, input, classes)
    rest = rest.strip()
    if rest.startswith("|"):
        values = _cell_string_values(space, rest)
    elif "," in rest:
        try:
            values = [int(v) for v in rest.split(",")]
        except ValueError:
            raise TargetError(f"{name}: decision indices must be integers, got '{rest}'") from None
    elif rest.isdigit() and len(space.decisions) == 1:
        values = [int(rest)]
    elif rest.isdigit():
        if any(len(d.options) > 10 for d in space.decisions):
            raise TargetError(f"{name}: some decisions have more than 10 options; separate the indices "
                              f"with commas ({name}:i,j,k,...)")
        values = [int(c) for c in rest]
    else:
        raise TargetError(f"{name}: expected decision indices after ':' ({name}:i,j,k,...), got '{rest}'")
    return space.decode(values)  # ValueError naming the decision for a wrong count or index


def _cell_string_values(space, text: str) -> list[int]:
    """Indices from a NAS-Bench-201 arch string: |op~src|+|op~src|op~src|+... for nodes 1, 2, ..."""
    name = space.name
    edges = {}
    for k, d in enumerate(space.decisions):
        m = _CELL_DECISION.match(d.name)
        if not m:
            raise TargetError(f"{name}: a cell string sets only cell edges, but the space also decides {d.name}")
        edges[(int(m[1]), int(m[2]))] = k
    values: list[int | None] = [None] * len(space.decisions)
    for node, group in enumerate(text.split("+"), 1):
        if not (group.startswith("|") and group.endswith("|") and len(group) > 2):
            raise TargetError(f"{name}: malformed cell string at node {node}: {group!r} (expected |op~src|...|)")
        for item in group[1:-1].split("|"):
            op, tilde, src = item.partition("~")
            if not tilde or not src.isdigit():
                raise TargetError(f"{name}: malformed edge {item!r} at node {node} (expected op~src)")
            k = edges.get((node, int(src)))
            if k is None:
                raise TargetError(f"{name}: the cell has no edge {src}->{node}")
            if values[k] is not None:
                raise TargetError(f"{name}: edge {src}->{node} is given twice")
            options = space.decisions[k].options
            if op not in options:
                raise TargetError(f"{name}: unknown operation '{op}' on edge {src}->{node} (known: {', '.join(options)})")
            values[k] = options.index(op)
    missing = [space.decisions[k].name for k, v in enumerate(values) if v is None]
    if missing:
        raise TargetError(f"{name}: the cell string gives {len(values) - len(missing)} of {len(values)} edges "
                          f"(missing {', '.join(missing)})")
    return values  # type: ignore[return-value]
