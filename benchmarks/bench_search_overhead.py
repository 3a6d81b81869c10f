"""Framework overhead of `nas search` through Ray Tune on this machine.

1. Trivial trials per second: the real searcher, store and Tune loop with a trainable that
   reports at once (what the framework costs per child).
2. A real `digits` search: the share of wall time x slots not spent inside the trainer.

    python benchmarks/bench_search_overhead.py [--trivial 200] [--children 12] [--epochs 10]
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

from nas.report import RunState, run_state
from nas.search import SearchSettings, run_search


def instant_child(config: dict, splits=None) -> None:
    """A child that does no work: only the framework's own cost remains."""
    from ray import tune

    tune.report({"status": "ok", "val_acc": float(config["trial_id"] % 97), "macs": config["macs"],
                 "final": True, "elapsed_s": 0.0, "wall_s": 0.0})


def timed(settings: SearchSettings, trainable=None) -> tuple[float, RunState]:
    start = time.perf_counter()
    kwargs = {"trainable": trainable} if trainable else {}
    run_search(settings, out=io.StringIO(), **kwargs)
    wall = time.perf_counter() - start
    return wall, run_state(settings.run_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trivial", type=int, default=200)
    parser.add_argument("--children", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="nas-overhead-"))

    trivial = SearchSettings(space="resnet_like", controller="random", dataset="digits", budget_trials=args.trivial,
                             run_dir=str(root / "trivial"), keep_checkpoints="none")
    wall, state = timed(trivial, instant_child)
    startup = next(e.detail["startup_s"] for e in state.events if e.kind == "ray_ready")
    loop = wall - startup
    print(f"trivial: {args.trivial} children in {wall:.1f} s (Ray start {startup:.1f} s)")

    real = SearchSettings(space="resnet_like", controller="evolution", dataset="digits", budget_trials=args.children,
                          epochs=args.epochs, batch_size=64, lr=0.05, max_macs=3e6, run_dir=str(root / "real"),
                          controller_options={"population": 4, "tournament": 2})
    wall_r, state_r = timed(real)
    startup_r = next(e.detail["startup_s"] for e in state_r.events if e.kind == "ray_ready")
    slots = 2  # this machine's cores, one CPU per trial
    training = sum(t.metrics.get("wall_s", 0.0) for t in state_r.trials)
    print(f"digits: {args.children} children x {args.epochs} epochs in {wall_r:.1f} s wall on {slots} slots; "
          f"trainer time {training:.1f} s; Ray start {startup_r:.1f} s")
    trials = sorted(state_r.trials, key=lambda t: t.started)
    spans = [t.ended - t.started for t in trials]
    scheduling = [span - t.metrics["elapsed_s"] for span, t in zip(spans, trials)]  # Tune + driver per child
    first_wave, steady = scheduling[:slots], scheduling[slots:]
    print(f"per child: Tune + driver time {sorted(steady)[len(steady) // 2]:.3f} s (median after the first wave); "
          f"first wave (worker processes start, import torch): {max(first_wave):.1f} s")
    print(f"trivial_trials_per_second={args.trivial / loop:.2f}")
    print(f"per_child_overhead_s={sorted(steady)[len(steady) // 2]:.3f}")
    print(f"worker_start_s={max(first_wave):.2f}")
    print(f"ray_start_s={startup_r:.2f}")
    print(f"steady_overhead_share={sum(steady) / sum(spans[slots:]):.4f}")
    print(f"digits_overhead_share={1 - training / (wall_r * slots):.3f}")
    print(f"digits_overhead_share_after_ray_start={1 - training / ((wall_r - startup_r) * slots):.3f}")


if __name__ == "__main__":
    main()
