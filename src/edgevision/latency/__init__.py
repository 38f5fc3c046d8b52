"""Latency measurement: a statistically sound protocol, one adapter per runtime, results with context.

``measure(model, input_shape, runtime="ort", threads=None, batch=None)`` warms up, repeats until the
95% CI of the median is within 2% (or flags the result noisy), and returns a :class:`LatencyResult`
stamped with the machine, runtime versions, threads, dtype, input shape and model form.
``layer_times`` gives per-layer time from the PyTorch profiler or ONNX Runtime's profiling.
"""

from .engine import load_model, measure
from .errors import MeasurementError, RuntimeNotAvailable
from .layers import LayerTime, layer_times
from .protocol import MeasurementPlan, Samples, collect_samples
from .result import LatencyResult, MeasurementContext
from .runtimes import RUNTIMES, Runtime, available_runtimes, get_runtime
from .statistics import LatencySummary, median_confidence_interval, summarize

__all__ = [
    "RUNTIMES",
    "LatencyResult",
    "LatencySummary",
    "LayerTime",
    "MeasurementContext",
    "MeasurementError",
    "MeasurementPlan",
    "Runtime",
    "RuntimeNotAvailable",
    "Samples",
    "available_runtimes",
    "collect_samples",
    "get_runtime",
    "layer_times",
    "load_model",
    "measure",
    "median_confidence_interval",
    "summarize",
]
