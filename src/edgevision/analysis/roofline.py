"""This machine's roofline: peak compute (large GEMMs) and memory bandwidth (large copies), cached.

The roofline model bounds an operator's time below by max(FLOPs / peak FLOP/s, bytes / bandwidth)
(Williams et al., "Roofline", CACM 2009). Peaks are measured with ``torch.utils.benchmark`` at the
thread count in use: the best of a few square fp32 GEMM sizes for compute, and the best of a few
large tensor copies (each byte read once and written once) for bandwidth. Results are cached in
``$EDGEVISION_CACHE_DIR`` (default ``~/.cache/edgevision``) under the machine fingerprint, thread
count and dtype, so they are measured once per machine and never mixed across machines.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..atomic import atomic_write_text
from ..machine import machine_info

__all__ = ["DevicePeaks", "device_peaks", "cache_path"]


@dataclass(frozen=True)
class DevicePeaks:
    flops_per_second: float  # peak arithmetic throughput for ``dtype``
    bytes_per_second: float  # peak memory bandwidth (read + write traffic)
    threads: int
    dtype: str
    fingerprint: str  # machine fingerprint (edgevision.machine)
    source: str = "measured"  # "measured" or "given"

    @property
    def ridge_intensity(self) -> float:
        """FLOPs per byte above which an operator is compute-bound."""
        return self.flops_per_second / self.bytes_per_second

    def bound_seconds(self, flops: float, bytes_moved: float) -> tuple[float, str]:
        compute, memory = flops / self.flops_per_second, bytes_moved / self.bytes_per_second
        return (compute, "compute") if compute >= memory else (memory, "memory")

    def to_dict(self) -> dict:
        return asdict(self)


def cache_path() -> Path:
    root = os.environ.get("EDGEVISION_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "edgevision")
    return Path(root) / "device_peaks.json"


def _best_seconds(statement: str, globals_: dict, threads: int, min_run_time: float) -> float:
    from torch.utils.benchmark import Timer

    timer = Timer(stmt=statement, globals=globals_, num_threads=threads)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return min(measurement.times)


def _measure(threads: int, dtype: torch.dtype, min_run_time: float) -> tuple[float, float]:
    best_flops = 0.0
    for size in (512, 1024, 2048):
        a = torch.randn(size, size, dtype=dtype)
        b = torch.randn(size, size, dtype=dtype)
        seconds = _best_seconds("torch.mm(a, b)", {"torch": torch, "a": a, "b": b}, threads, min_run_time)
        best_flops = max(best_flops, 2 * size**3 / seconds)
    best_bandwidth = 0.0
    for megabytes in (64, 256):
        source = torch.empty(megabytes * 2**20 // 4, dtype=torch.float32).uniform_()
        target = torch.empty_like(source)
        seconds = _best_seconds("target.copy_(source)", {"target": target, "source": source}, threads, min_run_time)
        best_bandwidth = max(best_bandwidth, 2 * source.numel() * 4 / seconds)  # read + write
    return best_flops, best_bandwidth


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def device_peaks(
    threads: int | None = None, dtype: torch.dtype = torch.float32, refresh: bool = False, min_run_time: float = 0.2
) -> DevicePeaks:
    """Peak compute and bandwidth of this machine at ``threads`` (default: torch's current count)."""
    threads = threads or torch.get_num_threads()
    fingerprint = machine_info().fingerprint
    key = f"{fingerprint}/threads={threads}/{str(dtype).replace('torch.', '')}"
    path = cache_path()
    cache = _load_cache(path)
    if not refresh and key in cache:
        return DevicePeaks(**cache[key])
    flops, bandwidth = _measure(threads, dtype, min_run_time)
    peaks = DevicePeaks(flops, bandwidth, threads, str(dtype).replace("torch.", ""), fingerprint)
    cache[key] = peaks.to_dict()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=2))
    except OSError:  # an unwritable cache must not lose the measurement
        pass
    return peaks
