"""Errors a user can fix: each message names the problem and the fix (the CLI prints it as one line)."""

from __future__ import annotations

__all__ = ["MeasurementError", "RuntimeNotAvailable", "first_line"]


class MeasurementError(ValueError):
    """Bad input to a measurement: unknown runtime, a shape the model cannot take, an unreadable file."""


class RuntimeNotAvailable(MeasurementError):
    """The runtime's package (or device) is missing; the message says what to install."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (library errors run to pages), or its type name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
