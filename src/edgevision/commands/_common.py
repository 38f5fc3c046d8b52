"""What every command shares: the one-line user error, number formatting, a stderr console."""

from __future__ import annotations

__all__ = ["UsageError", "human", "stderr_console"]


class UsageError(Exception):
    """A user error: printed as one line on stderr, exit code 2, no traceback."""


def human(count: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(int(count))


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)
