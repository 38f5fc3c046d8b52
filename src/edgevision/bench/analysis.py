"""Pure analysis of benchmark rows: Pareto fronts, rank correlations, the best model within a budget.

A Pareto-optimal model is one that no other model beats on both axes: at least as accurate *and*
at least as cheap (latency or MACs), strictly better on one. Rank correlations (Spearman's rho and
Kendall's tau, ``scipy.stats``) say whether a cost proxy — MACs, bytes moved, the roofline bound —
orders the models as this machine's measured latency does.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

__all__ = ["Correlation", "Entry", "Repeatability", "RooflineCheck", "repeatability", "roofline_check", "best_within_budget", "entries_from_rows", "pareto_front", "rank_correlation", "PROXIES"]

#: cost proxies compared with measured latency: (Entry attribute, label)
PROXIES = (("macs", "MACs"), ("bytes", "bytes moved"), ("bound_ms", "roofline bound"))


@dataclass(frozen=True)
class Entry:
    """One model on one runtime: its costs, its published top-1 and its measured latency (ms)."""

    model: str
    runtime: str
    params: int
    macs: float
    flops: float
    bytes: float
    peak_activation_bytes: float | None
    bound_ms: float | None
    top1: float | None  # published ImageNet top-1 (%); None = unpublished
    median_ms: float
    ci_low_ms: float | None
    ci_high_ms: float | None
    p90_ms: float
    runs: int
    noisy: bool
    stop_reason: str
    contended: bool = False  # the machine was busy while measuring (latency.contention)

    @property
    def bound_violated(self) -> bool:
        """The roofline lower bound exceeds the measured median: a defect of the cost model, never of the run."""
        return self.bound_ms is not None and self.bound_ms > self.median_ms

    @property
    def tightness(self) -> float | None:
        """Measured / bound (>= 1 for a true bound; 1 = at the roofline)."""
        return self.median_ms / self.bound_ms if self.bound_ms else None

    @property
    def roofline_fraction(self) -> float | None:
        """Achieved fraction of the roofline: bound time / measured time (1.0 = at the roofline)."""
        return self.bound_ms / self.median_ms if self.bound_ms and self.median_ms > 0 else None

    def to_dict(self) -> dict:
        return {**asdict(self), "roofline_fraction": self.roofline_fraction, "bound_violated": self.bound_violated}


def entries_from_rows(rows: Iterable[dict]) -> list[Entry]:
    """Flatten ``results.jsonl`` rows into entries, ordered by model then runtime."""
    entries = []
    for row in rows:
        costs, result = row["costs"], row["result"]
        runtime = result["context"]["runtime"]
        # the bound of the kernels this runtime fuses (analysis.kernels); older rows: per aten operator
        bound_ms = (costs.get("bound_ms_by_runtime") or {}).get(runtime, costs.get("bound_ms"))
        if bound_ms is not None:
            bound_ms *= machine_state_factor(costs, result)
        entries.append(
            Entry(
                model=row["model"],
                runtime=runtime,
                params=costs["params"],
                macs=costs["macs"],
                flops=costs["flops"],
                bytes=costs["bytes"],
                peak_activation_bytes=costs.get("peak_activation_bytes"),
                bound_ms=bound_ms,
                top1=row.get("top1"),
                median_ms=result["median_ms"],
                ci_low_ms=result.get("ci_low_ms"),
                ci_high_ms=result.get("ci_high_ms"),
                p90_ms=result["p90_ms"],
                runs=result["runs"],
                noisy=result["noisy"],
                stop_reason=result["stop_reason"],
                contended=bool(result.get("contended", False)),
            )
        )
    return sorted(entries, key=lambda e: (e.model, e.runtime))


def machine_state_factor(costs: dict, result: dict) -> float:
    """min(1, reference network at measurement / at probe) for one stored row; 1.0 when either is unknown.

    The peaks were probed in one machine state and the network measured in another (analysis.roofline,
    ``DevicePeaks.bound_factor``); compared only at the same thread count, where the reference is the same work.
    """
    from ..analysis.roofline import measurement_reference_ms

    probe = costs.get("peaks_reference_ms")
    load = result.get("machine_load") or {}
    measured = measurement_reference_ms(load.get("reference_before_ms"), load.get("reference_after_ms"))
    if not probe or measured is None or costs.get("peaks_threads") != result.get("context", {}).get("threads"):
        return 1.0
    return min(1.0, measured / probe)


def pareto_front(points: Sequence[tuple[str, float, float | None]]) -> list[str]:
    """Names of the points (name, cost, accuracy) no other point dominates, cheapest first.

    Cost is minimized, accuracy maximized; points without an accuracy (unpublished) are left out.
    A point is dominated when another is no worse on both axes and strictly better on one.
    """
    known = [(name, cost, accuracy) for name, cost, accuracy in points if accuracy is not None and cost is not None]
    front = []
    for name, cost, accuracy in known:
        dominated = any(
            other_cost <= cost and other_accuracy >= accuracy and (other_cost < cost or other_accuracy > accuracy)
            for _, other_cost, other_accuracy in known
        )
        if not dominated:
            front.append((cost, -accuracy, name))
    return [name for _, _, name in sorted(front)]


@dataclass(frozen=True)
class Correlation:
    proxy: str
    n: int
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float


def rank_correlation(proxy: str, x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Spearman's rho and Kendall's tau (tau-b) between ``x`` and ``y``, with p-values; NaN below 3 points."""
    from scipy import stats

    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    if len(pairs) < 3:
        return Correlation(proxy, len(pairs), math.nan, math.nan, math.nan, math.nan)
    xs, ys = zip(*pairs)
    spearman = stats.spearmanr(xs, ys)
    kendall = stats.kendalltau(xs, ys)
    return Correlation(proxy, len(pairs), float(spearman.statistic), float(spearman.pvalue), float(kendall.statistic), float(kendall.pvalue))


