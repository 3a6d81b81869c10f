"""The REINFORCE controller (rl) on the tabular benchmarks, beside random and evolution, and with
MnasNet's FLOP-target reward.

1. Cost of the controller in the driver: milliseconds per ask (policy sample + decode) and per
   REINFORCE update on NAS-Bench-201, at torch's default thread count and at one thread.
2. ``nas bench`` runs (nas.bench.run_bench) on NAS-Bench-201 (reward val_acc_12ep, reported
   200-epoch test_acc) and NAS-Bench-Macro (reward = reported = mean_test_acc) at 100 and 150
   queries, seeds 0..N-1: random, evolution (nas.bench's tabular defaults) and rl (its tabular
   defaults, TABULAR_DEFAULTS["rl"]). p-values: Welch's t-test (scipy.stats.ttest_ind,
   equal_var=False) and Mann-Whitney U (scipy.stats.mannwhitneyu), both two-sided, over the
   per-seed test accuracies of rl against random and against evolution.
3. FLOP target on NAS-Bench-201: rl with objectives (accuracy, macs) and target_macs T, soft
   (``acc * (macs/T) ** -0.07``) and hard (w = 0 at or below T, -1 above) MnasNet reward; random
   search beside it with the same selection. Each search keeps the queried architecture with the
   best MnasNet reward (computed from the 12-epoch validation accuracy, the same reward rl
   learns from; rl's reward_power only reshapes it monotonically) and reports its MACs (mean
   |macs - T| / T, share at or below T) and test accuracy, against the best test accuracy of the
   table's architectures with macs <= T and the test accuracy of the table's best-MnasNet-reward
   architecture (what querying everything would select).
4. ``--tune``: the final stage of the hyperparameter choice. Every setting runs on tuning seeds
   1000..1199 (disjoint from the reported seeds) at 100 and 150 queries on NAS-Bench-201 and is
   ranked by the mean REWARD (val_acc_12ep) summed over both budgets, never by test accuracy.

The script sets torch to one thread for its own process (runs are sequential, processes=1): the
controller's tiny LSTM gains nothing from intra-op threads, and on a shared machine they cost
more than the work. The controller itself never changes torch's thread settings.

    python benchmarks/bench_rl.py [--nb201 PATH] [--macro PATH] [--seeds 200] [--queries 100 150]
                                  [--targets 1e8 5e7] [--target-queries 150] [--skip-tabular]
                                  [--skip-target] [--tune] [--json OUT]

Ends with name=value lines, e.g. nb201_150_rl_mean_test_acc=94.1.
"""

from __future__ import annotations

import argparse
import json
import time
from functools import cache
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from nas.bench import TABULAR_DEFAULTS, load_nb201_table, run_bench
from nas.controllers.base import make_controller
from nas.controllers.rl import mnasnet_reward
from nas.jsonio import dumps
from nas.space import load_space

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
TUNE_SEEDS = range(1000, 1200)
# The last stage of the tuning (an earlier screen of ~40 settings used 100 tuning seeds at 150
# queries: lr 0.003..0.1, batch 1..10, baseline decay 0.8..0.99, entropy 1e-4..0.03, temperature
# None/2/5/10, tanh None/1.5/2.5, hidden 64/100, reward_power 1..30).
# Every setting names lr, batch and reward_power, which TABULAR_DEFAULTS["rl"] would otherwise fill in.
TUNE_GRID = [
    {"lr": 0.01, "batch": 5, "reward_power": 1},
    {"lr": 0.01, "batch": 5, "reward_power": 3},
    {"lr": 0.01, "batch": 5, "reward_power": 10},
    {"lr": 0.01, "batch": 5, "reward_power": 20},
    {"lr": 0.015, "batch": 5, "reward_power": 20},
    {"lr": 0.01, "batch": 5, "reward_power": 20, "baseline_decay": 0.8},
    {"lr": 0.02, "batch": 5, "reward_power": 20, "temperature": 10},
    {"lr": 0.0075, "batch": 3, "reward_power": 20},
    {"lr": 0.01, "batch": 3, "reward_power": 20},
    {"lr": 0.01, "batch": 3, "reward_power": 30},
    {"lr": 0.01, "batch": 2, "reward_power": 20},
    {"lr": 0.01, "batch": 3, "reward_power": 20, "entropy_weight": 0.001},
    {"lr": 0.01, "batch": 3, "reward_power": 20, "tanh_constant": None},
]


@cache
def _space(name: str):
    return load_space(name)


def time_controller(space_name: str = "nasbench201", children: int = 300) -> dict:
    """ms per ask (sample + decode) and per update, with the tabular defaults, on a synthetic reward."""
    space = _space(space_name)
    ctrl = make_controller("rl", space, seed=0, **TABULAR_DEFAULTS["rl"])
    ask_s, tell_s, updates = 0.0, 0.0, 0
    for _i in range(children):
        t0 = time.perf_counter()
        p = ctrl.ask()
        t1 = time.perf_counter()
        before = ctrl.updates
        ctrl.tell(p.trial_id, {"val_acc": 50.0 + 5 * np.mean(p.values)})
        t2 = time.perf_counter()
        ask_s += t1 - t0
        if ctrl.updates > before:
            tell_s += t2 - t1
            updates += 1
    return {"ask_ms": 1e3 * ask_s / children, "update_ms": 1e3 * tell_s / max(updates, 1), "threads": torch.get_num_threads()}


