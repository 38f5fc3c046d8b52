"""Moved to :mod:`edgevision.results` (latency tables and validation use the store too, not only bench)."""

from ..results import MixedResultsError, ResultStore, row_key

__all__ = ["MixedResultsError", "ResultStore", "row_key"]
