"""Tabular NAS benchmarks: run a controller against a lookup table, no training and no Ray.

A *query* is one ask/tell: the controller asks for a child, the table answers with the child's
search reward (told as ``val_acc``), its multiply-adds and parameters. Every ask counts, also one
that repeats an architecture already queried. After ``queries`` asks the search returns the
queried architecture with the best **reward** (the first one asked among equals), and reports its
**test** accuracy; the test column is never shown to the controller.

Tables (the files of ``shared/benchmarks``; see its README):

* NAS-Bench-201 (``load_nb201_table``), CIFAR-10, 15,625 cells. Reward ``val_acc_12ep``: the
  12-epoch validation accuracy (cifar10-valid split, mean over seeds), the reward the
  benchmark's authors use for simulated search. Reported: ``test_acc``, the 200-epoch test
  accuracy on the full CIFAR-10 test set. MACs: ``flops`` (MFLOPs in the official counting, i.e.
  multiply-adds of convs and linear layers) x 1e6.
* NAS-Bench-Macro (``load_macro_table``), CIFAR-10, 6,561 networks. The table has **no validation
  column**: the reward is ``mean_test_acc`` (mean of three runs' best test accuracy), and the
  reported accuracy is the same column, so the figures are optimistic and measure search
  efficiency only. MACs: ``flops`` (already counts of multiply-adds).

Hypervolume fraction. Each architecture is the point (-test_acc/100, macs/max_macs), both
minimised, where max_macs is the largest MACs in the table; the reference point is (0, 1):
accuracy 0 and the table's largest MACs. ``nas.pareto.hypervolume_2d`` of the queried
architectures' points (with their *test* accuracies) divided by that of all the table's points
is the fraction of the true (accuracy, MACs) front's hypervolume the search uncovered: 1 when the
true front was queried, 0 when nothing was. (The point with exactly max_macs adds no area.)
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from nas.pareto import hypervolume_2d
from nas.space.search_space import SearchSpace, load_space

# Regularized evolution as in NAS-Bench-201's REA baseline (population 10, tournament 3).
TEXTBOOK_REA = {"population": 10, "tournament": 3}
# Controller settings for tabular runs unless the caller overrides them. Evolution: population 50,
# tournament 25 (strong selection suits a noise-free table reward). Chosen on the search REWARD
# only (mean best val_acc_12ep over 200 seeds at 100 and 150 queries on NAS-Bench-201, grid
# population 10..75 x tournament 3..50), never on the test accuracy that is reported.
TABULAR_DEFAULTS: dict[str, dict] = {"evolution": {"population": 50, "tournament": 25},
                                     # rl: REINFORCE batch 3, Adam lr 0.01, reward = accuracy ** 20 (a monotone
                                     # transform); chosen on the mean best reward over tuning seeds 1000..1199 at
                                     # 100 and 150 queries on NAS-Bench-201 (benchmarks/bench_rl.py --tune)
                                     "rl": {"lr": 0.01, "batch": 3, "reward_power": 20}}


@dataclass
class Table:
    """One row per architecture of a space: decision indices, reward, reported accuracy, cost."""

    space: str                 # built-in space name the decision indices belong to
    keys: list[str]            # the benchmark's own name of each architecture
    values: np.ndarray         # (n, decisions) option indices
    reward: np.ndarray         # what the controller is told (percent)
    test_acc: np.ndarray       # what is reported for the chosen architecture (percent)
    macs: np.ndarray           # multiply-adds
    params: np.ndarray         # parameter count
    reward_column: str
    test_column: str
    note: str = ""
    source: str = ""
    index: dict[tuple, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {tuple(int(x) for x in row): i for i, row in enumerate(self.values)}
        if len(self.index) != len(self.values):
            raise ValueError(f"{self.source or self.space}: {len(self.values) - len(self.index)} duplicate architectures")

    def __len__(self) -> int:
        return len(self.keys)

    def row(self, values: Sequence[int]) -> int:
        """Row of the architecture with these decision indices."""
        try:
            return self.index[tuple(values)]
        except KeyError:
            raise KeyError(f"architecture {list(values)} is not in the {self.space} table") from None


def _read_csv(path: str | Path, needed: Iterable[str]) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in needed if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        return list(reader)


def nb201_values(arch_string: str, space: SearchSpace) -> list[int]:
    """Decision indices of a NAS-Bench-201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.

    Node j (1-based, the j-th ``+``-separated group) lists its inputs ``op~i``; that op is the
    option of the space's decision ``cell.j<-i``.
    """
    index = {d.name: k for k, d in enumerate(space.decisions)}
    values = [-1] * len(space.decisions)
    for node, group in enumerate(arch_string.split("+"), start=1):
        for edge in filter(None, group.strip().strip("|").split("|")):
            op, _, src = edge.partition("~")
            name = f"cell.{node}<-{src}"
            if name not in index:
                raise ValueError(f"{arch_string!r}: no decision {name} in space {space.name}")
            options = space.decisions[index[name]].options
            if op not in options:
                raise ValueError(f"{arch_string!r}: unknown op {op!r} (known: {', '.join(options)})")
            values[index[name]] = options.index(op)
    if -1 in values:
        raise ValueError(f"{arch_string!r}: edges missing for {space.decisions[values.index(-1)].name}")
    return values


def load_nb201_table(csv_path: str | Path) -> Table:
    """NAS-Bench-201 CIFAR-10: reward val_acc_12ep, reported test_acc, MACs = flops (MFLOPs) x 1e6."""
    rows = _read_csv(csv_path, ("arch_string", "val_acc_12ep", "test_acc", "flops", "params"))
    space = _space("nasbench201")
    return Table(
        space="nasbench201", keys=[r["arch_string"] for r in rows],
        values=np.array([nb201_values(r["arch_string"], space) for r in rows], dtype=np.int64),
        reward=np.array([float(r["val_acc_12ep"]) for r in rows]),
        test_acc=np.array([float(r["test_acc"]) for r in rows]),
        macs=np.array([float(r["flops"]) * 1e6 for r in rows]),
        params=np.array([float(r["params"]) * 1e6 for r in rows]),
        reward_column="val_acc_12ep", test_column="test_acc",
        note="reward: 12-epoch validation accuracy (cifar10-valid); reported: 200-epoch test accuracy",
        source=str(csv_path))


def load_macro_table(csv_path: str | Path) -> Table:
    """NAS-Bench-Macro CIFAR-10: reward and reported accuracy are both mean_test_acc (no validation column)."""
    rows = _read_csv(csv_path, ("arch", "mean_test_acc", "flops", "params"))
    space = _space("nasbench_macro")
    n = len(space.decisions)
    values = []
    for r in rows:
        digits = r["arch"].strip()
        if len(digits) != n or not digits.isdigit() or any(int(c) >= len(d.options) for c, d in zip(digits, space.decisions)):
            raise ValueError(f"{csv_path}: arch {digits!r} is not {n} digits of option indices")
        values.append([int(c) for c in digits])
    acc = np.array([float(r["mean_test_acc"]) for r in rows])
    return Table(
        space="nasbench_macro", keys=[r["arch"].strip() for r in rows], values=np.array(values, dtype=np.int64),
        reward=acc, test_acc=acc.copy(),
        macs=np.array([float(r["flops"]) for r in rows]), params=np.array([float(r["params"]) for r in rows]),
        reward_column="mean_test_acc", test_column="mean_test_acc",
        note="no validation column in NAS-Bench-Macro: the reward IS the reported test accuracy (optimistic)",
        source=str(csv_path))


LOADERS = {"nasbench201": load_nb201_table, "nasbench_macro": load_macro_table}


def load_table(space: str, csv_path: str | Path) -> Table:
    """The table of a space that has one (nasbench201, nasbench_macro)."""
    if space not in LOADERS:
        raise ValueError(f"no tabular benchmark for space {space!r} (known: {', '.join(LOADERS)})")
    return LOADERS[space](csv_path)


@cache
def _space(name: str) -> SearchSpace:
    return load_space(name)


@lru_cache(maxsize=8)
def _cached_table(space: str, path: str, mtime: float) -> Table:
    return load_table(space, path)


def _front_2d(points: np.ndarray) -> np.ndarray:
    """The non-dominated points of a 2-column minimisation problem (a sort and a sweep)."""
    if len(points) == 0:
        return points
    order = np.lexsort((points[:, 1], points[:, 0]))
    keep, best_y = [], math.inf
    for i in order:
        if points[i, 1] < best_y:
            keep.append(i)
            best_y = points[i, 1]
    return points[keep]


def _hv_points(table: Table, rows: np.ndarray) -> np.ndarray:
    max_macs = float(table.macs.max())
    return np.column_stack([-table.test_acc[rows] / 100.0, table.macs[rows] / max_macs])


HV_REFERENCE = np.array([0.0, 1.0])


def true_hypervolume(table: Table) -> float:
    """Hypervolume of the whole table's (accuracy, MACs) front (see the module docstring)."""
    return hypervolume_2d(_front_2d(_hv_points(table, np.arange(len(table)))), HV_REFERENCE)


