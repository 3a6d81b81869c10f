"""`nas spaces`: the built-in spaces with their sizes, or one space's decisions."""

from __future__ import annotations

import argparse

from nas.jsonio import dumps


def add_spaces(sub) -> None:
    p = sub.add_parser("spaces", help="list the built-in search spaces, or one space's decisions",
                       description="Without SPACE: the built-in spaces with their exact sizes. With SPACE (a "
                                   "built-in name or a .yaml file): its decisions, in the order SPACE:i,j,k uses.")
    p.add_argument("space", nargs="?", metavar="SPACE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(run=cmd_spaces)


def cmd_spaces(args: argparse.Namespace) -> int:
    from nas.report.table import format_table
    from nas.search_spaces import builtin_space_files
    from nas.space.search_space import load_space

    if args.space:
        return _print_decisions(load_space(args.space), args.json)
    rows = []
    for name in builtin_space_files():
        space = load_space(name)
        rows.append({"name": space.name, "size": space.size(), "decisions": len(space.decisions),
                     "dataset": space.spec.dataset, "description": space.spec.description})
    if args.json:
        for row in rows:
            print(dumps(row))
    else:
        print(format_table(["space", "architectures", "decisions", "dataset", "description"],
                           [list(r.values()) for r in rows], align="lrrll"))
    return 0


def _print_decisions(space, as_json: bool) -> int:
    from nas.report.table import format_table

    if as_json:
        for k, d in enumerate(space.decisions):
            print(dumps({"index": k, "name": d.name, "options": list(d.options), "path": d.path,
                         "when": {n: sorted(allowed) for n, allowed in d.condition}}))
        return 0
    rows, by_name = [], {d.name: d for d in space.decisions}
    for k, d in enumerate(space.decisions):
        options = " | ".join(f"{i}={_option(o)}" for i, o in enumerate(d.options))
        when = ", ".join(f"{n} in {{{', '.join(_option(by_name[n].options[i]) for i in sorted(a))}}}"
                         for n, a in d.condition)
        rows.append([k, d.name, options, when])
    print(f"{space.name}: {space.size():,} architectures, {len(space.decisions)} decisions")
    print(format_table(["#", "decision", "options (index=value)", "active when"], rows, align="rlll"))
    return 0


def _option(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{k}:{v}" for k, v in value.items())
    return str(value)
