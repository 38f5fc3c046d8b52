"""Latency statistics: percentiles, IQR and the distribution-free CI of the median, on known samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from edgevision.latency.statistics import median_confidence_interval, relative_half_width, summarize


def test_summary_of_known_samples():
    samples_s = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    stats = summarize(samples_s)
    assert stats.runs == 100
    assert stats.median_ms == pytest.approx(50.5)
    assert stats.mean_ms == pytest.approx(50.5)
    assert stats.min_ms == pytest.approx(1.0)
    assert stats.p10_ms == pytest.approx(10.9)  # numpy's linear interpolation
    assert stats.p90_ms == pytest.approx(90.1)
    assert stats.p99_ms == pytest.approx(99.01)
    assert stats.iqr_ms == pytest.approx(49.5)
    assert stats.ci_low_ms < stats.median_ms < stats.ci_high_ms


def test_median_ci_is_the_sign_test_interval():
    # for n = 100 the textbook 95% interval is the 40th..61st order statistics (1-based)
    samples = list(range(1, 101))
    low, high = median_confidence_interval(samples)
    assert (low, high) == (40, 61)
    coverage = binom.cdf(60, 100, 0.5) - binom.cdf(39, 100, 0.5)
    assert coverage >= 0.95


def test_median_ci_covers_the_true_median_at_the_stated_rate():
    rng = np.random.default_rng(0)
    true_median = math.log(2)  # exponential(1): skewed, like latency
    trials = 400
    covered = sum(lo <= true_median <= hi for lo, hi in (median_confidence_interval(rng.exponential(size=30)) for _ in range(trials)))
    assert covered / trials >= 0.93  # 95% nominal; the sign-test interval is conservative


def test_ci_is_undefined_with_too_few_runs():
    low, high = median_confidence_interval([1.0, 2.0, 3.0])
    assert math.isnan(low) and math.isnan(high)
    assert relative_half_width(2.0, low, high) == math.inf
    assert summarize([0.001] * 3).relative_half_width == math.inf


def test_relative_half_width_takes_the_wider_side():
    assert relative_half_width(10.0, 9.0, 10.5) == pytest.approx(0.1)
    assert relative_half_width(10.0, 9.9, 11.0) == pytest.approx(0.1)


def test_summarize_rejects_no_samples():
    with pytest.raises(ValueError, match="at least one latency sample"):
        summarize([])