def proxy_correlations(entries: Sequence[Entry]) -> list[Correlation]:
    """For one runtime's entries: each cost proxy against measured median latency."""
    latency = [e.median_ms for e in entries]
    return [rank_correlation(label, [getattr(e, attribute) for e in entries], latency) for attribute, label in PROXIES]


@dataclass(frozen=True)
class RooflineCheck:
    """Is the roofline a lower bound on one runtime's measurements, and how tight is it?"""

    runtime: str
    bounded: int  # entries with a bound
    violations: tuple[str, ...]  # models whose bound exceeds the measured median (cost-model defects)
    median_tightness: float | None  # median of measured / bound

    def to_dict(self) -> dict:
        return {**asdict(self), "violations": list(self.violations)}


def roofline_check(entries: Sequence[Entry]) -> list[RooflineCheck]:
    """Per runtime: the bound violations and the median tightness."""
    from statistics import median

    checks = []
    for runtime, group in by_runtime(entries).items():
        ratios = [e.tightness for e in group if e.tightness is not None]
        checks.append(
            RooflineCheck(
                runtime=runtime,
                bounded=len(ratios),
                violations=tuple(e.model for e in group if e.bound_violated),
                median_tightness=median(ratios) if ratios else None,
            )
        )
    return checks


@dataclass(frozen=True)
class Repeatability:
    """Same networks measured in two passes: how often do they agree?"""

    runtime: str
    pairs: int
    within_5_percent: float  # share of networks whose two medians differ by <= 5%
    median_difference: float  # median |second / first - 1|


def repeatability(first: Iterable[Entry], second: Iterable[Entry]) -> list[Repeatability]:
    """Per runtime, from the entries of two passes over the same (model, runtime) pairs."""
    from statistics import median

    again = {(e.model, e.runtime): e.median_ms for e in second}
    result = []
    for runtime, group in by_runtime(first).items():
        ratios = [again[(e.model, runtime)] / e.median_ms - 1 for e in group if (e.model, runtime) in again and e.median_ms > 0]
        if ratios:
            result.append(Repeatability(runtime, len(ratios), sum(abs(r) <= 0.05 for r in ratios) / len(ratios), median(abs(r) for r in ratios)))
    return result


def best_within_budget(entries: Sequence[Entry], budget_ms: float) -> Entry | None:
    """The most accurate published model whose median latency is within ``budget_ms`` (ties: the faster)."""
    fitting = [e for e in entries if e.top1 is not None and e.median_ms <= budget_ms]
    return max(fitting, key=lambda e: (e.top1, -e.median_ms), default=None)


def by_runtime(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.runtime, []).append(entry)
    return groups


@dataclass(frozen=True)
class RuntimeFindings:
    """The analysis of one runtime: fronts, the models only MACs calls optimal, correlations, budget pick."""

    runtime: str
    entries: tuple[Entry, ...]
    latency_front: tuple[str, ...]
    macs_front: tuple[str, ...]
    correlations: tuple[Correlation, ...]
    best_in_budget: Entry | None

    @property
    def macs_only_optimal(self) -> tuple[str, ...]:
        """Pareto-optimal by MACs but not by measured latency: where MACs misleads on this machine."""
        return tuple(name for name in self.macs_front if name not in self.latency_front)


def findings(entries: Sequence[Entry], budget_ms: float | None = None) -> list[RuntimeFindings]:
    result = []
    for runtime, group in by_runtime(entries).items():
        result.append(
            RuntimeFindings(
                runtime=runtime,
                entries=tuple(group),
                latency_front=tuple(pareto_front([(e.model, e.median_ms, e.top1) for e in group])),
                macs_front=tuple(pareto_front([(e.model, e.macs, e.top1) for e in group])),
                correlations=tuple(proxy_correlations(group)),
                best_in_budget=best_within_budget(group, budget_ms) if budget_ms is not None else None,
            )
        )
    return result
