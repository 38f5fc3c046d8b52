"""One wording for "these tensors do not fit": the checkpoint loader and the weight importer share it.

``mismatch_listing([("missing", keys), ("unexpected", keys), ...])`` ->
``"2 missing (a, b); 7 unexpected (c, d, e, f and 3 more)"``: each non-empty group with its count and
its first few entries, so an error line stays one line however many tensors are wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["mismatch_listing"]

SHOWN = 4  # entries named per group


def _entries(items: Sequence[str], shown: int) -> str:
    # an entry that itself holds ", " (a shape) is separated by "; " so the list stays readable
    separator = "; " if any(", " in item for item in items[:shown]) else ", "
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return separator.join(items[:shown]) + more


def mismatch_listing(groups: Iterable[tuple[str, Sequence[str]]], shown: int = SHOWN) -> str:
    """The non-empty ``(label, entries)`` groups as ``"N label (first entries[ and K more])"``, joined by "; "."""
    return "; ".join(f"{len(items)} {label} ({_entries(list(items), shown)})" for label, items in groups if items)
