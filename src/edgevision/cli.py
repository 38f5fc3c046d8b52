"""Command line entry point: ``edgevision <command>``; each command lives in ``edgevision.commands``.

Bad input gets one line on stderr and exit code 2; no tracebacks for user errors.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from typing import Sequence

from .commands import COMMANDS
from .commands._common import UsageError
from .validation import ValidationError

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits 2; we want one line
        # "argument --width: must be positive" (a type= validator's message) reads better as "--width must be positive"
        if message.startswith("argument ") and ": must " in message:
            option, rest = message[len("argument "):].split(": ", 1)
            message = f"{option} {rest}"
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
        _check_raw(sys.argv[1:] if argv is None else list(argv))
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
        return _fail(str(error))
    except ValidationError as error:  # a library boundary check (sizes, numbers, memory) a command did not wrap
        return _fail(str(error))
    except MemoryError:
        return _fail("out of memory; use a smaller model, input or batch")
    except sqlite3.Error as error:  # a latency table damaged below what LatencyTable checks on open
        return _fail(f"latency table error (SQLite says: {error}); give another --table or rebuild it")
    except OSError as error:  # a full disk, a vanished directory, permissions: the environment, not a bug
        return _fail(_os_error(error))


def _check_raw(argv: list[str]) -> None:
    """What argparse mishandles: a NUL byte (no OS path can hold one) and ``--opt=--`` (argparse drops the value)."""
    for text in argv:
        if "\x00" in text:
            raise UsageError(f"argument {text!r} contains a NUL byte; remove it")
        if text.startswith("--") and text.endswith("=--"):
            raise UsageError(f"{text.split('=', 1)[0]} needs a value, got '--'")


def _fail(message: str) -> int:
    """One line on stderr, exit code 2: a user or environment error, not a bug."""
    print(f"edgevision: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def _os_error(error: OSError) -> str:
    import errno

    where = f" ({error.filename!r})" if error.filename else ""
    if error.errno == errno.ENOSPC:
        return f"no space left on the device{where}; nothing was replaced; free some space or write elsewhere"
    text = error.strerror or str(error)
    return f"{text}{where}"


if __name__ == "__main__":
    sys.exit(main())
