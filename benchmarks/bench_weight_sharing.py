"""How well a supernet's inherited weights rank children, and what each route costs.

1. Train one supernet of SPACE on DATASET (nas.oneshot.training.train_supernet, in this process).
2. Draw N children uniformly within --max-macs (seed 0), score each with inherited weights
   (BatchNorm recalibrated) and train each stand-alone from scratch with the search's proxy recipe
   (nas.train.train_child, the function every search trial calls).
3. Kendall's tau and Spearman's rho (scipy.stats) between inherited and stand-alone validation
   accuracy, with their p-values; device-hours of each route (this machine: one device).
4. The noise ceiling (``--noise-seed S``): every child trained stand-alone once more with seed S, and
   the same correlations between the two stand-alone runs: no proxy ranks children better than the
   proxy's own repetition does.

    python benchmarks/bench_weight_sharing.py [--space resnet_like] [--dataset digits] [--children 24]
        [--supernet-epochs 200] [--epochs 10] [--max-macs 5e6] [--rule spos] [--noise-seed 1] [--json OUT]

Ends with name=value lines, e.g. kendall_tau=0.52.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from nas.data import load_splits
from nas.jsonio import dumps
from nas.oneshot.supernet import Supernet, calibration_batches, evaluate_inherited
from nas.oneshot.training import SupernetRecipe, train_supernet
from nas.space import load_space
from nas.train import DeviceData, Recipe, train_child


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="resnet_like")
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--children", type=int, default=24)
    ap.add_argument("--supernet-epochs", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=10, help="stand-alone training epochs per child")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--max-macs", type=float, default=5e6)
    ap.add_argument("--rule", default="spos", choices=("spos", "sandwich"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--noise-seed", type=int, default=None, help="train every child again with this seed")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    splits = load_splits(args.dataset, seed=0)
    space = load_space(args.space).with_io(splits.info.input_shape, splits.info.classes)
    t0 = time.perf_counter()
    supernet = Supernet(space, seed=0)
    recipe = SupernetRecipe(epochs=args.supernet_epochs, batch_size=args.batch_size, lr=args.lr, rule=args.rule,
                            device="cpu", threads=args.threads, seed=0)
    sup_stats = train_supernet(supernet, splits, recipe, max_macs=args.max_macs)
    supernet_s = time.perf_counter() - t0
    print(f"supernet: {args.supernet_epochs} epochs ({args.rule}) in {supernet_s:.1f} s, "
          f"final train loss {sup_stats.get('train_loss', float('nan')):.3f}", flush=True)

    rng = np.random.default_rng(0)
    archs = [space.sample(rng, max_macs=args.max_macs) for _ in range(args.children)]
    info = splits.info
    train = DeviceData(splits.train_x, splits.train_y, info.mean, info.std, torch.device("cpu"))
    val = DeviceData(splits.val_x, splits.val_y, info.mean, info.std, torch.device("cpu"))
    supernet.eval()
    t1 = time.perf_counter()
    calib = calibration_batches(train, batches=4, batch_size=args.batch_size, seed=0)
    inherited = [evaluate_inherited(supernet, a, train, val, calib=calib) for a in archs]
    inherited_s = time.perf_counter() - t1

    def stand_alone(arch, seed: int) -> float:
        recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device="cpu",
                        threads=args.threads, seed=seed)
        return train_child(arch, splits, recipe).val_acc

    standalone, again, standalone_s = [], [], 0.0
    for i, arch in enumerate(archs):
        t = time.perf_counter()
        standalone.append(stand_alone(arch, 0))
        standalone_s += time.perf_counter() - t
        if args.noise_seed is not None:
            again.append(stand_alone(arch, args.noise_seed))
        print(f"  child {i:2d}: {inherited[i]['macs'] / 1e6:6.2f} M multiply-adds  inherited {inherited[i]['val_acc']:6.2f}%  "
              f"stand-alone {standalone[-1]:6.2f}%" + (f" (seed {args.noise_seed}: {again[-1]:6.2f}%)" if again else ""),
              flush=True)

    a = [r["val_acc"] for r in inherited]
    tau = stats.kendalltau(a, standalone)
    rho = stats.spearmanr(a, standalone)
    figures = {
        "children": args.children,
        "kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
        "spearman_rho": float(rho.statistic), "spearman_p": float(rho.pvalue),
        "mean_inherited_val_acc": float(np.mean(a)), "mean_standalone_val_acc": float(np.mean(standalone)),
        "supernet_device_hours": supernet_s / 3600,
        "inherited_ms_per_child": 1e3 * inherited_s / len(archs),
        "inherited_device_hours": inherited_s / 3600,
        "standalone_device_hours": standalone_s / 3600,
        "standalone_s_per_child": standalone_s / len(archs),
    }
    if again:
        figures["noise_kendall_tau"] = float(stats.kendalltau(again, standalone).statistic)
        figures["noise_spearman_rho"] = float(stats.spearmanr(again, standalone).statistic)
        figures["noise_inherited_vs_seed_kendall_tau"] = float(stats.kendalltau(a, again).statistic)
        print(f"noise ceiling: stand-alone seed 0 vs seed {args.noise_seed}: Kendall tau {figures['noise_kendall_tau']:.3f}, "
              f"Spearman {figures['noise_spearman_rho']:.3f}")
    print(f"{args.children} children within {args.max_macs / 1e6:g} M multiply-adds: Kendall tau {figures['kendall_tau']:.3f} "
          f"(p={figures['kendall_p']:.2g}), Spearman {figures['spearman_rho']:.3f} (p={figures['spearman_p']:.2g})")
    print(f"device-hours: supernet {figures['supernet_device_hours']:.4f} + inherited scoring "
          f"{figures['inherited_device_hours']:.5f} ({figures['inherited_ms_per_child']:.0f} ms/child) vs stand-alone "
          f"{figures['standalone_device_hours']:.4f} ({figures['standalone_s_per_child']:.1f} s/child)")
    if args.json:
        Path(args.json).write_text(dumps({"figures": figures, "inherited": a, "standalone": standalone,
                                          "standalone_again": again}, indent=1))
    for name, value in figures.items():
        print(f"{name}={value:.4g}")


if __name__ == "__main__":
    main()
