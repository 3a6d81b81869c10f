"""Built-in search spaces: one YAML file each, found after a non-editable install too."""

from pathlib import Path

SPACES_DIR = Path(__file__).resolve().parent


def builtin_space_files() -> dict[str, Path]:
    """Name -> YAML path of every built-in space."""
    return {p.stem: p for p in sorted(SPACES_DIR.glob("*.yaml"))}
