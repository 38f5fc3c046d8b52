"""Per-layer time, mapped back to module paths: PyTorch profiler (eager) or ONNX Runtime profiling.

Both report, for every module path of the PyTorch model (``"stages.1.0.depthwise"``), the time
spent in it including its sub-modules (``total_ms``) and excluding them (``self_ms``), averaged
over ``runs`` calls. Eager wraps every module in a profiler range; ONNX Runtime node names carry
the exporter's module scope (``/stages/stages.1/stages.1.0/depthwise/conv/Conv``), which is parsed
back into the dotted path. ORT fuses operations (Conv + activation), so a fused kernel is charged
to the module of the node it was named after; time that belongs to no module (layout reorders)
is reported under ``"(runtime)"``. These are profiled times: use them to compare layers, and
:func:`edgevision.latency` for end-to-end latency.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .errors import MeasurementError

__all__ = ["LayerTime", "layer_times", "onnx_node_module_path"]

_RANGE_PREFIX = "edgevision.module::"
ROOT = "(model)"
UNMAPPED = "(runtime)"


@dataclass(frozen=True)
class LayerTime:
    path: str  # dotted module path; "(model)" for the whole network, "(runtime)" for unmapped work
    self_ms: float  # per call, excluding sub-modules
    total_ms: float  # per call, including sub-modules
    ops: tuple[str, ...] = ()  # ONNX op types charged to this path (ort only)


def onnx_node_module_path(node_name: str) -> str | None:
    """'/stages/stages.1/stages.1.0/depthwise/conv/Conv' -> 'stages.1.0.depthwise.conv'; None if unscoped."""
    if not node_name.startswith("/"):
        return None
    segments = node_name.strip("/").split("/")[:-1]  # the last segment is the operation
    path: list[str] = []
    for segment in segments:
        # a scope is dotted relative to an ancestor: "/stages/stages.1/stages.1.0/depthwise" and
        # "/head/hidden/hidden.0": its leading parts repeat the tail of the path so far
        parts = segment.split(".")
        overlap = next(k for k in range(len(path) + 1) if path[k:] == parts[:-1] or k == len(path))
        path = path[:overlap] + parts if path[overlap:] == parts[:-1] else path + parts
    return ".".join(path) or None


def _with_totals(self_ms: dict[str, float], ops: dict[str, set[str]] | None = None) -> list[LayerTime]:
    total: dict[str, float] = defaultdict(float)
    for path, value in self_ms.items():
        total[ROOT] += value
        if path in (ROOT, UNMAPPED):
            continue
        parts = path.split(".")
        for end in range(1, len(parts) + 1):
            total[".".join(parts[:end])] += value
    paths = sorted(set(total) | set(self_ms), key=lambda p: (p != ROOT, p))
    return [
        LayerTime(path, self_ms.get(path, 0.0), total.get(path, self_ms.get(path, 0.0)), tuple(sorted((ops or {}).get(path, ()))))
        for path in paths
    ]


def _eager_layer_times(model: nn.Module, x: torch.Tensor, runs: int) -> list[LayerTime]:
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    stack: list[record_function] = []
    handles = []
    for path, module in model.named_modules():
        name = _RANGE_PREFIX + (path or ROOT)

        def enter(module, args, name=name):
            stack.append(record_function(name))
            stack[-1].__enter__()

        def leave(module, args, output):
            stack.pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    try:
        with torch.inference_mode():
            model(x)  # warm-up outside the profile
            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                for _ in range(runs):
                    model(x)
    finally:
        for handle in handles:
            handle.remove()
    inclusive = {
        event.key[len(_RANGE_PREFIX) :]: event.cpu_time_total / 1e3 / runs
        for event in profiler.key_averages()
        if event.key.startswith(_RANGE_PREFIX)
    }
    # self time = inclusive time minus that of the direct children
    self_ms = dict(inclusive)
    for path, value in inclusive.items():
        if path == ROOT:
            continue
        parent = path.rsplit(".", 1)[0] if "." in path else ROOT
        while parent not in inclusive and parent != ROOT:
            parent = parent.rsplit(".", 1)[0] if "." in parent else ROOT
        if parent in self_ms:
            self_ms[parent] -= value
    layers = {path: max(value, 0.0) for path, value in self_ms.items()}
    return [LayerTime(p, layers[p], inclusive[p]) for p in sorted(inclusive, key=lambda p: (p != ROOT, p))]


def _ort_layer_times(model: nn.Module | Path, x: torch.Tensor, runs: int, threads: int) -> list[LayerTime]:
    from .runtimes import OrtRuntime, _as_onnx

    runtime = OrtRuntime(threads)
    runtime.check_available()
    with _as_onnx(model, x) as path, tempfile.TemporaryDirectory(prefix="edgevision-profile-") as directory:
        session = runtime.session(path, profile_prefix=str(Path(directory) / "ort"))
        feed = {session.get_inputs()[0].name: x.numpy()}
        session.run(None, feed)  # warm-up (profiled too; subtracted below by counting runs)
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    self_us: dict[str, float] = defaultdict(float)
    ops: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        node = event["name"][: -len("_kernel_time")]
        path = onnx_node_module_path(node) or UNMAPPED
        self_us[path] += event["dur"]
        ops[path].add(event.get("args", {}).get("op_name", "?"))
    calls = runs + 1
    return _with_totals({path: value / 1e3 / calls for path, value in self_us.items()}, ops)


def layer_times(
    model: nn.Module | str | Path,
    input_shape: Sequence[int] | None = None,
    runtime: str = "eager",
    threads: int | None = None,
    *,
    deploy: bool = False,
    runs: int = 10,
    seed: int = 0,
) -> list[LayerTime]:
    """Per-module time of ``model`` on ``runtime`` ("eager" or "ort"), the whole model first."""
    from ..machine import machine_info
    from .engine import _example_shape, load_model

    if runtime not in ("eager", "ort"):
        raise MeasurementError(f"per-layer timing supports runtimes 'eager' and 'ort', not {runtime!r}")
    if runs < 1:
        raise MeasurementError(f"runs must be >= 1, got {runs}")
    loaded, _, _ = load_model(model, deploy)
    x = torch.randn(_example_shape(loaded, input_shape, None), generator=torch.Generator().manual_seed(seed))
    threads = machine_info().physical_cores if threads is None else threads
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if runtime == "ort":
            return _ort_layer_times(loaded, x, runs, threads)
        if isinstance(loaded, Path):
            raise MeasurementError("per-layer timing of an ONNX file needs runtime 'ort'")
        return _eager_layer_times(loaded, x, runs)
    finally:
        torch.set_num_threads(previous)
