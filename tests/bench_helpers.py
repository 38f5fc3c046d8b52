"""Shared by tests/test_bench_*.py: synthetic results.jsonl rows and a deterministic clock."""

from __future__ import annotations

import itertools

from edgevision.machine import machine_info


def ticking_clock(step_s: float = 0.004):
    """Every reading is ``step_s`` later: each timed call 'takes' step_s, so measure() converges at min_runs."""
    counter = itertools.count()
    return lambda: next(counter) * step_s


def make_row(model: str, runtime: str, median_ms: float, macs: float, top1: float | None, *, noisy: bool = False,
             fingerprint: str | None = None, versions: dict | None = None, bytes_moved: float | None = None) -> dict:
    """A results.jsonl row as run_bench writes it, with made-up numbers."""
    machine = machine_info()
    return {
        "model": model,
        "top1": top1,
        "citation": "test",
        "costs": {"params": 1_000_000, "macs": macs, "flops": 2 * macs, "bytes": bytes_moved if bytes_moved is not None else 10 * macs,
                  "peak_activation_bytes": 100_000, "bound_ms": macs / 1e8, "bound_by": "memory"},
        "result": {
            "median_ms": median_ms, "mean_ms": median_ms, "min_ms": median_ms * 0.9, "p10_ms": median_ms * 0.95,
            "p90_ms": median_ms * 1.1, "p99_ms": median_ms * 1.2, "iqr_ms": 0.1, "ci_low_ms": median_ms * 0.98,
            "ci_high_ms": median_ms * 1.02, "runs": 50, "warmup_runs": 10, "throughput": 1e3 / median_ms,
            "peak_memory_bytes": None, "peak_memory_kind": None, "stop_reason": "time budget" if noisy else "converged",
            "noisy": noisy, "target_precision": 0.02,
            "context": {
                "model": model, "model_form": "deploy", "runtime": runtime,
                "runtime_versions": versions or {"torch": "2.13.0"}, "runtime_options": {}, "threads": 1,
                "dtype": "float32", "input_shape": [1, 3, 64, 64], "date": "2026-01-01T00:00:00+00:00",
                "cpu_model": machine.cpu_model, "logical_cpus": machine.logical_cpus, "physical_cores": machine.physical_cores,
                "system": machine.system, "fingerprint": fingerprint or machine.fingerprint,
            },
        },
    }
