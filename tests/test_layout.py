"""The package's import graph: no cycles, and every import points to its own layer or a lower one."""

from __future__ import annotations

import sys
from pathlib import Path

import networkx as nx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import import_graph  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph.import_graph()


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if import_graph.layer(m) is None] == []


def test_no_import_cycles(graph):
    assert list(nx.simple_cycles(graph)) == []


def test_no_upward_imports(graph):
    assert import_graph.upward_imports(graph) == []


def test_the_checks_can_fail(tmp_path):
    # A copy of the tree with one upward import and one cycle: both are found.
    for top in ("nas", "controllers", "search_spaces"):
        for path in (import_graph.ROOT / top).rglob("*.py"):
            copy = tmp_path / path.relative_to(import_graph.ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(path.read_text())
    (tmp_path / "nas" / "arch.py").write_text((tmp_path / "nas" / "arch.py").read_text() + "\nfrom nas.cli import main\n")
    (tmp_path / "nas" / "model" / "a.py").write_text("from . import b\n")
    (tmp_path / "nas" / "model" / "b.py").write_text("def f():\n    from nas.model import a\n")
    (tmp_path / "nas" / "stray.py").write_text("")
    bad = import_graph.import_graph(tmp_path)
    assert ("nas.arch", "nas.cli") in import_graph.upward_imports(bad)
    assert ["nas.model.a", "nas.model.b"] in [sorted(c) for c in nx.simple_cycles(bad) if len(c) == 2]
    assert import_graph.layer("nas.stray") is None