def hypervolume_fraction(table: Table, rows: Iterable[int], total: float | None = None) -> float:
    """Hypervolume of the queried rows' front over the true front's (in [0, 1])."""
    rows = np.unique(np.fromiter(rows, dtype=np.int64))
    total = true_hypervolume(table) if total is None else total
    found = hypervolume_2d(_front_2d(_hv_points(table, rows)), HV_REFERENCE)
    return found / total if total > 0 else 0.0


def run_search(space_name: str, table: Table, controller_name: str, queries: int, seed: int,
               objectives: tuple[str, ...] = ("accuracy",), controller_options: dict | None = None,
               _total_hv: float | None = None) -> dict:
    """One search of ``queries`` asks/tells on the table; the best-reward architecture's test accuracy."""
    from nas.controllers.base import (
        make_controller,  # the contract imports the space (torch); table loading needs neither
    )

    if space_name != table.space:
        raise ValueError(f"the table is for space {table.space!r}, not {space_name!r}")
    if queries < 1:
        raise ValueError(f"queries must be >= 1 (got {queries})")
    options = {**TABULAR_DEFAULTS.get(controller_name, {}), **(controller_options or {})}
    ctrl = make_controller(controller_name, _space(space_name), seed=seed, objectives=tuple(objectives), **options)
    if not ctrl.tabular:
        raise ValueError(f"controller {controller_name!r} needs trained weights (a supernet), which a tabular "
                         "benchmark does not have; run it with nas search")
    rows = np.empty(queries, dtype=np.int64)
    for q in range(queries):
        proposal = ctrl.ask()
        i = table.row(proposal.values)
        rows[q] = i
        ctrl.tell(proposal.trial_id, {"val_acc": float(table.reward[i]), "macs": float(table.macs[i]),
                                      "params": float(table.params[i])})
    best = int(rows[int(np.argmax(table.reward[rows]))])  # argmax: the first asked among equal rewards
    return {"seed": seed, "queries": queries, "row": best, "arch": table.keys[best],
            "values": [int(v) for v in table.values[best]], "reward": float(table.reward[best]),
            "test_acc": float(table.test_acc[best]), "distinct": int(len(np.unique(rows))),
            "hypervolume_fraction": hypervolume_fraction(table, rows, _total_hv), "rows": rows.tolist()}


