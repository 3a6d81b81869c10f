"""Time `nas report RUN_DIR` (terminal table, csv, json, both PNGs and report.html) on a 10,000-trial run.

The run is synthetic: random nasbench_macro architectures with their exact MACs and parameters,
fake accuracies (rising with log MACs, plus noise), fake device-seconds and end times, and ~3%
failures. Rows go into a real RunStore schema in one transaction (the store's per-trial API
fsyncs every trial, which would only slow the setup). The timed part is the real CLI in a fresh
process, Python start-up and imports included.

    python benchmarks/bench_report.py [--trials 10000] [--seed 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nas.model.cost import arch_cost
from nas.search import SearchSettings
from nas.space import load_space
from nas.store import RunStore

FAILURES = ("failed: out of memory", "diverged", "failed: ray worker lost (retried once)")


def make_run(run_dir: Path, trials: int, seed: int) -> None:
    """A finished run of `trials` random nasbench_macro children with fake metrics."""
    rng = np.random.default_rng(seed)
    space = load_space("nasbench_macro")
    settings = SearchSettings(space="nasbench_macro", controller="random", dataset="cifar10", budget_trials=trials,
                              seed=seed, run_dir=str(run_dir))
    store = RunStore(run_dir, create=True)
    store.save_settings({"search": settings.to_dict(), "created": time.time()})
    cache: dict[tuple, tuple] = {}
    rows, clock = [], time.time() - trials * 30.0
    for trial_id in range(trials):
        values = space.sample_values(rng)
        key = tuple(values)
        if key not in cache:
            arch = space.decode(values)
            cost = arch_cost(arch)
            cache[key] = (arch.to_json(), arch.arch_id, cost.macs, cost.params)
        arch_json, arch_id, macs, params = cache[key]
        device_s = float(rng.uniform(20, 60))
        started, clock = clock, clock + device_s / 2  # two children at a time
        status = FAILURES[trial_id % 3] if rng.random() < 0.03 else "ok"
        metrics = {"device_s": device_s, "macs": macs, "params": params}
        if status == "ok":
            metrics["val_acc"] = float(min(99.0, 60 + 4.5 * math.log(macs / 1e6 + 1) + rng.normal(0, 2.5)))
        rows.append((trial_id, arch_id, arch_json, json.dumps(values), status, json.dumps(metrics), device_s,
                     started, started + device_s, 1, None))
    store.db.execute("BEGIN IMMEDIATE")
    store.db.executemany("INSERT INTO trials (trial_id, arch_id, arch, decisions, status, metrics, device_s, started, "
                         "ended, attempts, checkpoint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    store.db.execute("INSERT INTO events VALUES (?, 'start', ?)", (rows[0][7], json.dumps({"finished": 0})))
    store.db.execute("INSERT INTO events VALUES (?, 'end', ?)", (clock, json.dumps({})))
    store.db.execute("COMMIT")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", metavar="DIR", help="build the run here and keep it (default: a temp folder)")
    args = parser.parse_args()
    run_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nas-report-bench-")) / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t0 = time.perf_counter()
    make_run(run_dir, args.trials, args.seed)
    print(f"synthetic run: {args.trials:,} trials in {run_dir} ({time.perf_counter() - t0:.1f} s to build)")

    from nas.report import front_rows, run_state, write_report

    t = time.perf_counter()
    state = run_state(run_dir)
    t_state = time.perf_counter() - t
    rows = front_rows(state)
    t_rows = time.perf_counter() - t - t_state
    write_report(run_dir, state, rows)
    t_files = time.perf_counter() - t - t_state - t_rows
    print(f"in process: run_state {t_state:.2f} s, front rows {t_rows:.2f} s ({len(rows)} on the front), "
          f"files {t_files:.2f} s")
    size = (run_dir / "report.html").stat().st_size
    print(f"report.html {size / 1024:,.0f} KB")

    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nas", "report", str(run_dir)], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"nas report failed ({done.returncode}): {done.stderr.strip()}")
    print(next(line for line in done.stdout.splitlines() if line.startswith("trials:")))
    if not args.keep:
        shutil.rmtree(run_dir.parent)
    print(f"report_seconds={seconds:.2f}")


if __name__ == "__main__":
    main()