def welch_and_mw(a: list[float], b: list[float]) -> tuple[float, float]:
    """Two-sided p-values: Welch's t-test and Mann-Whitney U."""
    return (float(stats.ttest_ind(a, b, equal_var=False).pvalue),
            float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue))


def target_search(table, controller: str, target: float, hard: bool, queries: int, seed: int) -> dict:
    """One search for a MACs target; keeps the queried arch with the best MnasNet reward."""
    options = {**TABULAR_DEFAULTS["rl"], "target_macs": target, "hard_target": hard} if controller == "rl" else {}
    ctrl = make_controller(controller, _space(table.space), seed=seed, objectives=("accuracy", "macs"), **options)
    weight = -1.0 if hard else -0.07
    best_reward, best = -np.inf, -1
    for _ in range(queries):
        p = ctrl.ask()
        i = table.row(p.values)
        ctrl.tell(p.trial_id, {"val_acc": float(table.reward[i]), "macs": float(table.macs[i]),
                               "params": float(table.params[i])})
        r = mnasnet_reward(table.reward[i] / 100.0, float(table.macs[i]), target, weight, hard)
        if r > best_reward:
            best_reward, best = r, i
    return {"row": best, "macs": float(table.macs[best]), "test_acc": float(table.test_acc[best]),
            "reward": best_reward}


def target_bench(table, controller: str, target: float, hard: bool, queries: int, seeds: int) -> dict:
    runs = [target_search(table, controller, target, hard, queries, s) for s in range(seeds)]
    macs = np.array([r["macs"] for r in runs])
    test = np.array([r["test_acc"] for r in runs])
    return {"controller": controller, "target": target, "mode": "hard" if hard else "soft",
            "mean_rel_dist": float(np.mean(np.abs(macs - target) / target)),
            "share_within": float(np.mean(macs <= target)), "mean_macs": float(macs.mean()),
            "mean_test_acc": float(test.mean()), "std_test_acc": float(test.std()), "test_accs": test.tolist()}


