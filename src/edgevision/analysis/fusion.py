"""Fusion detection from measurements, as nn-Meter does it (Zhang et al., MobiSys 2021, section 4.1).

A runtime that fuses two operators runs them as one kernel, so the pair costs less than the two
alone: nn-Meter calls a pair fused when ``T1 + T2 - T12 > alpha * min(T1, T2)`` with alpha = 0.5,
T1 and T2 the latencies of each operator alone and T12 of the two in sequence. This is the check
for runtimes whose optimized graph we cannot read (inductor, OpenVINO) and a cross-check of the
graph-derived rules of :mod:`.kernels` for ONNX Runtime.

The timer is a parameter (``timer(module, input_shape) -> ms``): :func:`measured_timer` times on
a real runtime with ``edgevision.measure``; tests pass a fake one, so no timing is asserted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["FusionTest", "detect_fusion", "is_fused", "measured_timer", "standard_pairs"]

Timer = Callable[[nn.Module, tuple[int, ...]], float]


def is_fused(first_ms: float, second_ms: float, pair_ms: float, alpha: float = 0.5) -> bool:
    """nn-Meter's rule: the pair saves more than ``alpha`` of the cheaper operator's time."""
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if min(first_ms, second_ms, pair_ms) <= 0:
        raise ValueError(f"latencies must be positive, got {first_ms}, {second_ms}, {pair_ms} ms")
    return first_ms + second_ms - pair_ms > alpha * min(first_ms, second_ms)


@dataclass(frozen=True)
class FusionTest:
    """One pair's three latencies and the verdict."""

    name: str
    first_ms: float
    second_ms: float
    pair_ms: float
    alpha: float

    @property
    def saved_ms(self) -> float:
        return self.first_ms + self.second_ms - self.pair_ms

    @property
    def fused(self) -> bool:
        return is_fused(self.first_ms, self.second_ms, self.pair_ms, self.alpha)

    def to_dict(self) -> dict:
        return {"name": self.name, "first_ms": self.first_ms, "second_ms": self.second_ms, "pair_ms": self.pair_ms,
                "saved_ms": self.saved_ms, "alpha": self.alpha, "fused": self.fused}  # fmt: skip


@torch.no_grad()
def detect_fusion(first: nn.Module, second: nn.Module, input_shape: tuple[int, ...], timer: Timer, alpha: float = 0.5, name: str = "") -> FusionTest:
    """Time ``first`` on ``input_shape``, ``second`` on ``first``'s output shape and the two in sequence."""
    first, second = first.eval(), second.eval()
    middle = tuple(first(torch.zeros(input_shape)).shape)
    pair = nn.Sequential(first, second).eval()
    label = name or f"{type(first).__name__}+{type(second).__name__}"
    return FusionTest(label, timer(first, tuple(input_shape)), timer(second, middle), timer(pair, tuple(input_shape)), alpha)


def standard_pairs(channels: int = 64, size: int = 28) -> dict[str, tuple[nn.Module, nn.Module, tuple[int, ...]]]:
    """The pairs the kernel rules of :mod:`.kernels` decide on, at one stage-like shape: name -> (first, second, input shape)."""
    shape = (1, channels, size, size)

    def conv(groups: int = 1) -> nn.Module:
        return nn.Conv2d(channels, channels, 3, padding=1, groups=groups)

    return {
        "conv+relu": (conv(), nn.ReLU(), shape),
        "conv+hardswish": (conv(), nn.Hardswish(), shape),
        "conv+batchnorm": (conv(), nn.BatchNorm2d(channels), shape),
        "dwconv+relu": (conv(channels), nn.ReLU(), shape),
        "conv+maxpool": (conv(), nn.MaxPool2d(3, 1, 1), shape),  # no runtime we know fuses these: a control
    }


def measured_timer(runtime: str, threads: int = 1, time_budget_s: float = 1.0) -> Timer:
    """A timer that measures each module's median latency on ``runtime`` with ``edgevision.measure``."""
    from ..latency import measure

    def timer(module: nn.Module, input_shape: tuple[int, ...]) -> float:
        return measure(module, input_shape, runtime=runtime, threads=threads, time_budget_s=time_budget_s).median_ms

    return timer
