"""What a measurement returns: latency statistics plus the context needed to trust and compare them.

A latency without its machine, runtime version, thread count, input shape and model form is not
comparable with another; :class:`MeasurementContext` travels with every :class:`LatencyResult`,
including the machine fingerprint, so results from different machines are never mixed silently.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from .statistics import LatencySummary

__all__ = ["LatencyResult", "MeasurementContext"]


@dataclass(frozen=True)
class MeasurementContext:
    model: str  # registered name, ONNX path or the module's class name
    model_form: str  # "train" | "deploy" | "onnx"
    runtime: str  # "eager" | "compile" | "ort" | "openvino" | "cuda"
    runtime_versions: dict[str, str]  # e.g. {"torch": "2.13.0", "onnxruntime": "1.31.1"}
    runtime_options: dict[str, object]  # e.g. {"channels_last": False, "graph_optimization": "all"}
    threads: int
    dtype: str
    input_shape: tuple[int, ...]  # (N, C, H, W)
    date: str  # ISO 8601, UTC
    cpu_model: str
    logical_cpus: int
    physical_cores: int
    system: str
    fingerprint: str  # edgevision.machine.machine_info().fingerprint

    @property
    def batch(self) -> int:
        return self.input_shape[0]


@dataclass(frozen=True)
class LatencyResult(LatencySummary):
    """Per-call latency of one model on one runtime (the statistics, in ms) with its context."""

    warmup_runs: int
    throughput: float  # images per second at the median latency
    peak_memory_bytes: int | None  # peak resident memory while measuring, where the runtime lets us see it
    peak_memory_kind: str | None  # what peak_memory_bytes is, e.g. "process RSS high-water mark"
    stop_reason: str  # "converged" | "time budget" | "max runs"
    noisy: bool  # True when the target precision was not reached
    target_precision: float
    context: MeasurementContext
    latencies_ms: tuple[float, ...] = field(default=(), repr=False)
    # the machine around the measurement (latency.contention): other processes' CPU, steal time,
    # load average and the reference network before/after; ``contended`` when it was not quiet
    contended: bool = False
    machine_load: dict | None = field(default=None, repr=False)
    remeasured: bool = False  # True when a contended first measurement was repeated once the machine was quiet

    @classmethod
    def from_summary(cls, summary: LatencySummary, *, context: MeasurementContext, **kwargs) -> "LatencyResult":
        stats = {f.name: getattr(summary, f.name) for f in fields(LatencySummary)}
        throughput = context.batch / (summary.median_ms / 1e3) if summary.median_ms > 0 else math.inf
        return cls(**stats, throughput=throughput, context=context, **kwargs)

    @property
    def ci_half_width_ms(self) -> float:
        return max(self.median_ms - self.ci_low_ms, self.ci_high_ms - self.median_ms)

    def summary(self) -> str:
        """One line: "4.21 ms (95% CI 4.18-4.25, 230 runs)", prefixed with "noisy:" when imprecise."""
        text = f"{self.median_ms:.3g} ms (95% CI {self.ci_low_ms:.3g}-{self.ci_high_ms:.3g}, {self.runs} runs)"
        if self.noisy:
            text = f"noisy: {text}; the {self.stop_reason} ran out before the CI reached ±{self.target_precision:.0%}"
        if self.contended:
            reasons = "; ".join((self.machine_load or {}).get("reasons", [])) or "the machine was busy"
            text = f"{text} [contended: {reasons}]"
        return text

    def to_dict(self, include_latencies: bool = False) -> dict:
        data = asdict(self)
        if not include_latencies:
            data.pop("latencies_ms")
        for key, value in data.items():  # JSON has no NaN: an undefined CI bound becomes null
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        data["context"]["input_shape"] = list(self.context.input_shape)
        return data

    def to_json(self, indent: int | None = 2, include_latencies: bool = False) -> str:
        return json.dumps(self.to_dict(include_latencies), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> "LatencyResult":
        data = dict(data)
        context = dict(data.pop("context"))
        context["input_shape"] = tuple(context["input_shape"])
        for key in ("ci_low_ms", "ci_high_ms", "throughput"):
            if data.get(key) is None:
                data[key] = math.nan
        data["latencies_ms"] = tuple(data.get("latencies_ms", ()))
        return cls(**data, context=MeasurementContext(**context))
