"""Wall time of `nas inspect - --json` reading 1,000 nasbench_macro targets from stdin in one process.

The command runs REPEATS times in a fresh interpreter; the median is the figure (the minimum is printed
too, since the machine is shared). Goal: under GOAL_S seconds.

    python benchmarks/bench_inspect_stdin.py [--targets 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

GOAL_S = 10.0


def targets(n: int) -> str:
    """n distinct nasbench_macro targets (base-3 digits of i, then a fixed last decision), one a line."""
    return "".join(f"nasbench_macro:{''.join(str(i // 3**d % 3) for d in range(7))}1\n" for i in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    stdin = targets(args.targets)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "nas", "inspect", "-", "--json"], input=stdin,
                              capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t0)
        assert len(done.stdout.splitlines()) == args.targets, done.stderr[-2000:]
    print(f"targets={args.targets}")
    print(f"goal_s={GOAL_S}")
    print(f"inspect_stdin_median_s={statistics.median(times):.3f}")
    print(f"inspect_stdin_min_s={min(times):.3f}")


if __name__ == "__main__":
    main()
