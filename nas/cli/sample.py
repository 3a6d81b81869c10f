"""`nas sample`: uniformly random architectures of a space, one JSON per line."""

from __future__ import annotations

import argparse

from nas.cli.common import add_io_args, parse_number, positive_int
from nas.jsonio import recode


def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="sample architectures uniformly from a space (one JSON per line)",
                       description="Uniformly random architectures of SPACE (a built-in name or a .yaml file), "
                                   "one Arch JSON per line; the same seed gives the same lines.")
    p.add_argument("space", metavar="SPACE")
    p.add_argument("-n", type=positive_int, default=1, help="how many")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--max-macs", type=parse_number, metavar="M", help="at most this many multiply-adds (2e8, 300M)")
    p.add_argument("--max-params", type=parse_number, metavar="P", help="at most this many parameters (1.5M)")
    add_io_args(p)
    p.set_defaults(run=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from nas.space.search_space import load_space

    space = load_space(args.space)
    if args.input or args.classes:
        space = space.with_io(args.input, args.classes)
    rng = np.random.default_rng(args.seed)
    for _ in range(args.n):
        print(recode(space.sample(rng, args.max_macs, args.max_params).to_json()))
    return 0
