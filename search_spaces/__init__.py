"""Built-in search spaces: one YAML file each, read as package data (installed as nas.search_spaces)."""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc is 3.11+; the package supports 3.10
    from importlib.resources.abc import Traversable


def builtin_space_files() -> dict[str, Traversable]:
    """Name -> YAML resource of every built-in space (a Path for any on-disk install)."""
    found = [entry for entry in files(__name__).iterdir() if entry.name.endswith(".yaml")]
    return {entry.name[: -len(".yaml")]: entry for entry in sorted(found, key=lambda e: e.name)}
