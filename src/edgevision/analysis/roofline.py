"""This machine's cache-aware roofline: peak FLOP/s and sustained bandwidth per memory level, cached.

The roofline model bounds an operator's time below by max(FLOPs / peak FLOP/s, bytes / bandwidth)
(Williams et al., "Roofline", CACM 2009). Charging every byte at DRAM bandwidth is not a bound on a
CPU whose caches hold a mobile network's activations: a real run beats it. The cache-aware roofline
(Ilić, Pratas and Sousa, "Cache-aware Roofline model", IEEE CAL 2014; Intel Advisor's CARM) measures
the bandwidth of every level (L1, L2, L3, DRAM) and charges data at the level it comes from.

Which level an operator's bytes come from depends on what the previous operators left in cache, so
to stay a *lower* bound we charge each level only for the bytes that cannot possibly be held closer
to the core. With cumulative capacities ``C_k`` (L1 + L2 + ... + Lk, private levels once per thread)
and bandwidths ``B_1 >= B_2 >= ...``, an operator touching ``b`` distinct bytes (inputs, weights and
outputs) must move at least ``b - 2 C_k`` of them across the boundary below level k (at most ``C_k``
of its inputs can be resident at its start and at most ``C_k`` of its outputs at its end), so

    memory time >= max( b / B_1,  max_k (b - 2 C_k) / B_{k+1} ).

For large ``b`` this is CARM's "charge at the level the working set fits in"; near a level's
capacity it is lower, never higher. Every rate is the HIGHEST observed over a working-set sweep,
several methods (copy: read + write; re-reading a cached buffer: reads) and two repeats, and a level is
never slower than the level behind it: noise from a busy machine can only lower the bound.

Peaks are measured with ``torch.utils.benchmark`` at the thread count in use and cached in
``$EDGEVISION_CACHE_DIR`` (default ``~/.cache/edgevision``) under the machine fingerprint, thread
count and dtype, so they are measured once per machine and never mixed across machines; a
re-probe (``refresh=True``) keeps the higher of the old and new rate for each, so probing again on
a busy machine never raises the bound.

**Machine state.** A shared virtual machine runs the same work up to 3.6x faster at some moments
than at others with no load or steal visible from inside (benchmarks/results/roofline-violations.md:
a fixed reference network took 0.27-0.97 ms over 110 measurements), so peaks probed in a slow state
do not bound a network measured in a fast one. Every probe therefore times the reference network of
:mod:`edgevision.latency.contention` before, between and after its compute and memory sweeps and
records the slowest of those times as :attr:`DevicePeaks.reference_ms`. A measurement that stores
the reference time beside it is bounded by ``bound x min(1, reference at measurement / reference at
probe)`` (:meth:`DevicePeaks.bound_factor`): a faster machine lowers the bound by the speed ratio; a
slower one never raises it (the ratio is an estimate, and raising would be the unsafe direction).
We scale per measurement rather than probing "at the fastest state seen": the fastest state is only
known after every measurement is taken, and a per-measurement factor keeps the bound as tight as
the probe allows for every measurement taken in the probe's state or a slower one. The correction
assumes every rate scales like the reference network's speed (frequency, a neighbour's share of a
core); where that fails it is a lower estimate of the speed-up, not a guarantee.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..atomic import atomic_write_text
from ..machine import machine_info

__all__ = ["ORT_CONV_PROBES", "CacheLevel", "ConvProbe", "DevicePeaks", "MemoryLevel", "cache_levels", "cache_path", "device_peaks", "measurement_reference_ms"]

#: bump when the cached measurement changes meaning (v2: per-level bandwidths, max over repeats;
#: v3: the compute peak is the highest of torch's GEMM and ONNX Runtime's own GEMM and convolution;
#: v4: ORT's convolutions probed as NCHWc chains of the shapes of the networks v3 left violating;
#: v5: every probe records the reference network's time, so bounds can follow the machine's state)
_CACHE_VERSION = "carm-v5"
#: newest first: their rates seed a first probe under the current version, if they record a machine
#: state (``reference_ms``); v2-v4 do not, so a rate from them cannot be placed in a state and is dropped
_PREVIOUS_VERSIONS = ("carm-v4", "carm-v3", "carm-v2")


@dataclass(frozen=True)
class CacheLevel:
    """One data cache level as the OS reports it (sysfs or lscpu)."""

    level: int  # 1, 2, 3
    size_bytes: int  # one instance
    shared_by: int  # logical CPUs sharing one instance (1 or 2 = private to a core)


@dataclass(frozen=True)
class MemoryLevel:
    """One level of the memory hierarchy at a thread count: what fits in it and how fast it streams."""

    name: str  # "L1", "L2", "L3", "DRAM"
    capacity_bytes: float  # cumulative: this level and every level closer to the cores (inf for DRAM)
    bytes_per_second: float  # highest sustained read + write traffic observed at working sets in this level


@dataclass(frozen=True)
class DevicePeaks:
    flops_per_second: float  # peak arithmetic throughput for ``dtype``
    bytes_per_second: float  # DRAM bandwidth (read + write traffic); the flat roofline's only level
    threads: int
    dtype: str
    fingerprint: str  # machine fingerprint (edgevision.machine)
    source: str = "measured"  # "measured" or "given"
    levels: tuple[MemoryLevel, ...] = field(default=())  # inner to outer; () = flat roofline (DRAM only)
    # other processes were busy while probing: the rates may be low (the bound too high); refresh on a quiet machine
    contended: bool = False
    # the kernel that reached ``flops_per_second`` ("torch.mm 2048", "onnxruntime Conv 3x3 ...")
    flops_probe: str = ""
    # the reference network's median ms (latency.contention.reference_ms, same threads) in the machine
    # state these rates belong to: the slowest of the samples taken around the probe; None = not recorded
    reference_ms: float | None = None
    reference_samples_ms: tuple[float, ...] = field(default=())  # every sample taken around the probe(s)

    def __post_init__(self) -> None:
        if not (self.flops_per_second > 0 and self.bytes_per_second > 0):
            raise ValueError(f"DevicePeaks needs positive rates, got {self.flops_per_second} FLOP/s and {self.bytes_per_second} B/s")
        levels = tuple(MemoryLevel(**lv) if isinstance(lv, dict) else lv for lv in self.levels)
        capacities = [lv.capacity_bytes for lv in levels]
        if capacities != sorted(capacities) or any(lv.bytes_per_second <= 0 for lv in levels):
            raise ValueError("DevicePeaks.levels must go from the core outwards (growing capacity) with positive bandwidths")
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "reference_samples_ms", tuple(float(v) for v in self.reference_samples_ms))
        if self.reference_ms is not None and not (self.reference_ms > 0 and math.isfinite(self.reference_ms)):
            raise ValueError(f"DevicePeaks.reference_ms must be a positive number of ms or None, got {self.reference_ms}")

    @property
    def ridge_intensity(self) -> float:
        """FLOPs per byte above which an operator is compute-bound (at DRAM bandwidth)."""
        return self.flops_per_second / self.bytes_per_second

    def memory_seconds(self, bytes_moved: float) -> float:
        """Least time to move ``bytes_moved`` distinct bytes through the hierarchy (see the module docstring)."""
        if not self.levels:
            return bytes_moved / self.bytes_per_second
        best = bytes_moved / self.levels[0].bytes_per_second
        for inner, outer in zip(self.levels, self.levels[1:]):
            best = max(best, (bytes_moved - 2 * inner.capacity_bytes) / outer.bytes_per_second)
        return best

    def level_of(self, bytes_moved: float) -> str:
        """The level whose bandwidth limits ``bytes_moved`` (the first whose capacity holds it); "DRAM" when flat."""
        for level in self.levels:
            if bytes_moved <= 2 * level.capacity_bytes:
                return level.name
        return self.levels[-1].name if self.levels else "DRAM"

    def bound_seconds(self, flops: float, bytes_moved: float) -> tuple[float, str]:
        compute, memory = flops / self.flops_per_second, self.memory_seconds(bytes_moved)
        return (compute, "compute") if compute >= memory else (memory, "memory")

    def bound_factor(self, measured_reference_ms: float | None) -> float:
        """What to multiply a bound from these peaks by to bound a run measured while the reference took ``measured_reference_ms``.

        ``min(1, measured / probe)``: the machine ran the reference faster than while probing, so every
        rate was higher by that ratio and the bound lower; a slower machine leaves the bound unchanged
        (see the module docstring). 1.0 when either reference time is unknown.
        """
        if self.reference_ms is None or not measured_reference_ms or not (measured_reference_ms > 0):
            return 1.0
        return min(1.0, measured_reference_ms / self.reference_ms)

    def at_reference(self, reference_ms: float) -> "DevicePeaks":
        """These peaks moved to the machine state where the reference takes ``reference_ms`` (every rate x probe / given)."""
        if self.reference_ms is None:
            raise ValueError("these peaks record no reference time (probed before carm-v5): they cannot be moved to another machine state")
        moved = self.scaled(self.reference_ms / reference_ms)
        return replace(moved, source=self.source, reference_ms=float(reference_ms))

    def scaled(self, factor: float) -> "DevicePeaks":
        """Every rate multiplied by ``factor`` (a faster machine for factor > 1)."""
        levels = tuple(replace(lv, bytes_per_second=lv.bytes_per_second * factor) for lv in self.levels)
        return replace(self, flops_per_second=self.flops_per_second * factor, bytes_per_second=self.bytes_per_second * factor, levels=levels, source="given")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["levels"] = [{**lv, "capacity_bytes": None if math.isinf(lv["capacity_bytes"]) else lv["capacity_bytes"]} for lv in data["levels"]]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "DevicePeaks":
        data = dict(data)
        data["levels"] = tuple(
            MemoryLevel(lv["name"], math.inf if lv["capacity_bytes"] is None else lv["capacity_bytes"], lv["bytes_per_second"])
            for lv in data.get("levels", ())
        )
        data["reference_samples_ms"] = tuple(data.get("reference_samples_ms") or ())
        return cls(**data)


def measurement_reference_ms(*samples: float | None) -> float | None:
    """The machine state of one measurement: the fastest of the reference times taken around it (None if none).

    The fastest sample gives the smaller :meth:`DevicePeaks.bound_factor`, so of the states seen
    around a measurement we bound it as if taken in the fastest one.
    """
    known = [float(v) for v in samples if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0]
    return min(known) if known else None


def cache_path() -> Path:
    root = os.environ.get("EDGEVISION_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "edgevision")
    return Path(root) / "device_peaks.json"


# ---- cache sizes ----------------------------------------------------------------------------------
def _parse_size(text: str) -> int:
    """"48K" / "2048K" / "32 MiB" / "1.5 MB" -> bytes."""
    match = re.match(r"\s*([\d.]+)\s*([KMG]?)", text.strip().upper())
    if not match:
        raise ValueError(f"cannot read cache size {text!r}")
    return int(float(match.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match.group(2)])


def _cpu_count_in(cpu_list: str) -> int:
    """"0-1,4" -> 3."""
    count = 0
    for part in cpu_list.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return max(count, 1)


def cache_levels(sysfs: str | Path = "/sys/devices/system/cpu/cpu0/cache") -> tuple[CacheLevel, ...]:
    """Data/unified caches of cpu0 from sysfs, smallest level first; () when the OS does not say."""
    found: dict[int, CacheLevel] = {}
    root = Path(sysfs)
    for index in sorted(root.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            if kind == "Instruction":
                continue
            level = int((index / "level").read_text())
            size = _parse_size((index / "size").read_text())
            shared = _cpu_count_in((index / "shared_cpu_list").read_text())
        except (OSError, ValueError):
            continue
        found[level] = CacheLevel(level, size, shared)
    return tuple(found[level] for level in sorted(found))


def memory_levels(caches: tuple[CacheLevel, ...], threads: int, logical_cpus: int) -> list[tuple[str, float]]:
    """(name, cumulative capacity in bytes at ``threads`` threads) per level, DRAM last (inf).

    A private cache counts once per thread that can use its own copy; a shared one once. Summing the
    levels (rather than taking the largest) is right for exclusive caches (AMD's victim L3) and errs
    towards a larger capacity, i.e. a lower bound, for inclusive ones.
    """
    levels, total = [], 0.0
    for cache in caches:
        copies = max(1, min(threads, logical_cpus // cache.shared_by)) if cache.shared_by <= 2 else 1
        total += cache.size_bytes * copies
        levels.append((f"L{cache.level}", total))
    levels.append(("DRAM", math.inf))
    return levels


# ---- measurement ----------------------------------------------------------------------------------
def _best_seconds(statement: str, globals_: dict, threads: int, min_run_time: float) -> float:
    from torch.utils.benchmark import Timer

    timer = Timer(stmt=statement, globals=globals_, num_threads=threads)
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return min(measurement.times)


def _peak_flops(threads: int, dtype: torch.dtype, min_run_time: float, repeats: int) -> tuple[float, str]:
    """(highest FLOP/s, the kernel that reached it) over torch's GEMM and, for fp32, ONNX Runtime's own kernels.

    A bound is only a bound on a runtime if the peak is at least what that runtime's kernels reach:
    torch's GEMM alone left ORT's convolutions (MLAS, NCHWc) beating the "bound" of compute-bound
    classics (benchmarks/results/roofline.md, 9/85 violations on ORT with the carm-v2 peaks).
    """
    best, probe = _torch_peak_flops(threads, dtype, min_run_time, repeats)
    if dtype == torch.float32:
        for rate, name in _onnxruntime_peak_flops(threads, min_run_time, repeats):
            if rate > best:
                best, probe = rate, name
    return best, probe


@dataclass(frozen=True)
class ConvProbe:
    """A chain of ``pairs`` x (conv C1->C2, conv C2->C1), each with bias + ReLU, as ORT runs a network.

    A chain keeps ORT's NCHWc layout between convolutions, so the two layout reorders at its ends
    are spread over many convolutions instead of charged to one (a single-conv probe times them
    as part of the conv and under-reports the rate ORT reaches inside a network).
    """

    label: str  # where the shape comes from
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    size: int  # square feature map
    groups: int = 1
    pairs: int = 3

    def layers(self) -> list[tuple[int, int]]:
        return [(self.in_channels, self.out_channels), (self.out_channels, self.in_channels)] * self.pairs

    @property
    def flops(self) -> int:
        """2 x MACs + bias add + ReLU per output element, the way our cost tables count a fused conv."""
        kh, kw = self.kernel
        return sum(2 * cout * self.size**2 * (cin // self.groups) * kh * kw + 2 * cout * self.size**2 for cin, cout in self.layers())

    @property
    def name(self) -> str:
        group = f" g{self.groups}" if self.groups > 1 else ""
        return f"Conv {self.kernel[0]}x{self.kernel[1]}{group} {self.in_channels}<->{self.out_channels} at {self.size}x{self.size} ({self.label})"


#: the shapes that carry most of the FLOPs of the networks ORT ran faster than the carm-v3 peak
#: allowed (roofline-carm-v3.md: googlenet, inception_v3, inception_resnet_v2, densenet121,
#: g_ghost_regnetx_160; shares of each network's conv FLOPs from ORT's profile node shapes)
ORT_CONV_PROBES: tuple[ConvProbe, ...] = (
    ConvProbe("ResNet stage", 128, 128, (3, 3), 56),
    ConvProbe("ResNet stage", 256, 256, (3, 3), 28),
    ConvProbe("ResNet bottleneck", 512, 512, (1, 1), 28),
    ConvProbe("googlenet stem, 23%", 64, 192, (3, 3), 56),
    ConvProbe("googlenet inception 3, 12%", 128, 192, (3, 3), 28),
    ConvProbe("googlenet inception 4", 160, 320, (3, 3), 14),
    ConvProbe("inception_v3 stem, 13%", 80, 192, (3, 3), 54),
    ConvProbe("inception_v3 mixed 6, 9%", 768, 192, (1, 1), 12),
    ConvProbe("inception_v3 / inception_resnet_v2 7x1", 192, 192, (7, 1), 12),
    ConvProbe("inception_resnet_v2 block 17, 19%", 384, 1088, (1, 1), 12),
    ConvProbe("densenet121 dense layer 3x3", 128, 32, (3, 3), 56),
    ConvProbe("densenet121 dense layer 1x1", 256, 128, (1, 1), 56),
    ConvProbe("g_ghost_regnetx_160 group conv, 10%", 256, 256, (3, 3), 56, groups=2),
    ConvProbe("g_ghost_regnetx_160 group conv, 8%", 384, 384, (3, 3), 14, groups=4),
)


def _conv_chain_model(probe: ConvProbe, rng) -> tuple[bytes, tuple[int, ...]]:
    """The ONNX model of ``probe``'s chain (opset 17) and its input shape."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    kh, kw = probe.kernel
    nodes, weights, tensor = [], [], "x"
    for index, (cin, cout) in enumerate(probe.layers()):
        scale = (cin // probe.groups * kh * kw) ** -0.5  # keeps activations O(1) along the chain
        weights.append(numpy_helper.from_array((rng.standard_normal((cout, cin // probe.groups, kh, kw)) * scale).astype(np.float32), f"w{index}"))
        weights.append(numpy_helper.from_array(np.full(cout, 0.01, np.float32), f"b{index}"))
        nodes.append(helper.make_node("Conv", [tensor, f"w{index}", f"b{index}"], [f"c{index}"], pads=[kh // 2, kw // 2, kh // 2, kw // 2], group=probe.groups))
        nodes.append(helper.make_node("Relu", [f"c{index}"], [f"r{index}"]))
        tensor = f"r{index}"
    shape = (1, probe.in_channels, probe.size, probe.size)
    graph = helper.make_graph(nodes, "peak", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)], initializer=weights)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    return model.SerializeToString(), shape


def _matmul_model(size: int, rng) -> tuple[bytes, tuple[int, ...]]:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(rng.standard_normal((size, size)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "peak", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=[weight])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    return model.SerializeToString(), (size, size)


def _onnxruntime_peak_flops(
    threads: int, min_run_time: float, repeats: int, probes: tuple[ConvProbe, ...] | None = None, matmul: int = 1024
) -> list[tuple[float, str]]:
    """FLOP/s of ONNX Runtime's fp32 GEMM and conv chains (:data:`ORT_CONV_PROBES`) at ``threads``; [] without onnxruntime.

    The compute peak must be the highest rate ORT reaches on the layer shapes networks run: with
    three single ResNet-like convs (carm-v3) ORT still ran googlenet, inception_v3/resnet_v2,
    densenet121 and g_ghost_regnetx_160 faster than their FLOPs at the peak allow, while its
    optimized graphs do the same arithmetic we count (within 0.5%, ORT profile node shapes).
    """
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return []
    import time

    rng = np.random.default_rng(0)
    cases = [(f"MatMul {matmul}", *_matmul_model(matmul, rng), 2 * matmul**3)] if matmul else []
    cases += [(probe.name, *_conv_chain_model(probe, rng), probe.flops) for probe in (ORT_CONV_PROBES if probes is None else probes)]
    results = []
    for name, model, input_shape, flops in cases:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as the ort runtime runs models
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception:  # an ORT build without this kernel: torch's GEMM stands
            continue
        feed = {"x": rng.standard_normal(input_shape).astype(np.float32)}
        session.run(None, feed)  # warm-up: layout transforms, thread pool
        fastest = math.inf
        for _ in range(repeats):
            runs, start = 0, time.perf_counter()
            while True:  # best single run inside a min_run_time window, as torch.utils.benchmark's min of blocks
                begin = time.perf_counter()
                session.run(None, feed)
                fastest = min(fastest, time.perf_counter() - begin)
                runs += 1
                if runs >= 3 and time.perf_counter() - start >= min_run_time:
                    break
        results.append((flops / fastest, f"onnxruntime {name}"))
    return results


def _torch_peak_flops(threads: int, dtype: torch.dtype, min_run_time: float, repeats: int) -> tuple[float, str]:
    best, probe = 0.0, ""
    for size in (512, 1024, 2048):
        if dtype == torch.int8:  # int8 x int8 -> int32 GEMM, where this torch build has one on CPU
            a = torch.randint(-64, 64, (size, size), dtype=torch.int8)
            b = torch.randint(-64, 64, (size, size), dtype=torch.int8)
            statement = "torch._int_mm(a, b)"
        else:
            a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
            statement = "torch.mm(a, b)"
        for _ in range(repeats):
            seconds = _best_seconds(statement, {"torch": torch, "a": a, "b": b}, threads, min_run_time)
            if 2 * size**3 / seconds > best:
                best, probe = 2 * size**3 / seconds, f"{statement.split('(')[0]} {size}"
    return best, probe


def _sweep_sizes(largest_bytes: float, memory_bytes: int) -> list[int]:
    """Working sets from 16 KiB, quadrupling, then one beyond twice the last cache (for DRAM); capped by RAM/8 and 1 GiB."""
    top = int(min(max(2 * largest_bytes, 64 * 2**20), memory_bytes / 8 if memory_bytes else 2**30, 2**30))
    sizes, size = [], 16 * 2**10
    while size < top:
        sizes.append(size)
        size *= 4
    return sizes + [top]


def _stream_rate(working_set: int, threads: int, min_run_time: float) -> float:
    """Highest bytes/s of two kernels over a ``working_set``-byte footprint: copy, and re-reading a cached row."""
    elements = max(working_set // 8, 256)  # copy: source + target = working set
    source = torch.empty(elements, dtype=torch.float32).uniform_()
    target = torch.empty_like(source)
    copy = 2 * elements * 4 / _best_seconds("target.copy_(source)", {"target": target, "source": source}, threads, min_run_time)
    # re-read: one buffer of the working set summed row by row many times in one call, so small
    # (L1/L2) working sets are not hidden behind per-call dispatch overhead
    row = torch.empty(max(working_set // 4, 256), dtype=torch.float32).uniform_()
    repeats = max(1, (32 * 2**20) // (row.numel() * 4))
    rows, out = row.expand(repeats, row.numel()), torch.empty(repeats)
    reread = repeats * row.numel() * 4 / _best_seconds("torch.sum(rows, 1, out=out)", {"torch": torch, "rows": rows, "out": out}, threads, min_run_time)
    return max(copy, reread)


def _measure_levels(threads: int, min_run_time: float, repeats: int) -> tuple[MemoryLevel, ...]:
    machine = machine_info()
    named = memory_levels(cache_levels(), threads, machine.logical_cpus)
    finite = [capacity for _, capacity in named if math.isfinite(capacity)]
    rates = {name: 0.0 for name, _ in named}
    for working_set in _sweep_sizes(finite[-1] if finite else 0, machine.memory_bytes):
        name = next(level for level, capacity in named if working_set <= capacity)
        for _ in range(repeats):
            rates[name] = max(rates[name], _stream_rate(working_set, threads, min_run_time))
    return _monotone_levels([(name, capacity, rates[name]) for name, capacity in named])


def _monotone_levels(measured: list[tuple[str, float, float]]) -> tuple[MemoryLevel, ...]:
    """A level is never slower than the one behind it; an unmeasured outer level (a cache larger than the sweep) gets the inner rate."""
    rates = [rate for _, _, rate in measured]
    for index in range(1, len(rates)):
        if rates[index] <= 0:
            rates[index] = rates[index - 1]
    result: list[MemoryLevel] = []
    outer_rate = 0.0
    for (name, capacity, _), rate in zip(reversed(measured), reversed(rates)):
        outer_rate = max(outer_rate, rate)
        result.append(MemoryLevel(name, capacity, outer_rate))
    return tuple(reversed(result))


def _measure(
    threads: int, dtype: torch.dtype, min_run_time: float, repeats: int = 2, between=lambda: None
) -> tuple[tuple[float, str], tuple[MemoryLevel, ...]]:
    """((peak FLOP/s for ``dtype``, its kernel), memory levels with their bandwidths), each the best of ``repeats``.

    ``between`` runs after the compute probe and before the memory sweep (the reference-network sample).
    """
    flops = _peak_flops(threads, dtype, min_run_time, repeats)
    between()
    return flops, _measure_levels(threads, min_run_time, repeats)


def _reference_ms(threads: int) -> float:
    """The reference network's median ms now (latency.contention), the machine-state yardstick of a probe."""
    from ..latency.contention import reference_ms

    return reference_ms(threads)


#: reference samples kept in a merged entry (the latest ones): enough to show the spread of a few re-probes
_KEPT_SAMPLES = 12


def _highest(new: DevicePeaks, old: DevicePeaks) -> DevicePeaks:
    """Every rate the higher of two probes of one machine: a re-probe on a busy machine cannot raise the bound.

    Probes in different machine states are compared in one state: both are moved to the faster
    probe's reference time (``at_reference``) before taking the higher rate, so the merged peaks
    bound every measurement at least as low as either probe alone would. A probe that records no
    reference cannot be placed in a state: against a referenced one it is dropped.
    """
    if [(lv.name, lv.capacity_bytes) for lv in new.levels] != [(lv.name, lv.capacity_bytes) for lv in old.levels]:
        return new  # the cache layout changed (another sysfs view): the old rates do not apply
    if (new.reference_ms is None) != (old.reference_ms is None):
        return new if new.reference_ms is not None else old
    reference = None
    if new.reference_ms is not None:
        reference = min(new.reference_ms, old.reference_ms)
        new, old = new.at_reference(reference), old.at_reference(reference)
    levels = tuple(replace(a, bytes_per_second=max(a.bytes_per_second, b.bytes_per_second)) for a, b in zip(new.levels, old.levels))
    return replace(
        new,
        flops_per_second=max(new.flops_per_second, old.flops_per_second),
        flops_probe=new.flops_probe if new.flops_per_second >= old.flops_per_second else old.flops_probe,
        bytes_per_second=max(new.bytes_per_second, old.bytes_per_second),
        levels=levels,
        contended=new.contended and old.contended,
        reference_ms=reference,
        reference_samples_ms=(old.reference_samples_ms + new.reference_samples_ms)[-_KEPT_SAMPLES:],
    )


def _load_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _previous_version(cache: dict, prefix: str) -> DevicePeaks | None:
    """The entry an older cache version holds for this machine, thread count and dtype, if any.

    A new version changes how a rate is probed (v3: the compute peak also tries ONNX Runtime's
    kernels), not what was observed: the old rates stay valid lower estimates of the peaks, so the
    re-probe keeps the higher of old and new for each (``_highest``) instead of forgetting them.
    """
    for version in _PREVIOUS_VERSIONS:
        try:
            peaks = DevicePeaks.from_dict(cache[f"{prefix}/{version}"])
        except (KeyError, TypeError, ValueError):
            continue
        if peaks.reference_ms is not None:  # a rate with no machine state cannot be merged with one that has one
            return peaks
    return None


def device_peaks(
    threads: int | None = None, dtype: torch.dtype = torch.float32, refresh: bool = False, min_run_time: float = 0.03
) -> DevicePeaks:
    """Peak compute and per-level bandwidth of this machine at ``threads`` (default: torch's current count)."""
    threads = threads or torch.get_num_threads()
    fingerprint = machine_info().fingerprint
    dtype_name = str(dtype).replace("torch.", "")
    key = f"{fingerprint}/threads={threads}/{dtype_name}/{_CACHE_VERSION}"
    path = cache_path()
    cache = _load_cache(path)
    earlier = None
    if key in cache:
        try:
            earlier = DevicePeaks.from_dict(cache[key])
        except (TypeError, ValueError, KeyError):  # a hand-edited or stale entry: measure again
            earlier = None
    if earlier is not None and not refresh:
        return earlier
    if earlier is None:  # measured before the compute probe changed: its rates are still rates this machine reached
        earlier = _previous_version(cache, f"{fingerprint}/threads={threads}/{dtype_name}")
    from ..latency.contention import watch

    samples: list[float] = []

    def sample() -> None:  # probe, reference, probe: the machine state of each sweep
        samples.append(_reference_ms(threads))

    with watch(threads, reference=False) as load:
        sample()
        (flops, probe), levels = _measure(threads, dtype, min_run_time, between=sample)
        sample()
    dram = levels[-1].bytes_per_second if levels else 0.0
    peaks = DevicePeaks(
        flops, dram, threads, dtype_name, fingerprint, levels=levels, contended=bool(load and load[0].contended), flops_probe=probe,
        reference_ms=max(samples), reference_samples_ms=tuple(samples),
    )  # fmt: skip
    if earlier is not None:
        peaks = _highest(peaks, earlier)
    cache[key] = peaks.to_dict()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(cache, indent=2))
    except OSError:  # an unwritable cache must not lose the measurement
        pass
    return peaks
