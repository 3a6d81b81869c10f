"""Tabular benchmarks on synthetic tables written in the real CSV formats (never the real data)."""

from __future__ import annotations

import csv
import itertools
import math

import numpy as np
import pytest

from nas.bench import (
    TABULAR_DEFAULTS,
    TEXTBOOK_REA,
    format_bench,
    hypervolume_fraction,
    load_macro_table,
    load_nb201_table,
    nb201_values,
    run_bench,
    run_search,
    true_hypervolume,
)
from nas.controllers import CONTROLLERS
from nas.controllers.base import Controller
from nas.model.cost import arch_cost
from nas.space import load_space

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
NB201_HEADER = ["arch_index", "arch_string", "val_acc", "test_acc", "flops", "params", "test_acc_nb201v1_0",
                "valid_split_test_acc", "val_acc_12ep", "test_acc_12ep", "cifar100_test_acc", "cifar100_val_acc_12ep",
                "cifar100_test_acc_12ep", "imagenet16_test_acc", "imagenet16_val_acc_12ep", "imagenet16_test_acc_12ep",
                "cifar100_flops", "cifar100_params", "imagenet16_flops", "imagenet16_params", "naswot_score", "iso_key"]
MACRO_HEADER = ["arch", "mean_test_acc", "std", "test_acc_run1", "test_acc_run2", "test_acc_run3", "params", "flops"]
TRAP_EDGE = 3  # cell.3<-0: when it is skip_connect the 12-epoch reward is inflated and the test accuracy poor


def jitter(k: int, salt: int) -> float:
    """A deterministic value in [0, 1) that breaks ties (no RNG state shared between tests)."""
    return ((k * 2654435761 + salt * 40503) % 1_000_003) / 1_000_003


def nb201_string(ops: tuple[int, ...]) -> str:
    e = [NB201_OPS[o] for o in ops]  # edges in order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2
    return f"|{e[0]}~0|+|{e[1]}~0|{e[2]}~1|+|{e[3]}~0|{e[4]}~1|{e[5]}~2|"


@pytest.fixture(scope="module")
def nb201_csv(tmp_path_factory):
    """All 15,625 cells; val_acc_12ep and test_acc correlated but distinct, plus a reward trap."""
    path = tmp_path_factory.mktemp("tables") / "nb201.csv"
    rows = []
    for k, ops in enumerate(itertools.product(range(5), repeat=6)):
        n1, n3 = ops.count(2), ops.count(3)
        base = 3.0 * n3 + 1.5 * n1 - 6.0 * (ops[0] == 0) - 2.0 * ops.count(0)
        val12 = 70.0 + base + 2.0 * jitter(k, 1)
        test = 86.0 + 0.8 * base + 1.5 * jitter(k, 2)
        if ops[TRAP_EDGE] == 1:
            val12 += 8.0
            test -= 5.0
        flops = 7.78305 + 3.93216 * n1 + 35.38944 * n3
        params = 0.073306 + 0.028 * n1 + 0.24304 * n3
        row = dict.fromkeys(NB201_HEADER, "0.0")
        row.update(arch_index=k, arch_string=nb201_string(ops), val_acc=f"{test - 3:.6f}", test_acc=f"{test:.6f}",
                   flops=f"{flops:.6f}", params=f"{params:.6f}", val_acc_12ep=f"{val12:.6f}",
                   test_acc_12ep=f"{test - 5:.6f}", iso_key=f"iso{k}")
        rows.append(row)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, NB201_HEADER)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def macro_csv(tmp_path_factory):
    """All 6,561 networks, costs from the closed-form cost model, accuracy a smooth function of params."""
    path = tmp_path_factory.mktemp("tables") / "macro.csv"
    space = load_space("nasbench_macro")
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MACRO_HEADER)
        for k, digits in enumerate(itertools.product(range(3), repeat=8)):
            cost = arch_cost(space.decode(list(digits)))
            acc = 80.0 + 4.0 * math.log(cost.params / 3.8e5) + 0.5 * jitter(k, 3)
            runs = [acc - 0.1, acc, acc + 0.1]
            writer.writerow(["".join(map(str, digits)), f"{acc:.6f}", "0.08", *(f"{r:.6f}" for r in runs),
                             cost.params, cost.conv_linear_macs])
    return path


def test_nb201_strings_map_to_the_cell_edges(nb201_csv):
    table = load_nb201_table(nb201_csv)
    space = load_space("nasbench201")
    assert len(table) == 15625 and table.reward_column == "val_acc_12ep" and table.test_column == "test_acc"
    for row in (0, 1, 777, 9999, 15624):
        arch = space.decode(table.values[row])
        cell = next(b for _, b in arch.blocks() if b.type == "cell")
        edges = {(s, d): op for s, d, op in cell.get("edges")}
        parts = table.keys[row].split("+")
        for dst, part in enumerate(parts, start=1):
            for edge in part.strip("|").split("|"):
                op, src = edge.split("~")
                assert edges[(int(src), dst)] == op
        # the table's MFLOPs are the benchmark's multiply-adds (conv + linear) of the decoded network
        assert abs(table.macs[row] - arch_cost(arch).conv_linear_macs) < 100
    with pytest.raises(ValueError, match="unknown op"):
        nb201_values("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", space)


