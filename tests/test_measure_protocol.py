"""The warm-up and stop rule on a deterministic fake clock: no real timing, no timing assertions."""

from __future__ import annotations

import itertools

import pytest

from edgevision.latency import LatencyResult, MeasurementContext, MeasurementPlan, collect_samples, summarize


class FakeClock:
    """A clock that only moves when the fake model runs: each call takes the next scripted latency."""

    def __init__(self, latencies_s):
        self.now = 100.0
        self.latencies = iter(latencies_s)
        self.calls = 0

    def __call__(self) -> float:
        return self.now

    def run(self) -> None:
        self.now += next(self.latencies)
        self.calls += 1


def jittered(base: float, spread: float, period: int = 7):
    """Deterministic latencies base * (1 ± spread) cycling through ``period`` evenly spaced values."""
    steps = [base * (1 + spread * (2 * i / (period - 1) - 1)) for i in range(period)]
    return itertools.cycle(steps)


def test_stable_model_converges_quickly_and_reports_what_it_saw():
    clock = FakeClock(jittered(0.010, 0.01))  # 10 ms ± 1%: the CI is within 2% almost at once
    samples = collect_samples(clock.run, MeasurementPlan(time_budget_s=60), clock)
    assert samples.stop_reason == "converged" and not samples.noisy
    assert samples.warmup_settled and samples.warmup_runs == 10  # two windows of 5 agree
    assert MeasurementPlan().min_runs <= len(samples.latencies_s) < 30
    assert clock.calls == samples.warmup_runs + len(samples.latencies_s)
    assert summarize(samples.latencies_s).median_ms == pytest.approx(10.0, rel=0.011)


def test_warm_up_waits_for_timings_to_settle():
    # a cold start: 20 slow calls (caches, allocator, JIT) before the steady 10 ms
    clock = FakeClock(itertools.chain([0.050 - 0.002 * i for i in range(20)], jittered(0.010, 0.01)))
    samples = collect_samples(clock.run, MeasurementPlan(time_budget_s=60), clock)
    assert samples.warmup_settled
    assert samples.warmup_runs >= 20  # none of the cold calls is in the measurement
    assert max(samples.latencies_s) < 0.0102


def test_noisy_model_stops_at_the_budget_and_is_flagged():
    # ±60% jitter: the median's CI cannot shrink to 2% in a 1 s budget of ~100 calls
    clock = FakeClock(jittered(0.010, 0.6, period=11))
    plan = MeasurementPlan(time_budget_s=1.0)
    samples = collect_samples(clock.run, plan, clock)
    assert samples.stop_reason == "time budget" and samples.noisy
    assert samples.elapsed_s == pytest.approx(1.0, abs=0.02)  # the budget includes warm-up
    assert summarize(samples.latencies_s).relative_half_width > plan.target_precision


def test_same_noise_with_a_bigger_budget_converges():
    clock = FakeClock(jittered(0.010, 0.6, period=11))
    samples = collect_samples(clock.run, MeasurementPlan(time_budget_s=1000.0), clock)
    assert samples.stop_reason == "converged"
    assert summarize(samples.latencies_s).relative_half_width <= 0.02


def test_max_runs_stops_and_flags():
    clock = FakeClock(jittered(0.010, 0.6, period=11))
    samples = collect_samples(clock.run, MeasurementPlan(time_budget_s=1000.0, max_runs=20), clock)
    assert samples.stop_reason == "max runs" and samples.noisy and len(samples.latencies_s) == 20


def test_warm_up_gives_up_within_its_share_of_the_budget():
    clock = FakeClock(itertools.count(start=1))  # never settles: 1 s, 2 s, 3 s, ...
    samples = collect_samples(clock.run, MeasurementPlan(time_budget_s=100.0, min_runs=6), clock)
    assert not samples.warmup_settled
    assert samples.warmup_runs == 10  # the first window check after 25 s (25% of 100 s) ends warm-up
    assert samples.noisy


def test_at_least_min_runs_even_past_the_budget():
    clock = FakeClock(itertools.repeat(1.0))
    samples = collect_samples(clock.run, MeasurementPlan(time_budget_s=2.0, min_runs=8, warmup_window=1), clock)
    assert len(samples.latencies_s) == 8


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("target_precision", 0.0, "target_precision must be in"),
        ("time_budget_s", -1.0, "time_budget_s must be positive"),
        ("min_runs", 3, "needs 6 <= min_runs"),
        ("warmup_window", 0, "warmup_window must be >= 1"),
    ],
)
def test_plan_validation_names_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        MeasurementPlan(**{field: value})


def _context(**overrides) -> MeasurementContext:
    values = dict(
        model="m", model_form="deploy", runtime="ort", runtime_versions={"onnxruntime": "1"}, runtime_options={},
        threads=2, dtype="float32", input_shape=(4, 3, 64, 64), date="2026-01-01T00:00:00+00:00", cpu_model="cpu",
        logical_cpus=2, physical_cores=2, system="Linux", fingerprint="abc",
    )
    return MeasurementContext(**{**values, **overrides})


def test_result_throughput_summary_and_json_round_trip():
    summary = summarize([0.020] * 5 + [0.021] * 5)
    result = LatencyResult.from_summary(
        summary, context=_context(), warmup_runs=5, peak_memory_bytes=None, peak_memory_kind=None,
        stop_reason="converged", noisy=False, target_precision=0.02,
    )
    assert result.throughput == pytest.approx(4 / (summary.median_ms / 1e3))  # batch 4 images per call
    assert result.summary().startswith(f"{summary.median_ms:.3g} ms (95% CI")
    data = result.to_dict()
    assert data["context"]["input_shape"] == [4, 3, 64, 64] and data["context"]["fingerprint"] == "abc"
    assert LatencyResult.from_dict(data) == result


def test_noisy_result_says_so_and_json_has_no_nan():
    import json

    summary = summarize([0.01, 0.02, 0.03])  # too few runs for a CI
    result = LatencyResult.from_summary(
        summary, context=_context(), warmup_runs=5, peak_memory_bytes=None, peak_memory_kind=None,
        stop_reason="time budget", noisy=True, target_precision=0.02,
    )
    assert result.summary().startswith("noisy:") and "time budget ran out" in result.summary()
    text = result.to_json()
    assert "NaN" not in text and json.loads(text)["ci_low_ms"] is None
