"""``edgevision bench``: which efficient network is best on *this* machine (issue 5).

:mod:`edgevision.results` keeps finished measurements in a resumable JSONL file, :mod:`.selection`
picks the models (patterns, the ``efficient`` set), :mod:`.run` measures the
zoo (cost model + latency per runtime), :mod:`.analysis` holds the pure functions (Pareto fronts,
rank correlations, best model within a budget) and :mod:`.report` writes CSV, Markdown, HTML and
PNG plots. Every number in a report comes from ``results.jsonl``.
"""

from .analysis import Entry, best_within_budget, entries_from_rows, pareto_front, rank_correlation
from .report import write_report
from .run import BenchConfig, run_bench
from .selection import efficient_models, select_models
from ..results import MixedResultsError, ResultStore

__all__ = [
    "BenchConfig",
    "Entry",
    "MixedResultsError",
    "ResultStore",
    "best_within_budget",
    "entries_from_rows",
    "pareto_front",
    "rank_correlation",
    "run_bench",
    "efficient_models",
    "select_models",
    "write_report",
]
