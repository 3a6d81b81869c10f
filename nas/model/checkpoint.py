"""Reading checkpoint and supernet files: the project's one torch.load, always with weights_only=True.

A checkpoint may be truncated, foreign or hostile, so nothing but tensors and plain containers is
unpickled, and every failure is one CheckpointError naming the file and, for a readable file, the
field at fault (`arch`, `state_dict`, ...).
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from nas.arch import Arch
from nas.model.build import plan

CHECKPOINT = "a nas checkpoint"


class CheckpointError(ValueError):
    """A checkpoint or supernet file that cannot be used; the message names the file and the field."""


def load_file(path: str | Path) -> Any:
    """The file's contents as torch.load(weights_only=True) reads them onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {'not a file' if path.exists() else 'no such file'}; give a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint (was it written completely?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(_unpickling_message(path, str(err))) from None
    except Exception as err:  # a truncated zip (OSError, RuntimeError), a cut-off legacy pickle (EOFError), ...
        reason = err.strerror if isinstance(err, OSError) and err.strerror else _first_line(str(err))
        raise CheckpointError(f"{path}: not a readable nas checkpoint: truncated, damaged or not a PyTorch file "
                              f"({type(err).__name__}{': ' + reason if reason else ''})") from None


def _unpickling_message(path: Path, text: str) -> str:
    """Why torch's weights-only unpickler refused the file, in one line (its own message spans many)."""
    blocked = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if blocked:
        return (f"{path}: not a readable nas checkpoint: it holds {blocked[1]}, a Python object that safe loading "
                "(weights_only) refuses; re-save only tensors and plain containers (a state_dict) from a source you trust")
    detail = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", text)
    return (f"{path}: not a readable nas checkpoint: damaged or not a PyTorch file "
            f"({detail[1] if detail else _first_line(text)})")


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[:limit] + "..."


def require_fields(path: str | Path, data: Any, fields: Iterable[str], what: str) -> dict:
    """data when it is a dict holding every one of fields, else a CheckpointError saying which are missing."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not {what}: it holds a {type(data).__name__}, not a dict of fields")
    missing = [f for f in fields if f not in data]
    if missing:
        raise CheckpointError(f"{path}: not {what}: no field {_few(missing)}")
    return data


def arch_field(where: str, value: Any) -> Arch:
    """A checkpoint's `arch` field (architecture JSON text) as an architecture the builder accepts."""
    if not isinstance(value, str):
        raise CheckpointError(f"{where}: field arch must be architecture JSON text, not a {type(value).__name__}")
    try:
        data = json.loads(value)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{where}: field arch is not JSON ({err})") from None
    try:
        arch = Arch.from_dict(data)
        plan(arch)  # unknown block types and impossible shapes show here, with the file named
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{where}: field arch is not a valid architecture ({err})") from None
    return arch


def is_state_dict(value: Any) -> bool:
    """Whether value maps parameter names to tensors."""
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def load_checkpoint(path: str | Path) -> tuple[dict, Arch, dict]:
    """(state_dict, arch, metrics) from a checkpoint as nas train and a search write it."""
    data = require_fields(path, load_file(path), ("state_dict", "arch"), CHECKPOINT)
    if not is_state_dict(data["state_dict"]):
        raise CheckpointError(f"{path}: field state_dict does not map parameter names to tensors")
    metrics = data.get("metrics", {})
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{path}: field metrics must be a dict, not a {type(metrics).__name__}")
    return data["state_dict"], arch_field(str(path), data["arch"]), metrics


def fit_problems(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """What keeps state from loading strictly where expected's names and shapes are wanted ('' when nothing)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} for {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    kinds = (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
    return "; ".join(f"{kind} {_few(keys)}" for kind, keys in kinds if keys)


def _few(items: list[str], shown: int = 3) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more
