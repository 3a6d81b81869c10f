"""`nas bench`: controllers scored on a tabular benchmark (no training, no Ray)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.common import UsageError, positive_int


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="run controllers on a tabular NAS benchmark (no training, no Ray)",
                       description="Score a controller against real ground truth: training is a table lookup.")
    p.add_argument("--space", required=True, choices=("nasbench201", "nasbench_macro"))
    p.add_argument("--table", required=True, help="the benchmark's CSV (see ../shared/benchmarks)")
    p.add_argument("--controller", default="evolution")
    p.add_argument("--queries", type=positive_int, default=150)
    p.add_argument("--seeds", type=positive_int, default=10)
    p.add_argument("--objectives", default="accuracy")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    from nas.bench.tabular import format_bench, run_bench
    from nas.jsonio import dumps

    if not Path(args.table).exists():
        raise UsageError(f"{args.table}: no such table")
    objectives = tuple(o.strip() for o in args.objectives.split(",") if o.strip())
    result = run_bench(args.space, args.table, args.controller, args.queries, args.seeds, objectives)
    print(dumps(result) if args.json else format_bench(result))
    return 0
