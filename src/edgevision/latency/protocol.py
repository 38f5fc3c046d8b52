"""The measurement protocol: warm up until timings settle, then repeat until the median is precise.

1. **Warm-up.** Run in windows of ``warmup_window`` calls until the medians of two consecutive
   windows agree within ``warmup_tolerance`` (caches, allocator pools, JIT and thread pools have
   settled), or until ``max_warmup_fraction`` of the time budget is spent.
2. **Measure.** Time every call on its own. After at least ``min_runs``, stop as soon as the 95%
   confidence interval of the median is within ``target_precision`` of the median ("converged").
   If the time budget or ``max_runs`` runs out first, the result is flagged *noisy*: the numbers
   are reported, but not as precise ones.

The clock is injected (``time.perf_counter`` by default), so the stop rule is tested on a fake
clock, deterministically, with no timing assertions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from statistics import median
from typing import Callable

from .statistics import median_confidence_interval, relative_half_width

__all__ = ["MeasurementPlan", "Samples", "collect_samples"]

Clock = Callable[[], float]


@dataclass(frozen=True)
class MeasurementPlan:
    """How long and how precisely to measure; defaults suit a model of 1-100 ms per call."""

    target_precision: float = 0.02  # CI half-width / median at which we stop
    time_budget_s: float = 20.0  # warm-up plus measurement
    min_runs: int = 10
    max_runs: int = 5000
    warmup_window: int = 5
    warmup_tolerance: float = 0.05
    max_warmup_fraction: float = 0.25
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 0 < self.target_precision < 1:
            raise ValueError(f"MeasurementPlan.target_precision must be in (0, 1), got {self.target_precision}")
        if self.time_budget_s <= 0:
            raise ValueError(f"MeasurementPlan.time_budget_s must be positive, got {self.time_budget_s}")
        if not 6 <= self.min_runs <= self.max_runs:
            raise ValueError(
                f"MeasurementPlan needs 6 <= min_runs <= max_runs (a 95% CI of the median needs 6 runs), "
                f"got min_runs={self.min_runs}, max_runs={self.max_runs}"
            )
        if self.warmup_window < 1:
            raise ValueError(f"MeasurementPlan.warmup_window must be >= 1, got {self.warmup_window}")
        if not 0 <= self.max_warmup_fraction < 1:
            raise ValueError(f"MeasurementPlan.max_warmup_fraction must be in [0, 1), got {self.max_warmup_fraction}")


@dataclass(frozen=True)
class Samples:
    """What the protocol collected: per-call latencies in seconds and why it stopped."""

    latencies_s: tuple[float, ...]
    warmup_runs: int
    warmup_settled: bool
    stop_reason: str  # "converged" | "time budget" | "max runs"
    elapsed_s: float

    @property
    def noisy(self) -> bool:
        """True when the target precision was not reached: the median is less certain than asked."""
        return self.stop_reason != "converged"


def _warm_up(call: Callable[[], object], clock: Clock, plan: MeasurementPlan, start: float) -> tuple[int, bool]:
    deadline = start + plan.time_budget_s * plan.max_warmup_fraction
    previous: float | None = None
    runs = 0
    while True:
        window = []
        for _ in range(plan.warmup_window):
            begin = clock()
            call()
            window.append(clock() - begin)
        runs += len(window)
        current = median(window)
        if previous is not None and abs(current - previous) <= plan.warmup_tolerance * max(previous, 1e-12):
            return runs, True
        if clock() >= deadline:
            return runs, False
        previous = current


def collect_samples(call: Callable[[], object], plan: MeasurementPlan | None = None, clock: Clock = time.perf_counter) -> Samples:
    """Warm ``call`` up, then time it until the median's CI is tight enough or the budget runs out.

    ``call`` must block until its work is finished (adapters synchronize devices inside it).
    """
    plan = plan or MeasurementPlan()
    start = clock()
    warmup_runs, settled = _warm_up(call, clock, plan, start)
    deadline = start + plan.time_budget_s
    latencies: list[float] = []
    next_check = plan.min_runs
    stop_reason = "max runs"
    while len(latencies) < plan.max_runs:
        begin = clock()
        call()
        end = clock()
        latencies.append(end - begin)
        if len(latencies) >= next_check:
            # the CI costs a little; check on a geometric schedule (every ~5% more runs)
            next_check = max(len(latencies) + 1, int(len(latencies) * 1.05))
            low, high = median_confidence_interval(latencies, plan.confidence)
            if relative_half_width(median(latencies), low, high) <= plan.target_precision:
                stop_reason = "converged"
                break
        if end >= deadline and len(latencies) >= plan.min_runs:
            stop_reason = "time budget"
            break
    return Samples(
        latencies_s=tuple(latencies),
        warmup_runs=warmup_runs,
        warmup_settled=settled,
        stop_reason=stop_reason,
        elapsed_s=clock() - start,
    )
