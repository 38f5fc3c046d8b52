"""The cost report: per operator, per module (any depth) and totals, with roofline bounds.

Every operator is attributed to exactly one module (the innermost that ran it); a module's totals
are the sums over its subtree, so nothing is counted twice however modules are shared or called.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from .roofline import DevicePeaks
from .tracer import OperatorCall, Trace

__all__ = ["UNITS", "CostTotals", "OperatorCost", "CostReport", "build_report"]

UNITS = (
    "MACs = multiply-accumulates of conv/matmul/attention; FLOPs = floating-point operations "
    "(2 per MAC, plus bias adds and element-wise work); bytes = tensor bytes read + written per operator; "
    "times = cache-aware roofline lower bounds max(FLOPs/peak, bytes/bandwidth of the level the bytes must come from)"
)


@dataclass(frozen=True)
class OperatorCost:
    call: OperatorCall
    bound_seconds: float | None
    bound_by: str | None  # "compute" or "memory" (None without peaks or for views)

    @property
    def bytes(self) -> int:
        return self.call.bytes_read + self.call.bytes_written

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOPs per byte moved."""
        return self.call.flops / self.bytes if self.bytes else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self.call)
        data.update(bytes=self.bytes, intensity=self.intensity, bound_seconds=self.bound_seconds, bound_by=self.bound_by)
        data["input_shapes"] = [list(s) for s in self.call.input_shapes]
        data["output_shapes"] = [list(s) for s in self.call.output_shapes]
        return data


@dataclass
class CostTotals:
    path: str
    type: str
    depth: int
    params: int = 0
    macs: int = 0
    flops: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    activation_bytes: int = 0  # sum of the storages its operators allocated (their outputs)
    operators: int = 0  # non-view operator calls
    compute_bound_seconds: float = 0.0  # roofline time of its compute-bound operators
    memory_bound_seconds: float = 0.0  # roofline time of its memory-bound operators
    bounded: bool = False  # False when the report has no roofline peaks: no bound times at all

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes if self.bytes else 0.0

    @property
    def bound_seconds(self) -> float | None:
        """Roofline lower bound of its operators' time; None without peaks."""
        return self.compute_bound_seconds + self.memory_bound_seconds if self.bounded else None

    @property
    def bound_by(self) -> str | None:
        """The resource that limits most of this module's roofline time; None without peaks."""
        if not self.bounded:
            return None
        return "compute" if self.compute_bound_seconds >= self.memory_bound_seconds else "memory"

    def add(self, call: OperatorCall, cost: OperatorCost) -> None:
        self.macs += call.macs
        self.flops += call.flops
        self.bytes_read += call.bytes_read
        self.bytes_written += call.bytes_written
        self.activation_bytes += call.new_activation_bytes
        self.operators += 0 if call.is_view else 1
        if cost.bound_seconds is not None:
            self.bounded = True
            if cost.bound_by == "compute":
                self.compute_bound_seconds += cost.bound_seconds
            else:
                self.memory_bound_seconds += cost.bound_seconds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(bytes=self.bytes, intensity=self.intensity, bound_seconds=self.bound_seconds, bound_by=self.bound_by)
        return data


