"""`nas search`: a new search from its flags, or --resume of a run folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nas.cli.common import UsageError, fraction, parse_number, positive_float, positive_int


def add_search(sub) -> None:
    from nas.controllers import CONTROLLERS

    p = sub.add_parser("search", help="search a space: children trained as Ray Tune trials under a budget",
                       description="Search SPACE with a controller; every child is a Ray Tune trial; results go to a "
                                   "run folder that nas report and nas export read. --resume DIR continues a run.")
    p.add_argument("--space", help="built-in space name or .yaml path")
    p.add_argument("--controller", default="evolution", help=f"one of {', '.join(sorted(CONTROLLERS))} (default evolution)")
    p.add_argument("--dataset", help="data set (default: the space's, else cifar10)")
    p.add_argument("--data-dir")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--budget-gpu-hours", type=positive_float, metavar="H", help="device-hours (a CPU trial counts one device)")
    budget.add_argument("--budget-trials", type=positive_int, metavar="N", help="number of children")
    p.add_argument("--objectives", default="accuracy,macs", help="comma-separated: accuracy, macs, params")
    p.add_argument("--max-macs", type=parse_number, metavar="M")
    p.add_argument("--max-params", type=parse_number, metavar="P")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--train-fraction", type=fraction, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=None, help="fractional GPUs share one GPU (default 1 if any GPU, else 0)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--scheduler", choices=("asha",), help="multi-fidelity early stopping by Pareto rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-dir", help="default runs/<date>-<space>-<controller>")
    p.add_argument("--resume", metavar="DIR",
                   help="continue the run in DIR (its settings come from it; --budget-* raise its limits)")
    p.add_argument("--on-interrupt", choices=("stop", "finish"), default="stop",
                   help="on SIGINT/SIGTERM, stop the running children or let them finish (a second signal stops "
                        "them); either way no new child starts (default stop)")
    p.add_argument("--ray-address", help="auto or host:port of an existing Ray cluster (default: a private local Ray)")
    p.add_argument("--max-failures-in-a-row", type=int, default=20, metavar="N",
                   help="stop starting children after N failures in a row (default 20; 0 never stops)")
    p.add_argument("--controller-option", action="append", default=[], metavar="KEY=VALUE",
                   help="controller setting, e.g. population=20 (repeatable)")
    p.set_defaults(run=cmd_search)
    for action in p._actions:
        if action.dest != "help":
            _remember_given(action)
    plain_help = p.format_help
    # Listing the controllers' options imports every controller: done only when this help is printed.
    p.format_help = lambda: f"{plain_help()}\n{controller_options_help()}\n"


def controller_options_help() -> str:
    """Each controller's --controller-option names, types and defaults."""
    import inspect

    from nas.controllers import CONTROLLERS
    from nas.controllers.base import SEARCH_WIDE_OPTIONS, controller_options

    lines = ["controller options (--controller-option KEY=VALUE):"]
    for name in sorted(CONTROLLERS):
        own = {k: v for k, v in controller_options(name).items() if k not in SEARCH_WIDE_OPTIONS}
        shown = [f"{k}: {getattr(t, '__name__', None) or str(t).replace('typing.', '')}"
                 + ("" if d is inspect.Parameter.empty else f" = {d!r}") for k, (t, d) in own.items()]
        lines.append(f"  {name}: {', '.join(shown) or 'none'}")
    return "\n".join(lines)


# What a resume may change; every other flag belongs to the run (its settings, saved in the store).
RESUME_MAY_CHANGE = {"resume", "budget_gpu_hours", "budget_trials", "ray_address", "on_interrupt", "run", "command"}


def _controller_options(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"--controller-option needs KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def cmd_search(args: argparse.Namespace) -> int:
    from nas.search.run import Interrupted

    try:
        return _search(args)
    except Interrupted as stop:
        print(stop, file=sys.stderr)
        return 130


def _fixed_flags(args: argparse.Namespace) -> list[str]:
    """The flags given that a resume cannot change (the run's own settings)."""
    return [f"--{dest.replace('_', '-')}" for dest in sorted(getattr(args, "given_flags", ())) if dest not in RESUME_MAY_CHANGE]


def _remember_given(action: argparse.Action) -> None:
    """Make the action note its dest in args.given_flags when its flag is given (a value equal to the default included)."""
    base = type(action)

    class Given(base):
        def __call__(self, parser, namespace, values, option_string=None):
            namespace.given_flags = getattr(namespace, "given_flags", frozenset()) | {self.dest}
            super().__call__(parser, namespace, values, option_string)

    action.__class__ = Given


def _search(args: argparse.Namespace) -> int:
    from nas.search.run import run_search
    from nas.search.settings import SearchSettings, default_run_dir
    from nas.space.search_space import load_space

    if args.resume:
        fixed = _fixed_flags(args)
        if fixed:
            raise UsageError(f"{', '.join(fixed)} cannot change on --resume (the run keeps its settings; "
                             "only --budget-gpu-hours, --budget-trials and --ray-address may be given)")
        run_dir = run_search_resume(args.resume, args.ray_address, args.budget_trials, args.budget_gpu_hours,
                                    args.on_interrupt)
    else:
        if not args.space:
            raise UsageError("give --space SPACE (or --resume DIR)")
        space = load_space(args.space)
        gpus = args.gpus_per_trial
        if gpus is None:
            import torch

            gpus = 1.0 if torch.cuda.is_available() else 0.0
        settings = SearchSettings(
            space=args.space, controller=args.controller, dataset=args.dataset or space.spec.dataset,
            budget_gpu_hours=args.budget_gpu_hours, budget_trials=args.budget_trials,
            objectives=tuple(o.strip() for o in args.objectives.split(",") if o.strip()),
            max_macs=args.max_macs, max_params=args.max_params, epochs=args.epochs, batch_size=args.batch_size,
            lr=args.lr, train_fraction=args.train_fraction, gpus_per_trial=gpus, cpus_per_trial=args.cpus_per_trial,
            seed=args.seed, run_dir=str(args.run_dir or default_run_dir(args.space, args.controller)),
            ray_address=args.ray_address, scheduler=args.scheduler, data_dir=args.data_dir,
            controller_options=_controller_options(args.controller_option),
            max_failures_in_a_row=args.max_failures_in_a_row)
        run_dir = run_search(settings, on_interrupt=args.on_interrupt)  # checks every input before it creates the run folder
    print(run_dir)
    return 0


def run_search_resume(run_dir: str, ray_address: str | None, budget_trials: int | None = None,
                      budget_gpu_hours: float | None = None, on_interrupt: str = "stop") -> Path:
    from dataclasses import replace

    from nas.search.run import run_search
    from nas.search.settings import SearchSettings
    from nas.store.run_store import RunStore

    store = RunStore(run_dir, readonly=True)
    try:
        settings = SearchSettings.from_dict(store.settings()["search"])
    finally:
        store.close()
    settings = replace(settings, run_dir=str(Path(run_dir)), ray_address=ray_address or settings.ray_address)
    for flag, new, old in (("--budget-trials", budget_trials, settings.budget_trials),
                           ("--budget-gpu-hours", budget_gpu_hours, settings.budget_gpu_hours)):
        if new is not None and old is not None and new < old:
            raise UsageError(f"{flag} {new} is below the run's {old}: a resume can only raise a limit")
    if budget_trials is not None:
        settings = replace(settings, budget_trials=budget_trials)
    if budget_gpu_hours is not None:
        settings = replace(settings, budget_gpu_hours=budget_gpu_hours)
    return run_search(settings, resume=True, on_interrupt=on_interrupt)
