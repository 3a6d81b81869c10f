"""The package's internal import graph: modules per folder, import cycles, upward imports.

Every `import`/`from` statement counts, function-local ones included (they run too). The layer
table is the rule tests/test_layout.py enforces: an import may point to its own layer or a lower one.

    python benchmarks/import_graph.py [ROOT]
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
# Installed names of the repository folders that setuptools maps into the package (pyproject's package-dir).
MAPPED = {"controllers": "nas.controllers", "search_spaces": "nas.search_spaces"}
# Layer of each top-level module or folder of nas/; lower layers never import higher ones.
LAYERS = {
    "nas": 0, "nas.__main__": 11,
    "nas.arch": 0, "nas.pareto": 0, "nas.jsonio": 0, "nas.registry": 0, "nas.outcome": 0, "nas.objectives": 0,
    "nas.phase": 0,
    "nas.model": 1,
    "nas.search_spaces": 2, "nas.space": 2,
    "nas.controllers": 3,
    "nas.data": 4,
    "nas.train": 5,
    "nas.store": 6,
    "nas.oneshot": 7,
    "nas.search": 8,
    "nas.report": 9,
    "nas.bench": 10,
    "nas.cli": 11,
}


def module_files(root: Path = ROOT) -> dict[str, Path]:
    """Installed module name -> source file, for nas/ and the folders mapped into it."""
    found = {}
    for top, name in [("nas", "nas"), *MAPPED.items()]:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root / top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([name, *parts])] = path
    return found


def _targets(node: ast.AST, module: str, is_package: bool, known: dict) -> list[str]:
    """Absolute module names one import statement names (relative imports resolved)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([base] if base else []))
    # `from pkg import name` names a submodule or a name of pkg's __init__; only the latter is an edge to pkg
    subs = [f"{base}.{alias.name}" for alias in node.names]
    return subs + ([base] if any(_installed(sub) not in known for sub in subs) else [])


def _installed(name: str) -> str:
    """The installed module name of an import target (the mapped folders live under nas)."""
    top = name.split(".")[0]
    return MAPPED[top] + name[len(top):] if top in MAPPED else name


def import_graph(root: Path = ROOT) -> nx.DiGraph:
    """Directed graph module -> package-internal module it imports."""
    files = module_files(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _targets(node, module, path.name == "__init__.py", files):
                target = _installed(target)
                if target in files and target != module:
                    graph.add_edge(module, target)
    return graph


def layer(module: str, layers: dict[str, int] = LAYERS) -> int | None:
    """Layer of the longest prefix of module in layers, None when it is not placed."""
    if module in layers:
        return layers[module]
    parts = module.split(".")
    for k in range(len(parts) - 1, 1, -1):  # down to nas.X: the root package's own entry places no module
        if ".".join(parts[:k]) in layers:
            return layers[".".join(parts[:k])]
    return None


def upward_imports(graph: nx.DiGraph, layers: dict[str, int] = LAYERS) -> list[tuple[str, str]]:
    """Edges from a lower layer to a higher one."""
    return sorted((a, b) for a, b in graph.edges if layer(a, layers) is not None and layer(b, layers) is not None
                  and layer(b, layers) > layer(a, layers))


def main(root: Path = ROOT) -> None:
    graph = import_graph(root)
    files = module_files(root)
    per_folder = Counter(str(files[m].parent.relative_to(root)) for m in graph)
    for name, count in sorted(per_folder.items()):
        print(f"  {name}/: {count} modules")
    cycles = list(nx.simple_cycles(graph))
    for cycle in cycles:
        print("  cycle:", " -> ".join(cycle + cycle[:1]))
    upward = upward_imports(graph)
    for a, b in upward:
        print(f"  upward: {a} -> {b}")
    unplaced = sorted(m for m in graph if layer(m) is None)
    print(f"modules={graph.number_of_nodes()}")
    print(f"folders={len(per_folder)}")
    print(f"edges={graph.number_of_edges()}")
    print(f"cycles={len(cycles)}")
    print(f"upward_imports={len(upward)}")
    print(f"unplaced={len(unplaced)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT)
