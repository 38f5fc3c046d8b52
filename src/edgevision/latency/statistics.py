"""Summary statistics of latency samples: percentiles, IQR and a distribution-free CI of the median.

Latency distributions are skewed (a long right tail from interrupts, page faults and frequency
changes), so the median is the headline number and its confidence interval comes from order
statistics (the binomial / sign-test interval, via ``scipy.stats.quantile_test``), which assumes
nothing about the shape of the distribution. Pure functions: samples in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["LatencySummary", "median_confidence_interval", "relative_half_width", "summarize"]


@dataclass(frozen=True)
class LatencySummary:
    """Statistics of per-run latencies, all in milliseconds."""

    median_ms: float
    mean_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    p99_ms: float
    iqr_ms: float
    ci_low_ms: float  # 95% confidence interval of the median; NaN with fewer than 6 runs
    ci_high_ms: float
    runs: int

    @property
    def relative_half_width(self) -> float:
        """The larger side of the median's CI as a fraction of the median (inf when undefined)."""
        return relative_half_width(self.median_ms, self.ci_low_ms, self.ci_high_ms)


def median_confidence_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median; (nan, nan) when too few samples.

    The bounds are order statistics chosen so that the true median lies between them with at
    least ``confidence`` probability whatever the distribution (sign test; at 95% it needs 6 samples).
    """
    from scipy.stats import quantile_test

    values = np.asarray(samples, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    interval = quantile_test(values, q=float(np.median(values)), p=0.5).confidence_interval(confidence)
    return float(interval.low), float(interval.high)


def relative_half_width(median: float, low: float, high: float) -> float:
    """max(median - low, high - median) / median: the precision the stop rule compares with its target."""
    if not (math.isfinite(low) and math.isfinite(high)) or median <= 0:
        return math.inf
    return max(median - low, high - median) / median


def summarize(samples_s: Sequence[float], confidence: float = 0.95) -> LatencySummary:
    """Statistics of per-run latencies given in seconds, reported in milliseconds."""
    from scipy.stats import iqr

    if len(samples_s) == 0:
        raise ValueError("summarize() needs at least one latency sample, got none")
    ms = np.asarray(samples_s, dtype=float) * 1e3
    p10, median, p90, p99 = np.percentile(ms, [10, 50, 90, 99])
    low, high = median_confidence_interval(ms, confidence)
    return LatencySummary(
        median_ms=float(median),
        mean_ms=float(ms.mean()),
        min_ms=float(ms.min()),
        p10_ms=float(p10),
        p90_ms=float(p90),
        p99_ms=float(p99),
        iqr_ms=float(iqr(ms)),
        ci_low_ms=low,
        ci_high_ms=high,
        runs=int(ms.size),
    )
