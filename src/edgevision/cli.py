"""Command line entry point: ``edgevision <command>``; each command lives in ``edgevision.commands``.

Bad input gets one line on stderr and exit code 2; no tracebacks for user errors.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .commands import COMMANDS
from .commands._common import UsageError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits 2; we want one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgevision", description="Hardware-aware efficient vision networks.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    for command in COMMANDS:
        command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from . import __version__

            print(__version__)
            return 0
        if args.command is None:
            parser.print_help()
            return 0
        return args.handler(args)
    except UsageError as error:
        print(f"edgevision: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
