"""Architectures per second of the analytic cost model against building and counting the module.

Samples resnet_like architectures up front (not timed), then times `arch_cost(arch)` over them on
one core: a cold pass (per-block cache cleared first) and a warm second pass. The baseline builds
each network and counts conv/linear multiply-adds with fvcore (when installed: `pip install
fvcore`), else torch.utils.flop_counter.FlopCounterMode (FLOPs halved), on a batch-1 forward.

    python benchmarks/bench_cost.py [--archs 2000] [--module-archs 50] [--seed 0] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

import nas.model.cost
from nas.arch import Arch, Block, Head
from nas.model.build import build_model
from nas.model.cost import arch_cost

GOAL = 10_000  # archs per second, cold


def local_resnet_like(rng: np.random.Generator) -> Arch:
    """Fallback sampler of resnet_like-style architectures (used when nas.space is unavailable)."""
    base = int(rng.choice([16, 32, 64]))
    stem = (Block.make("conv", int(rng.choice([16, 32, 64])), 1, kernel=3),)
    stages = []
    for i in range(int(rng.choice([3, 4]))):
        width = base * 2 ** i
        type_ = str(rng.choice(["basic", "bottleneck", "resnext"]))
        opts: dict = {"se_ratio": float(rng.choice([0.0, 0.25]))}
        if type_ != "basic":
            opts["mid_ratio"] = float(rng.choice([0.25, 0.5]))
        if type_ == "resnext":
            opts["groups"] = int(rng.choice([4, 8, 16]))
        depth = int(rng.integers(1, 5))
        stages.append(tuple(Block.make(type_, width, 2 if (i > 0 and j == 0) else 1, **opts) for j in range(depth)))
    return Arch((3, 32, 32), 10, stem, tuple(stages), Head())


def sampler():
    """(description, sample(rng) -> Arch): the space language when it loads, else the local generator."""
    try:
        from nas.space import load_space

        space = load_space("resnet_like")
        space.sample(np.random.default_rng(12345))
        return "nas.space.load_space('resnet_like').sample", space.sample
    except Exception as err:  # the space language is still being written: fall back, say so
        return f"local resnet_like-style generator (nas.space unavailable: {type(err).__name__}: {err})", local_resnet_like


def module_macs_flop_counter(arch: Arch) -> int:
    """Build the module and count conv/linear multiply-adds with FlopCounterMode (FLOPs / 2)."""
    model = build_model(arch).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *arch.input))
    return counter.get_total_flops() // 2


def module_macs_fvcore(arch: Arch) -> int:
    """Build the module and count conv/linear multiply-adds with fvcore (it counts one per MAC)."""
    from fvcore.nn import FlopCountAnalysis

    model = build_model(arch).eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, *arch.input))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    ops = analysis.by_operator()
    return int(ops.get("conv", 0) + ops.get("linear", 0) + ops.get("addmm", 0) + ops.get("matmul", 0))


def module_counter():
    """fvcore when installed (`pip install fvcore`), else torch's own flop counter."""
    try:
        import fvcore  # noqa: F401

        return "fvcore FlopCountAnalysis (conv + linear)", module_macs_fvcore
    except ImportError:
        return "torch.utils.flop_counter.FlopCounterMode / 2 (fvcore is not installed)", module_macs_flop_counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=2000)
    parser.add_argument("--module-archs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile the cold pass and print the top functions")
    args = parser.parse_args()
    torch.set_num_threads(1)

    source, sample = sampler()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    archs = [sample(rng) for _ in range(args.archs)]
    sample_s = time.perf_counter() - t0
    blocks = sum(len(a.stem) + sum(len(s) for s in a.stages) for a in archs)
    print(f"sampler: {source}")
    print(f"sampled {len(archs)} archs ({len(set(a.arch_id for a in archs))} distinct, {blocks} blocks) "
          f"in {sample_s:.2f} s (not timed)")

    nas.model.cost._block_totals.cache_clear()
    t0 = time.perf_counter()
    costs = [arch_cost(a) for a in archs]
    cold_s = time.perf_counter() - t0
    info = nas.model.cost._block_totals.cache_info()
    t0 = time.perf_counter()
    for a in archs:
        arch_cost(a)
    warm_s = time.perf_counter() - t0
    n_detail = min(len(archs), 500)
    t0 = time.perf_counter()
    for a in archs[:n_detail]:
        arch_cost(a, detail=True)
    detail_s = time.perf_counter() - t0
    print(f"arch_cost cold pass: {cold_s * 1e6 / len(archs):.1f} us/arch "
          f"(block cache {info.misses} misses, {info.hits} hits)")
    print(f"arch_cost warm pass: {warm_s * 1e6 / len(archs):.1f} us/arch")
    print(f"arch_cost detail=True: {detail_s * 1e6 / n_detail:.1f} us/arch over {n_detail} archs")

    n_mod = min(args.module_archs, len(archs))
    counter_name, module_macs = module_counter()
    module_macs(archs[0])  # first-use overhead of the flop counter is not the per-arch cost
    mismatches = 0
    t0 = time.perf_counter()
    for a, c in zip(archs[:n_mod], costs[:n_mod]):
        mismatches += module_macs(a) != c.conv_linear_macs
    module_s = time.perf_counter() - t0
    print(f"module baseline (build_model + {counter_name}, batch 1, 1 thread): "
          f"{module_s * 1e3 / n_mod:.1f} ms/arch over {n_mod} archs")
    print(f"conv_linear_macs vs the module counter: {mismatches}/{n_mod} mismatches")

    if args.profile or len(archs) / cold_s < GOAL:
        nas.model.cost._block_totals.cache_clear()
        prof = cProfile.Profile()
        prof.enable()
        for a in archs:
            arch_cost(a)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(f"cold pass below the {GOAL}/s goal or --profile: cProfile by own time")
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])

    aps = len(archs) / cold_s
    module_aps = n_mod / module_s
    print(f"goal={GOAL}")
    print(f"archs_per_second={aps:.0f}")
    print(f"archs_per_second_warm={len(archs) / warm_s:.0f}")
    print(f"module_count_archs_per_second={module_aps:.2f}")
    print(f"speedup={aps / module_aps:.0f}")


if __name__ == "__main__":
    main()
