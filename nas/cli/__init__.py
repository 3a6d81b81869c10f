"""The `nas` command line: one module per command, nas.cli.app parses and dispatches (entry point `nas.cli:main`)."""

from nas.cli.app import build_parser, main
from nas.cli.common import UsageError, parse_number

__all__ = ["UsageError", "build_parser", "main", "parse_number"]
