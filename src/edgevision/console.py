"""Human-facing output the library and the CLI share: compact counts and a stderr console.

Library modules (reports, the training loop's progress bar) use these too, so they live here and
not in ``commands/``: a library module never imports the CLI layer.
"""

from __future__ import annotations

__all__ = ["human", "stderr_console"]


def human(count: float) -> str:
    """1234567 -> '1.23M' (G, M, K; plain integer below a thousand)."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(int(count))


def stderr_console():
    """A rich console on stderr: progress and tables never mix with JSON on stdout."""
    from rich.console import Console

    return Console(stderr=True)
