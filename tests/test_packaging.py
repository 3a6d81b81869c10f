"""A non-editable install must carry the built-in spaces (they are package data, not repo files)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from search_spaces import builtin_space_files

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_contains_every_builtin_space(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("nas-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in builtin_space_files():
        assert f"search_spaces/{name}.yaml" in names
    assert "nas/cli.py" in names and "controllers/base.py" in names
