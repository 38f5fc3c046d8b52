"""Cost model: every operator's MACs, FLOPs, bytes moved, activation memory and roofline bound.

``analyze(model, input_shape)`` works on any ``nn.Module`` by intercepting aten operators; see
:mod:`.op_costs` for the counting conventions and :mod:`.roofline` for this machine's peaks.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .diagnostics import Diagnostic, diagnose
from .report import UNITS, CostReport, CostTotals, OperatorCost, build_report
from .kernels import FUSION_RULES, Kernel
from .roofline import DevicePeaks, MemoryLevel, device_peaks
from .tracer import trace

__all__ = ["UNITS", "CostReport", "CostTotals", "DevicePeaks", "Diagnostic", "Kernel", "MemoryLevel", "OperatorCost", "analyze", "device_peaks", "diagnose"]


def analyze(
    model: nn.Module,
    input_shape: tuple[int, ...] = (1, 3, 224, 224),
    dtype: torch.dtype = torch.float32,
    peaks: DevicePeaks | None | str = "measure",
    name: str | None = None,
    runtime: str | None = None,
) -> CostReport:
    """Count every operator of one inference forward pass of ``model`` on an ``input_shape`` tensor.

    ``peaks``: ``"measure"`` (default) uses this machine's cached roofline peaks, measuring them on
    first use; a :class:`DevicePeaks` uses the given ones; ``None`` skips the roofline times.
    ``runtime`` (``"ort"``, ``"eager"``, ``"compile"``, ``"openvino"``): also group the operators into
    the kernels that runtime fuses (:mod:`.kernels`); ``report.kernels`` lists them and
    ``report.bound_seconds`` is their summed bound. The default reports per aten operator.
    """
    if runtime is not None and runtime not in FUSION_RULES:
        raise ValueError(f"runtime must be one of {', '.join(FUSION_RULES)} or None, got {runtime!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"analyze() needs an nn.Module, got {type(model).__name__}")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 1 or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive dimensions such as (1, 3, 224, 224), got {input_shape!r}")
    was_training = model.training
    parameter = next(model.parameters(), None)
    target = model
    if parameter is not None and parameter.dtype != dtype:
        target = copy.deepcopy(model).to(dtype)
    target.eval()
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(shape, generator=generator).to(dtype)
    try:
        recorded = trace(target, example)
    except RuntimeError as error:  # shape mismatches etc. surface as RuntimeError from the model
        raise ValueError(f"the model cannot take an input of shape {'x'.join(map(str, shape))}: {str(error).splitlines()[0]}") from None
    finally:
        model.train(was_training)
    if isinstance(peaks, str):
        if peaks != "measure":
            raise ValueError(f"peaks must be 'measure', a DevicePeaks or None, got {peaks!r}")
        peaks = device_peaks(dtype=dtype)
    report = build_report(target, name or type(model).__name__, shape, str(dtype).replace("torch.", ""), recorded, peaks)
    report.diagnostics = diagnose(report, target)
    if runtime is not None:
        report.runtime = runtime
        report.kernels = report.kernels_for(runtime)
    return report
