"""Start-up time of the commands a user types first: `nas --help`, `nas spaces`, `nas sample`.

Each command runs REPEATS times in a fresh interpreter (`python -m nas ...`); the median wall time is
the figure (the machine is shared, so the minimum is printed too). Also lists which heavy packages
(torch, ray, optuna) each command imports, read from `python -X importtime`.

    python benchmarks/bench_startup.py [--repeats 7] [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {"help": ["--help"], "spaces": ["spaces"], "sample": ["sample", "nasbench_macro", "-n", "3"]}
HEAVY = ("torch", "ray", "optuna", "matplotlib", "scipy", "sklearn")


def run(args: list[str], env: dict) -> float:
    """Wall seconds of one `python -m nas ARGS` (its output discarded)."""
    t0 = time.perf_counter()
    # cwd: `python -m` puts the working directory first on sys.path, so it decides which nas runs
    subprocess.run([sys.executable, "-m", "nas", *args], env=env, check=True, cwd=env["NAS_BENCH_ROOT"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def heavy_imports(args: list[str], env: dict) -> list[str]:
    """Which HEAVY packages the command imports (top-level names seen by -X importtime)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nas", *args], env=env, text=True,
                          cwd=env["NAS_BENCH_ROOT"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    return sorted(names & set(HEAVY))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--root", type=Path, help="run another checkout's code (sets PYTHONPATH)")
    args = parser.parse_args()
    root = (args.root or Path(__file__).resolve().parents[1]).resolve()
    env = {**os.environ, "PYTHONPATH": str(root), "NAS_BENCH_ROOT": str(root)}
    results = {}
    for name, argv in COMMANDS.items():
        run(argv, env)  # warm the file cache
        times = [run(argv, env) for _ in range(args.repeats)]
        results[name] = (statistics.median(times), min(times), heavy_imports(argv, env))
        print(f"nas {' '.join(argv)}: median {results[name][0]:.2f} s, min {results[name][1]:.2f} s, "
              f"imports {', '.join(results[name][2]) or 'none of ' + '/'.join(HEAVY)}")
    for name, (median, best, _) in results.items():
        print(f"startup_{name}_median_s={median:.3f}")
        print(f"startup_{name}_min_s={best:.3f}")


if __name__ == "__main__":
    main()