def test_macro_table(macro_csv):
    table = load_macro_table(macro_csv)
    assert len(table) == 6561 and table.keys[0] == "00000000"
    assert np.array_equal(table.reward, table.test_acc)  # no validation column: the reward is the test column
    assert "no validation" in table.note
    assert table.values[table.row([2, 1, 0, 2, 1, 0, 2, 1])].tolist() == [2, 1, 0, 2, 1, 0, 2, 1]


@pytest.mark.parametrize("controller", ["random", "evolution", "tpe"])
def test_selection_is_by_reward_never_test(nb201_csv, controller):
    table = load_nb201_table(nb201_csv)
    result = run_search("nasbench201", table, controller, 60, seed=1)
    chosen = result["row"]
    assert table.values[chosen][TRAP_EDGE] == 1  # the trap: best reward, mediocre test
    assert result["test_acc"] == table.test_acc[chosen] and result["reward"] == table.reward[chosen]
    rows = np.array(result["rows"])
    assert len(rows) == 60 and chosen == rows[np.argmax(table.reward[rows])]
    assert table.test_acc[rows].max() > table.test_acc[chosen] + 1.0  # picking by test would differ


@pytest.mark.parametrize("controller", sorted(CONTROLLERS))
def test_search_is_deterministic_per_seed(macro_csv, controller):
    table = load_macro_table(macro_csv)
    if not CONTROLLERS[controller].tabular:
        with pytest.raises(ValueError, match="needs trained weights"):
            run_search("nasbench_macro", table, controller, 30, seed=4)
        return
    a = run_search("nasbench_macro", table, controller, 30, seed=4)
    b = run_search("nasbench_macro", table, controller, 30, seed=4)
    c = run_search("nasbench_macro", table, controller, 30, seed=5)
    assert a == b and a != c
    for r in (a, c):
        assert 0.0 <= r["hypervolume_fraction"] <= 1.0
        assert r["queries"] == 30 and 1 <= r["distinct"] <= 30


def test_hypervolume_fraction_is_one_for_the_whole_table(macro_csv, monkeypatch):
    table = load_macro_table(macro_csv)
    assert hypervolume_fraction(table, range(len(table))) == 1.0
    assert hypervolume_fraction(table, []) == 0.0
    assert 0.0 < hypervolume_fraction(table, [0, 1, 2]) < 1.0
    assert true_hypervolume(table) > 0

    class Sweep(Controller):
        """Asks every architecture of the table once, in table order."""
        name = "sweep"

        def propose(self):
            return [int(v) for v in table.values[self.next_id % len(table)]]

    with CONTROLLERS.temporary("sweep", Sweep):
        result = run_search("nasbench_macro", table, "sweep", len(table), seed=0)
    assert result["hypervolume_fraction"] == 1.0 and result["distinct"] == len(table)
    assert result["test_acc"] == table.test_acc.max()


def test_random_search_lands_on_its_expectation(macro_csv):
    """With Q uniform draws the best reward is the k-th best row with P = ((n-k+1)/n)^Q - ((n-k)/n)^Q."""
    table = load_macro_table(macro_csv)
    q, seeds = 20, 300
    result = run_bench("nasbench_macro", macro_csv, "random", q, seeds)
    n = len(table)
    order = np.argsort(-table.reward, kind="stable")
    k = np.arange(1, n + 1)
    p = ((n - k + 1) / n) ** q - ((n - k) / n) ** q
    expected = float(np.sum(p * table.test_acc[order]))
    sd = math.sqrt(float(np.sum(p * (table.test_acc[order] - expected) ** 2)))
    assert abs(result["mean_test_acc"] - expected) < 4 * sd / math.sqrt(seeds), (result["mean_test_acc"], expected)
    for key in ("mean_test_acc", "std_test_acc", "mean_hypervolume_fraction", "queries", "seeds", "controller",
                "space", "optimum_test_acc"):
        assert key in result
    assert result["seeds"] == seeds and result["queries"] == q and result["controller"] == "random"
    assert result["optimum_test_acc"] == table.test_acc.max()
    text = format_bench(result)
    assert "random" in text and f"{result['mean_test_acc']:.2f} +- {result['std_test_acc']:.2f}" in text


def test_run_bench_seeds_and_processes_agree(macro_csv):
    one = run_bench("nasbench_macro", macro_csv, "evolution", 25, [3, 1, 2])
    two = run_bench("nasbench_macro", macro_csv, "evolution", 25, [3, 1, 2], processes=2)
    assert one["test_accs"] == two["test_accs"] and one["seeds"] == 3
    assert one["controller_options"] == TABULAR_DEFAULTS["evolution"]
    textbook = run_bench("nasbench_macro", macro_csv, "evolution", 25, [3, 1, 2], controller_options=TEXTBOOK_REA)
    assert textbook["controller_options"] == {"population": 10, "tournament": 3}
    with pytest.raises(ValueError, match="nasbench_macro"):
        run_bench("resnet_like", macro_csv, "random", 5, 1)
