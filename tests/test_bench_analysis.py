"""Pure analysis of benchmark results on known data: Pareto fronts, rank correlations, budget picks."""

import math

import pytest
from bench_helpers import make_row

from edgevision.bench import best_within_budget, entries_from_rows, pareto_front, rank_correlation
from edgevision.bench.analysis import findings


def test_pareto_front_keeps_only_undominated_points_cheapest_first():
    points = [
        ("a", 1.0, 60.0),  # cheapest
        ("b", 2.0, 70.0),
        ("c", 3.0, 65.0),  # dominated by b (slower and less accurate)
        ("d", 4.0, 75.0),
        ("e", 4.0, 74.0),  # dominated by d (same cost, less accurate)
        ("f", 0.5, None),  # unpublished: left out
        ("g", 2.0, 70.0),  # ties b exactly: neither dominates the other
    ]
    assert pareto_front(points) == ["a", "b", "g", "d"]


def test_pareto_front_edge_cases():
    assert pareto_front([]) == []
    assert pareto_front([("x", 1.0, None)]) == []
    assert pareto_front([("x", 1.0, 50.0)]) == ["x"]
    # a model both faster and more accurate than all others is the whole front
    assert pareto_front([("a", 2.0, 60.0), ("b", 1.0, 80.0), ("c", 3.0, 70.0)]) == ["b"]


def test_rank_correlation_on_known_data():
    perfect = rank_correlation("MACs", [1, 2, 3, 4], [10, 20, 30, 40])
    assert perfect.spearman == pytest.approx(1.0) and perfect.kendall == pytest.approx(1.0) and perfect.n == 4
    reversed_ = rank_correlation("MACs", [1, 2, 3, 4], [4, 3, 2, 1])
    assert reversed_.spearman == pytest.approx(-1.0) and reversed_.kendall == pytest.approx(-1.0)
    # one swapped pair: rho = 1 - 6*2/(4*15) = 0.8; tau = (5 - 1)/6
    swapped = rank_correlation("MACs", [1, 2, 3, 4], [1, 3, 2, 4])
    assert swapped.spearman == pytest.approx(0.8) and swapped.kendall == pytest.approx(4 / 6)
    assert 0 < swapped.spearman_p < 1 and 0 < swapped.kendall_p < 1


def test_rank_correlation_needs_three_points_and_skips_missing():
    assert math.isnan(rank_correlation("MACs", [1, 2], [1, 2]).spearman)
    partial = rank_correlation("roofline bound", [1, None, 3, 4], [1, 2, 3, 4])
    assert partial.n == 3 and partial.spearman == pytest.approx(1.0)


def test_entries_budget_and_macs_only_optimal():
    rows = [
        make_row("small", "ort", 1.0, 50e6, 60.0),
        make_row("mid", "ort", 3.0, 40e6, 70.0),  # fewest MACs of the accurate ones, but slow on this 'machine'
        make_row("fast", "ort", 2.0, 100e6, 72.0, noisy=True),
        make_row("big", "ort", 10.0, 400e6, 78.0),
        make_row("mystery", "ort", 0.5, 10e6, None),  # unpublished
    ]
    entries = entries_from_rows(rows)
    assert [e.model for e in entries] == ["big", "fast", "mid", "mystery", "small"]
    assert entries[1].noisy and entries[1].roofline_fraction == pytest.approx(1.0 / 2.0)
    assert best_within_budget(entries, 2.5).model == "fast"
    assert best_within_budget(entries, 1.5).model == "small"
    assert best_within_budget(entries, 0.6) is None  # only the unpublished model fits
    (ort,) = findings(entries, budget_ms=2.5)
    assert ort.latency_front == ("small", "fast", "big")
    assert ort.macs_front == ("mid", "fast", "big")
    assert ort.macs_only_optimal == ("mid",)
    assert [c.proxy for c in ort.correlations] == ["MACs", "bytes moved", "roofline bound"]
    assert ort.best_in_budget.model == "fast"
