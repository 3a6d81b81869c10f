"""The search-space language: YAML -> validated spec, and the one walk that turns choices into an Arch.

A space file has: name, description, input {channels, size}, classes, dataset, constraints,
stem, channels (the width rule), num_stages, stage_defaults, stages (a list), head, cell.
Any value may be a choice: ``{choice: [...]}`` or ``{range: [lo, hi], step: s}``, with
``per: stage|block|net`` (independent per stage -- the default --, per block, or one for the
whole network), ``share: NAME`` (one decision wherever NAME appears) and ``when: {field: value}``
(only when a sibling block field has that value).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHOICE_KEYS = {"choice", "range", "step", "per", "share", "when"}
SCOPES = ("stage", "block", "net")


class SpaceError(ValueError):
    """A search-space file that does not validate; str() is one line naming the file and field."""

    def __init__(self, source: str, path: str, message: str):
        self.source, self.path, self.message = source, path, message
        super().__init__(f"{source}: {path}: {message}" if path else f"{source}: {message}")


@dataclass(frozen=True)
class Choice:
    """A value that is decided: options, the scope it varies over, sharing and a condition."""

    options: tuple
    per: str = "stage"
    share: str = ""
    when: tuple[tuple[str, tuple], ...] = ()
    path: str = ""

    def index_of(self, value: Any) -> int | None:
        """Index of the option equal to value (mappings match when all their keys agree)."""
        for i, option in enumerate(self.options):
            if isinstance(option, dict):
                if isinstance(value, dict) and all(value.get(k) == _norm(v) for k, v in option.items()):
                    return i
            elif _norm(option) == _norm(value):
                return i
        return None


def _norm(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    return value


def parse_value(raw: Any, path: str, fail: Callable[[str, str], SpaceError], default_per: str = "stage") -> Any:
    """A static value, or a Choice when raw is a {choice: ...} / {range: ...} mapping."""
    if not (isinstance(raw, dict) and ("choice" in raw or "range" in raw)):
        return raw
    unknown = set(raw) - CHOICE_KEYS
    if unknown:
        raise fail(path, f"unknown key {sorted(unknown)[0]!r} in a choice (known: {', '.join(sorted(CHOICE_KEYS))})")
    if "choice" in raw:
        options = raw["choice"]
        if not isinstance(options, list) or not options:
            raise fail(f"{path}.choice", "must be a non-empty list of options")
    else:
        options = _range_options(raw, path, fail)
    if len({repr(_norm(o)) for o in options}) != len(options):
        raise fail(f"{path}.choice", f"options must be distinct, got {options}")
    per = raw.get("per", default_per)
    if per not in SCOPES:
        raise fail(f"{path}.per", f"must be one of {', '.join(SCOPES)}, got {per!r}")
    share = raw.get("share", "")
    if share and not isinstance(share, str):
        raise fail(f"{path}.share", "must be a name")
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise fail(f"{path}.when", "must map a sibling field to a value or a list of values")
    when_t = tuple((str(k), tuple(_norm(v) for v in (w if isinstance(w, list) else [w]))) for k, w in when.items())
    return Choice(tuple(_norm(o) if not isinstance(o, dict) else o for o in options),
                  "net" if share else per, share, when_t, path)


def _range_options(raw: dict, path: str, fail) -> list:
    bounds, step = raw["range"], raw.get("step", 1)
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(isinstance(b, (int, float)) for b in bounds)):
        raise fail(f"{path}.range", "must be [low, high]")
    if not isinstance(step, (int, float)) or step <= 0:
        raise fail(f"{path}.step", f"must be a positive number, got {step!r}")
    lo, hi = bounds
    if hi < lo:
        raise fail(f"{path}.range", f"high {hi} is below low {lo}")
    count = int(round((hi - lo) / step + 1e-9)) + 1
    if count > 10_000:
        raise fail(f"{path}.range", f"{count} options is too many; use a larger step")
    values = [lo + i * step for i in range(count)]
    if all(isinstance(v, int) for v in (lo, hi, step)):
        return [int(v) for v in values]
    return [round(float(v), 10) for v in values]


def check_keys(raw: Any, known: set[str], path: str, fail, what: str) -> dict:
    """raw must be a mapping whose keys are all known; returns it."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail(path, f"{what} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(f"{path}.{unknown[0]}" if path else unknown[0],
                   f"unknown field (known: {', '.join(sorted(known))})")
    return raw
