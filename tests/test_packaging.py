"""The installed package: one import root (nas), the built-in spaces as package data, no shadowing from the cwd."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nas.search_spaces import builtin_space_files

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_every_builtin_space(tmp_path):
    # A copy without build/: a stale build/lib from an older layout would leak into the wheel.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", "build", "runs", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(source)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("nas-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in builtin_space_files():
        assert f"nas/search_spaces/{name}.yaml" in names
    assert "nas/cli/__init__.py" in names and "nas/controllers/base.py" in names
    assert {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")} == {"nas"}


def test_stray_packages_in_the_working_directory_change_nothing(tmp_path):
    # A user's own controllers/ or search_spaces/ package must not shadow ours (they install under nas).
    for name in ("controllers", "search_spaces"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f'raise ImportError("the stray {name} package was imported")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    spaces = subprocess.run([sys.executable, "-m", "nas", "spaces"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=300)
    assert spaces.returncode == 0, spaces.stderr
    assert "nasbench_macro" in spaces.stdout
    space = subprocess.run([sys.executable, "-c", "import nas.space; print(nas.space.load_space('vgg_like').name)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert space.returncode == 0, space.stderr
    assert space.stdout.strip() == "vgg_like"