def table_reference(table, target: float, hard: bool) -> dict:
    """The best test accuracy at or below the target, and what the table's best MnasNet reward picks."""
    feasible = table.macs <= target
    weight = -1.0 if hard else -0.07
    rewards = np.array([mnasnet_reward(a / 100.0, m, target, weight, hard) for a, m in zip(table.reward, table.macs)])
    pick = int(np.argmax(rewards))
    return {"best_test_within": float(table.test_acc[feasible].max()), "archs_within": int(feasible.sum()),
            "pick_test": float(table.test_acc[pick]), "pick_rel_dist": float(abs(table.macs[pick] - target) / target)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nb201", default=str(SHARED / "nasbench201_cifar10.csv"))
    ap.add_argument("--macro", default=str(SHARED / "nasbench_macro_cifar10.csv"))
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--queries", type=int, nargs="+", default=[100, 150])
    ap.add_argument("--targets", type=float, nargs="+", default=[1e8, 5e7])
    ap.add_argument("--target-queries", type=int, default=150)
    ap.add_argument("--skip-tabular", action="store_true")
    ap.add_argument("--skip-target", action="store_true")
    ap.add_argument("--tune", action="store_true", help="also run the tuning grid (tuning seeds 1000..1199)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    start = time.perf_counter()
    figures: dict[str, float] = {}
    results: dict = {"tabular": [], "target": [], "tune": []}

    timing_default = time_controller()
    torch.set_num_threads(1)
    timing_one = time_controller()
    print(f"rl cost per ask / per update (nasbench201): {timing_default['ask_ms']:.2f} / {timing_default['update_ms']:.2f} ms "
          f"at {timing_default['threads']} threads, {timing_one['ask_ms']:.2f} / {timing_one['update_ms']:.2f} ms at 1")
    figures.update({"rl_ask_ms_default_threads": timing_default["ask_ms"], "rl_update_ms_default_threads": timing_default["update_ms"],
                    "rl_ask_ms_1_thread": timing_one["ask_ms"], "rl_update_ms_1_thread": timing_one["update_ms"]})
    print(f"rl tabular defaults {TABULAR_DEFAULTS['rl']}; evolution {TABULAR_DEFAULTS['evolution']}")

    if args.tune:
        print(f"\ntuning on NAS-Bench-201, seeds {TUNE_SEEDS.start}..{TUNE_SEEDS.stop - 1}: mean best reward (val_acc_12ep)")
        for cfg in TUNE_GRID:
            row = {"options": cfg}
            for q in (100, 150):
                r = run_bench("nasbench201", args.nb201, "rl", q, TUNE_SEEDS, controller_options=cfg)
                row[f"reward_{q}"] = r["mean_reward"]
            row["score"] = row["reward_100"] + row["reward_150"]
            results["tune"].append(row)
            print(f"  {json.dumps(cfg):60} reward@100 {row['reward_100']:.3f} reward@150 {row['reward_150']:.3f} "
                  f"sum {row['score']:.3f}", flush=True)
        best = max(results["tune"], key=lambda r: r["score"])
        print(f"  best by reward: {best['options']}")

    if not args.skip_tabular:
        tables = {"nb201": ("nasbench201", args.nb201), "macro": ("nasbench_macro", args.macro)}
        header = f"\n{'space':6} {'queries':>7} {'controller':10} {'test acc':>15} {'reward':>7} {'distinct':>8} {'sec':>6}"
        print(header)
        print("-" * (len(header) - 1))
        for key, (space, path) in tables.items():
            for q in args.queries:
                accs = {}
                for controller in ("random", "evolution", "rl"):
                    r = run_bench(space, path, controller, q, args.seeds)
                    accs[controller] = r["test_accs"]
                    r["key"] = key
                    results["tabular"].append(r)
                    print(f"{key:6} {q:7d} {controller:10} {r['mean_test_acc']:7.3f} +- {r['std_test_acc']:.3f} "
                          f"{r['mean_reward']:7.3f} {r['mean_distinct']:8.1f} {r['seconds']:6.1f}", flush=True)
                    figures[f"{key}_{q}_{controller}_mean_test_acc"] = r["mean_test_acc"]
                    figures[f"{key}_{q}_{controller}_std_test_acc"] = r["std_test_acc"]
                    figures[f"{key}_{q}_{controller}_mean_reward"] = r["mean_reward"]
                for other in ("random", "evolution"):
                    welch, mw = welch_and_mw(accs["rl"], accs[other])
                    print(f"{'':6} {'':7} rl vs {other}: Welch p={welch:.2g}, Mann-Whitney p={mw:.2g} (two-sided)")
                    figures[f"{key}_{q}_rl_vs_{other}_welch_p"] = welch
                    figures[f"{key}_{q}_rl_vs_{other}_mannwhitney_p"] = mw

    if not args.skip_target:
        table = load_nb201_table(args.nb201)
        print(f"\nFLOP target on NAS-Bench-201, {args.target_queries} queries x {args.seeds} seeds, objectives accuracy,macs; "
              f"chosen = best MnasNet reward queried")
        header = (f"{'target':>7} {'mode':4} {'controller':10} {'|macs-T|/T':>10} {'<=T':>5} {'mean MACs':>10} "
                  f"{'test acc':>15} {'best test <=T':>13} {'table pick':>17}")
        print(header)
        print("-" * len(header))
        for target in args.targets:
            for hard in (False, True):
                ref = table_reference(table, target, hard)
                accs = {}
                for controller in ("random", "rl"):
                    t0 = time.perf_counter()
                    r = target_bench(table, controller, target, hard, args.target_queries, args.seeds)
                    r.update(ref, seconds=time.perf_counter() - t0)
                    results["target"].append(r)
                    accs[controller] = r["test_accs"]
                    print(f"{target / 1e6:6.0f}M {r['mode']:4} {controller:10} {r['mean_rel_dist']:10.3f} {r['share_within']:5.2f} "
                          f"{r['mean_macs'] / 1e6:9.1f}M {r['mean_test_acc']:7.3f} +- {r['std_test_acc']:.3f} "
                          f"{ref['best_test_within']:13.2f} {ref['pick_test']:7.2f} ({ref['pick_rel_dist']:.3f})", flush=True)
                    name = f"nb201_target{target / 1e6:.0f}M_{r['mode']}_{controller}"
                    figures[f"{name}_mean_rel_dist"] = r["mean_rel_dist"]
                    figures[f"{name}_share_within"] = r["share_within"]
                    figures[f"{name}_mean_test_acc"] = r["mean_test_acc"]
                welch, _ = welch_and_mw(accs["rl"], accs["random"])
                figures[f"nb201_target{target / 1e6:.0f}M_{'hard' if hard else 'soft'}_rl_vs_random_welch_p"] = welch
                figures[f"nb201_target{target / 1e6:.0f}M_best_test_within"] = ref["best_test_within"]
                figures[f"nb201_target{target / 1e6:.0f}M_{'hard' if hard else 'soft'}_table_pick_test"] = ref["pick_test"]
        print("(table pick: test accuracy of the table's best-MnasNet-reward arch, and its |macs-T|/T)")

    print(f"total {time.perf_counter() - start:.1f} s")
    if args.json:
        Path(args.json).write_text(dumps({"figures": figures, **results}, indent=1))
    for name, value in figures.items():
        print(f"{name}={value:.3g}" if name.endswith("_p") else f"{name}={value:.4f}")


if __name__ == "__main__":
    main()
