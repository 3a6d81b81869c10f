"""Controllers on the real tabular benchmarks: NAS-Bench-201 and NAS-Bench-Macro (CIFAR-10).

For each space and query budget (default 100 and 150), every controller runs once per seed
(default 200 seeds) through nas.bench.run_bench: a query is one ask/tell answered from the table,
the search keeps the queried architecture with the best reward and reports its test accuracy.

* NAS-Bench-201: reward val_acc_12ep (12-epoch validation accuracy), reported test_acc (200-epoch).
* NAS-Bench-Macro: the table has no validation column, so reward = reported = mean_test_acc.

Controllers: random, evolution (the tabular default of nas.bench: population 50, tournament 25,
chosen on the reward), evolution_textbook (NAS-Bench-201's REA: population 10, tournament 3),
tpe and nsga2 (Optuna). The hypervolume fraction is that of the found (test accuracy, MACs) front
over the whole table's (see nas.bench).

    python benchmarks/bench_nasbench.py [--nb201 PATH] [--macro PATH] [--seeds 200] [--optuna-seeds N]
                                        [--queries 100 150] [--controllers ...] [--processes 2] [--json OUT]

Ends with name=value lines, e.g. nb201_150_evolution_mean_test_acc=94.285.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from nas.bench import TABULAR_DEFAULTS, TEXTBOOK_REA, run_bench
from nas.jsonio import dumps

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
CONTROLLERS = {  # label -> (controller, options)
    "random": ("random", None),
    "evolution": ("evolution", None),
    "evolution_textbook": ("evolution", TEXTBOOK_REA),
    "tpe": ("tpe", None),
    "nsga2": ("nsga2", None),
}
# NAS-Bench-201 calibration quoted in the issue (12-epoch mean validation reward, CIFAR-10 test).
CALIBRATION = {("random", 100): 93.72, ("random", 150): 93.84,
               ("evolution_textbook", 100): 93.93, ("evolution_textbook", 150): 94.07}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nb201", default=str(SHARED / "nasbench201_cifar10.csv"))
    ap.add_argument("--macro", default=str(SHARED / "nasbench_macro_cifar10.csv"))
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--optuna-seeds", type=int, default=None, help="seeds for tpe/nsga2 (default: --seeds)")
    ap.add_argument("--queries", type=int, nargs="+", default=[100, 150])
    ap.add_argument("--controllers", nargs="+", default=list(CONTROLLERS), choices=list(CONTROLLERS))
    ap.add_argument("--spaces", nargs="+", default=["nb201", "macro"], choices=["nb201", "macro"])
    ap.add_argument("--processes", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--json", default=None, help="write every run_bench result to this file")
    args = ap.parse_args()

    tables = {"nb201": ("nasbench201", args.nb201), "macro": ("nasbench_macro", args.macro)}
    print(f"evolution tabular default {TABULAR_DEFAULTS['evolution']}; evolution_textbook {TEXTBOOK_REA}")
    print("nb201: reward val_acc_12ep, reported test_acc (200 epochs). macro: no validation column, "
          "reward = reported = mean_test_acc (optimistic).")
    results, start = [], time.perf_counter()
    header = f"{'space':6} {'queries':>7} {'controller':19} {'seeds':>5} {'test acc':>15} {'reward':>7} {'HV frac':>7} {'sec':>6}  calib"
    print(header)
    print("-" * len(header))
    for key in args.spaces:
        space, path = tables[key]
        for queries in args.queries:
            for label in args.controllers:
                controller, options = CONTROLLERS[label]
                seeds = args.optuna_seeds if controller in ("tpe", "nsga2") and args.optuna_seeds else args.seeds
                r = run_bench(space, path, controller, queries, seeds, controller_options=options,
                              processes=args.processes)
                r["label"], r["key"] = label, key
                results.append(r)
                calib = CALIBRATION.get((label, queries)) if key == "nb201" else None
                print(f"{key:6} {queries:7d} {label:19} {r['seeds']:5d} {r['mean_test_acc']:7.3f} +- {r['std_test_acc']:.3f} "
                      f"{r['mean_reward']:7.3f} {r['mean_hypervolume_fraction']:7.4f} {r['seconds']:6.1f}  "
                      f"{calib if calib else ''}", flush=True)
    print(f"total {time.perf_counter() - start:.1f} s")
    for key in args.spaces:
        space, _ = tables[key]
        first = next(r for r in results if r["key"] == key)
        print(f"{key}_optimum_test_acc={first['optimum_test_acc']:.4f}")
        print(f"{key}_best_reward_arch_test_acc={first['best_reward_arch_test_acc']:.4f}")
    for r in results:
        name = f"{r['key']}_{r['queries']}_{r['label']}"
        print(f"{name}_mean_test_acc={r['mean_test_acc']:.4f}")
        print(f"{name}_std_test_acc={r['std_test_acc']:.4f}")
        print(f"{name}_mean_hypervolume_fraction={r['mean_hypervolume_fraction']:.4f}")
        print(f"{name}_seeds={r['seeds']}")
        print(f"{name}_seconds={r['seconds']:.1f}")
    if args.json:
        Path(args.json).write_text(dumps(results, indent=1))


if __name__ == "__main__":
    main()
