"""The latency staircase of a layer on a runtime: channels vs milliseconds, and its fast widths.

Runtimes pick kernels by channel blocking (oneDNN's 8/16-wide AVX2/AVX-512 blocks, ORT's packed
GEMM tiles), so latency is a staircase in the width, not a line: 60 channels can cost what 64 cost.
A pruned width on the *right edge* of a step (the most channels for that time) is free accuracy.
:func:`measure_staircase` times one layer over a range of widths (cached on disk per runtime and
machine); :func:`fast_widths` keeps the right edge of each step. Tests pass a fake timing function.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["pointwise_layer", "measure_staircase", "fast_widths", "default_cache"]


def pointwise_layer(in_channels: int, out_channels: int) -> nn.Module:
    """The layer whose staircase stands in for a width: 1x1 conv + BN + ReLU (the bulk of mobile MACs)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())


def default_cache(runtime: str) -> Path:
    from ..machine import machine_info

    root = Path(os.environ.get("EDGEVISION_CACHE", Path.home() / ".cache" / "edgevision"))
    return root / "staircase" / f"{runtime}-{machine_info().fingerprint}.json"


def measure_staircase(
    in_channels: int,
    widths: Sequence[int],
    size: int,
    time_ms: Callable[[nn.Module, tuple[int, int, int]], float] | None = None,
    runtime: str = "ort",
    cache: str | os.PathLike | None = None,
) -> dict[int, float]:
    """Width -> median ms of :func:`pointwise_layer` (``in_channels`` -> width) at ``size`` x ``size``.

    ``time_ms(module, (C, H, W))`` defaults to ``edgevision.measure`` on ``runtime``; results are cached
    in ``cache`` (JSON, default per runtime and machine fingerprint) so a staircase is measured once.
    """
    measured = time_ms is None
    if measured:
        from ..latency import measure

        def time_ms(module, shape):
            return measure(module, shape, runtime=runtime, time_budget_s=2.0).median_ms

    path = Path(cache) if cache is not None else (default_cache(runtime) if measured else None)
    stored = json.loads(path.read_text()) if path is not None and path.exists() else {}
    out = {}
    for width in widths:
        key = f"pointwise:{in_channels}:{width}:{size}"
        if key not in stored:
            with torch.no_grad():
                stored[key] = float(time_ms(pointwise_layer(in_channels, width).eval(), (in_channels, size, size)))
        out[width] = stored[key]
    if path is not None:
        from ..atomic import atomic_write_text

        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(stored, indent=1, sort_keys=True))
    return out


def fast_widths(staircase: dict[int, float], tolerance: float = 0.03) -> list[int]:
    """The right edge of each step: widths no wider width beats by more than ``tolerance`` (relative).

    A width ``w`` is kept when every wider width is slower by more than the tolerance, i.e. ``w`` buys
    the most channels for its time; widths on a flat step below it are dropped.
    """
    widths = sorted(staircase)
    keep = []
    for i, width in enumerate(widths):
        wider = widths[i + 1 :]
        if all(staircase[w] > staircase[width] * (1 + tolerance) for w in wider):
            keep.append(width)
    return keep