@dataclass
class CostReport:
    """Result of :func:`edgevision.analyze`. Totals are plain attributes (``report.total.macs``)."""

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    operators: list[OperatorCost]
    modules: dict[str, CostTotals]  # path -> totals; "" is the whole model
    peak_activation_bytes: int
    input_bytes: int
    peaks: DevicePeaks | None
    unrecognized_ops: dict[str, int] = field(default_factory=dict)  # op -> calls given the default cost
    diagnostics: list = field(default_factory=list)  # design diagnostics (edgevision.analysis.diagnostics)
    units: str = UNITS
    runtime: str | None = None  # the runtime whose fused kernels ``kernels`` lists; None = per aten operator
    kernels: list = field(default_factory=list)  # analysis.kernels.Kernel, when ``runtime`` is set

    @property
    def bound_seconds(self) -> float | None:
        """Roofline lower bound of one forward pass: summed per kernel of ``runtime``, else per aten operator."""
        if self.peaks is None:
            return None
        if self.runtime is not None:
            return sum(k.bound_seconds for k in self.kernels)
        return self.total.bound_seconds

    def kernels_for(self, runtime: str) -> list:
        """The fused kernels ``runtime`` would run (analysis.kernels), from this report's trace."""
        from .kernels import kernel_costs

        return kernel_costs([o.call for o in self.operators], runtime, self.peaks)

    def runtime_bound_seconds(self, runtime: str | None) -> float | None:
        """The roofline bound on ``runtime`` (its fused kernels); None without peaks."""
        if self.peaks is None:
            return None
        if runtime is None:
            return self.total.bound_seconds
        return sum(k.bound_seconds for k in self.kernels_for(runtime))

    @property
    def total(self) -> CostTotals:
        return self.modules[""]

    def module(self, path: str) -> CostTotals:
        try:
            return self.modules[path]
        except KeyError:
            raise KeyError(f"no module {path!r} in the report; modules: {', '.join(list(self.modules)[:8])}...") from None

    def modules_at_depth(self, depth: int) -> list[CostTotals]:
        return [m for m in self.modules.values() if m.depth == depth]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "units": self.units,
            "peaks": self.peaks.to_dict() if self.peaks else None,
            "runtime": self.runtime,
            "bound_seconds": self.bound_seconds,
            "total": self.total.to_dict(),
            "peak_activation_bytes": self.peak_activation_bytes,
            "input_bytes": self.input_bytes,
            "unrecognized_ops": self.unrecognized_ops,
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "modules": [m.to_dict() for m in self.modules.values()],
            "operators": [o.to_dict() for o in self.operators],
            "kernels": [k.to_dict() for k in self.kernels],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_dataframe(self):
        """One row per operator and one per module (column ``row``: "operator" or "module")."""
        import pandas as pd

        operators = pd.DataFrame([{"row": "operator", **o.to_dict()} for o in self.operators])
        modules = pd.DataFrame([{"row": "module", **m.to_dict()} for m in self.modules.values()])
        return pd.concat([modules, operators], ignore_index=True)


def _module_params(model: nn.Module) -> dict[str, tuple[str, int]]:
    """path -> (type name, unique parameters in its subtree)."""
    result: dict[str, tuple[str, int]] = {}
    for path, module in model.named_modules():
        result[path] = (type(module).__name__, sum(p.numel() for p in module.parameters()))
    return result


def _ancestors(path: str) -> list[str]:
    """"a.b.c" -> ["a.b.c", "a.b", "a", ""]."""
    if not path:
        return [""]
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)] + [""]


def build_report(
    model: nn.Module, name: str, input_shape: tuple[int, ...], dtype: str, trace_: Trace, peaks: DevicePeaks | None
) -> CostReport:
    modules = {
        path: CostTotals(path=path, type=type_name, depth=0 if not path else path.count(".") + 1, params=params)
        for path, (type_name, params) in _module_params(model).items()
    }
    operators: list[OperatorCost] = []
    unrecognized: dict[str, int] = {}
    for call in trace_.calls:
        if call.is_view or peaks is None:
            cost = OperatorCost(call, None if peaks is None else 0.0, None)
        else:
            seconds, bound_by = peaks.bound_seconds(call.flops, call.bytes_read + call.bytes_written)
            cost = OperatorCost(call, seconds, bound_by)
        operators.append(cost)
        if not call.counted:
            unrecognized[call.op] = unrecognized.get(call.op, 0) + 1
        for path in _ancestors(call.module):
            if path not in modules:  # e.g. a module created during forward
                modules[path] = CostTotals(path=path, type="?", depth=path.count(".") + 1 if path else 0)
            modules[path].add(call, cost)
    return CostReport(
        model=name,
        input_shape=tuple(input_shape),
        dtype=dtype,
        operators=operators,
        modules=modules,
        peak_activation_bytes=trace_.peak_activation_bytes,
        input_bytes=trace_.input_bytes,
        peaks=peaks,
        unrecognized_ops=unrecognized,
    )
