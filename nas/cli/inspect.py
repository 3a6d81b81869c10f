"""`nas inspect`: the per-layer cost table of architectures (analytic; nothing is built)."""

from __future__ import annotations

import argparse

from nas.cli.common import add_target_args, targets
from nas.jsonio import dumps
from nas.report.table import printable


def add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="per-layer shapes, parameters, MACs and memory of architectures",
                       description="The per-layer cost table of each TARGET (exact, analytic; nothing is built).")
    add_target_args(p)
    p.add_argument("--json", action="store_true", help="one JSON object per target and line")
    p.set_defaults(run=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from dataclasses import fields as dataclass_fields

    from nas.model.cost import arch_cost
    from nas.model.layers import LayerRow
    from nas.report.table import cost_table

    fields = [f.name for f in dataclass_fields(LayerRow)]
    for n, (label, arch) in enumerate(targets(args)):
        cost = arch_cost(arch, detail=True)
        if args.json:
            layers = [{k: getattr(row, k) for k in fields} for row in cost.layers]  # Cost.to_dict's asdict is slow
            print(dumps({"arch_id": arch.arch_id, "input": list(arch.input), "classes": arch.classes,
                         **cost.to_dict(layers=False), "layers": layers}, separators=(",", ":")))
            continue
        c, h, w = arch.input
        print(("\n" if n else "") + printable(f"{label}   arch_id {arch.arch_id}   input {c}x{h}x{w}   classes {arch.classes}"))
        print(cost_table(cost))
    return 0