def _run_seeds(space: str, table_path: str, controller: str, queries: int, seeds: list[int],
               objectives: tuple[str, ...], controller_options: dict | None) -> list[dict]:
    path = Path(table_path)
    table = _cached_table(space, str(path.resolve()), path.stat().st_mtime)
    total = true_hypervolume(table)
    return [run_search(space, table, controller, queries, s, objectives, controller_options, _total_hv=total)
            for s in seeds]


def run_bench(space: str, table_path: str | Path, controller: str, queries: int, seeds: int | Sequence[int],
              objectives: Sequence[str] = ("accuracy",), *, controller_options: dict | None = None,
              processes: int = 1) -> dict:
    """Run ``controller`` once per seed (an int n means seeds 0..n-1) and summarise.

    Returns mean/std (over seeds, ddof=0) of the chosen architectures' test accuracy, the mean
    hypervolume fraction, the table's optimum test accuracy and the test accuracy of the table's
    best-reward architecture (what a search that queried everything would report).
    """
    seed_list = list(range(seeds)) if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("need at least one seed")
    path = Path(table_path)
    tab = _cached_table(space, str(path.resolve()), path.stat().st_mtime)
    objectives = tuple(objectives)
    start = time.perf_counter()
    if processes > 1 and len(seed_list) > 1:
        chunks = [seed_list[k::processes] for k in range(processes)]
        with ProcessPoolExecutor(processes) as pool:
            parts = list(pool.map(_run_seeds, *zip(*[(space, str(path), controller, queries, c, objectives,
                                                      controller_options) for c in chunks if c])))
        runs = sorted((r for part in parts for r in part), key=lambda r: seed_list.index(r["seed"]))
    else:
        runs = _run_seeds(space, str(path), controller, queries, seed_list, objectives, controller_options)
    seconds = time.perf_counter() - start
    test = np.array([r["test_acc"] for r in runs])
    hv = np.array([r["hypervolume_fraction"] for r in runs])
    oracle = int(np.argmax(tab.reward))
    return {
        "space": space, "table": str(table_path), "controller": controller,
        "controller_options": {**TABULAR_DEFAULTS.get(controller, {}), **(controller_options or {})},
        "objectives": list(objectives), "queries": int(queries), "seeds": len(seed_list),
        "reward_column": tab.reward_column, "test_column": tab.test_column, "note": tab.note,
        "mean_test_acc": float(test.mean()), "std_test_acc": float(test.std()),
        "mean_reward": float(np.mean([r["reward"] for r in runs])),
        "mean_hypervolume_fraction": float(hv.mean()), "std_hypervolume_fraction": float(hv.std()),
        "mean_distinct": float(np.mean([r["distinct"] for r in runs])),
        "optimum_test_acc": float(tab.test_acc.max()), "optimum_reward": float(tab.reward.max()),
        "best_reward_arch_test_acc": float(tab.test_acc[oracle]), "table_size": len(tab),
        "seconds": seconds, "test_accs": test.tolist(),
    }


def format_bench(result: dict) -> str:
    """Human summary of a run_bench result."""
    r = result
    opts = ", ".join(f"{k}={v}" for k, v in r.get("controller_options", {}).items())
    lines = [
        f"{r['controller']}{f' ({opts})' if opts else ''} on {r['space']} ({r['table_size']} archs, {r['table']})",
        f"  {r['queries']} queries x {r['seeds']} seeds, objectives {','.join(r['objectives'])}, {r['seconds']:.1f} s",
        f"  reward {r['reward_column']}, reported {r['test_column']}: {r['note']}",
        f"  test accuracy of the best-reward arch found: {r['mean_test_acc']:.2f} +- {r['std_test_acc']:.2f} "
        f"(mean reward {r['mean_reward']:.2f})",
        f"  table: best test {r['optimum_test_acc']:.2f}, best reward {r['optimum_reward']:.2f} "
        f"(its test {r['best_reward_arch_test_acc']:.2f})",
        f"  hypervolume of the found (accuracy, MACs) front / true front: {r['mean_hypervolume_fraction']:.3f} "
        f"+- {r['std_hypervolume_fraction']:.3f}; distinct archs per run {r['mean_distinct']:.1f}",
    ]
    return "\n".join(lines)
