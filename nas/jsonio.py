"""Strict JSON for what users read: never NaN or Infinity (invalid JSON that most parsers reject).

A diverged child stores val_loss NaN, and a budget can be NaN; the store keeps such values (Python
reads them back), but whatever nas prints or writes as JSON goes through `dumps`, which writes
non-finite numbers as null, numpy scalars as plain numbers and anything else unknown as its str.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any


def strict(value: Any) -> Any:
    """value with non-finite numbers as None and numpy scalars as Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _default(value: Any) -> Any:
    """JSON for what json cannot write: numpy scalars (bool_ among them) by value, anything else (paths) as str."""
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return strict(value.item())
    return str(value)


def dumps(obj: Any, **kwargs: Any) -> str:
    """json.dumps, but strict: non-finite numbers become null (json.dumps's keyword arguments apply)."""
    kwargs.setdefault("default", _default)
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError:  # a non-finite number somewhere: only then pay for the walk over everything
        return json.dumps(strict(obj), allow_nan=False, **kwargs)


def recode(text: str, **kwargs: Any) -> str:
    """JSON text written by json.dumps elsewhere (Arch.to_json), made strict; compact unless told otherwise."""
    kwargs.setdefault("separators", (",", ":"))
    return dumps(json.loads(text), **kwargs)
