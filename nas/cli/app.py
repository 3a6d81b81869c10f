"""The `nas` command line: one small function per command over the library.

Adding a command: a module nas/cli/NAME.py with `cmd_NAME(args) -> int` and `add_NAME(sub)` (which
creates the subparser and calls `set_defaults(run=cmd_NAME)`), then `add_NAME` appended to COMMANDS.
Commands that take architectures use `add_target_args` and `targets(args)` from nas.cli.common (see
nas.cli.targets for the forms a target takes).

Bad user input of any kind prints one line `nas: error: ...` and exits with 2; set NAS_DEBUG=1 to see
the traceback instead. Heavy modules (torch) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Callable

from nas.cli import bench, export, inspect, report, retrain, sample, search, spaces, train
from nas.cli.common import EXIT_USAGE, UsageError
from nas.report.table import printable


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, options without help text too; none where it says nothing."""

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        # None, a flag's False and an empty list say "not given", not a value worth showing
        return bool(action.option_strings) and action.nargs != 0 and default is not argparse.SUPPRESS \
            and default is not None and not isinstance(default, bool) and default != []

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower() or not self._shows_default(action):
            return text  # the help already says what happens by default (e.g. "default: the run's")
        return f"{text} (default: %(default)s)".lstrip()

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._shows_default(action):  # argparse prints no help line for help=None
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are the one line every other error is, and help shows every default."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)  # subcommand parsers are _Parser too
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"nas: error: {message} (see '{self.prog} --help')\n")


# The order of `nas --help`.
COMMANDS: list[Callable] = [spaces.add_spaces, sample.add_sample, inspect.add_inspect, export.add_export, train.add_train,
                            search.add_search, report.add_report, retrain.add_retrain, bench.add_bench]


def build_parser() -> argparse.ArgumentParser:
    from nas import __version__

    parser = _Parser(prog="nas", description="Neural architecture search for convolutional networks.")
    parser.add_argument("--version", action="version", version=f"nas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        text = f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    else:
        text = str(err) or type(err).__name__
    return printable(" ".join(text.split()))  # a hostile file name or reason must not drive the terminal


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (2 for bad input, with one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, argparse errors (already printed)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    try:
        return args.run(args) or 0
    except BrokenPipeError:  # `nas sample -n 1000 | head`: stop quietly
        _silence_stdout()
        return 0
    except KeyboardInterrupt:  # Ctrl-C before a command took over its signals (nas search does)
        print("nas: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError) as err:  # SpaceError, ArchError, NotInSpace, TargetError, JSON, files
        if os.environ.get("NAS_DEBUG"):
            raise
        try:
            sys.stdout.flush()  # what was printed before the error comes first
        except OSError:
            pass
        print(f"nas: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":
    sys.exit(main())
