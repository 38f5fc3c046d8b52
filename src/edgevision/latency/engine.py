"""``measure()``: one model, one runtime, one input shape -> a :class:`LatencyResult` with its context.

Resolves what the user gave (a registered name, an ``nn.Module`` or an ``.onnx`` path), builds
the input, prepares the runtime adapter with an explicit thread count, runs the protocol
(:mod:`.protocol`) and stamps the statistics with the machine and software they were measured on.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .errors import MeasurementError, first_line
from .protocol import MeasurementPlan, collect_samples
from .result import LatencyResult, MeasurementContext
from .runtimes import get_runtime
from .statistics import summarize

__all__ = ["measure", "load_model"]


def _onnx_input_shape(path: Path) -> tuple[int | None, ...]:
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
        dims = graph.input[0].type.tensor_type.shape.dim
    except Exception as error:  # DecodeError, IndexError: not a usable ONNX model
        raise MeasurementError(
            f"cannot load ONNX file {str(path)!r}: {first_line(error)}; re-export it with `edgevision export MODEL {path}`"
        ) from None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


_INTEGER_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear"}


def _compute_dtype(model) -> str:
    """What the measured graph computes in: "int8" for a quantized ONNX graph (QDQ or QLinear/Integer operators),
    "float16" for a half-precision one, else "float32" (modules are measured in fp32)."""
    if not isinstance(model, Path):
        return "float32"
    import onnx

    try:
        graph = onnx.load(str(model), load_external_data=False).graph
    except Exception:  # unreadable files were refused before timing; keep the record's default
        return "float32"
    if any(node.op_type in _INTEGER_OPS for node in graph.node):
        return "int8"
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.initializer):
        return "float16"
    return "float32"


def load_model(model: nn.Module | str | Path, deploy: bool = False) -> tuple[nn.Module | Path, str, str]:
    """(model or ONNX path, display name, form) from a module, a registered name or an .onnx path."""
    from ..registry import create_model
    from ..reparam import is_deploy_form, reparameterize

    if isinstance(model, (str, Path)) and str(model).endswith(".onnx"):
        path = Path(model)
        if not path.is_file():
            raise MeasurementError(f"ONNX file {str(path)!r} does not exist; create it with `edgevision export MODEL {path}`")
        return path, str(path), "onnx"
    if isinstance(model, str):
        name = model
        model = create_model(model)  # UnknownModelError (a ValueError) names close matches
    elif isinstance(model, nn.Module):
        name = getattr(getattr(model, "spec", None), "name", None) or type(model).__name__
    else:
        raise TypeError(f"measure() needs an nn.Module, a registered model name or an .onnx path, got {type(model).__name__}")
    if deploy:
        return reparameterize(model), name, "deploy"
    model = copy.deepcopy(model).eval()  # measured in eval mode without touching the caller's module
    return model, name, "deploy" if is_deploy_form(model) else "train"


def _example_shape(model: nn.Module | Path, input_shape: Sequence[int] | None, batch: int | None) -> tuple[int, ...]:
    from ..export import input_shape_of

    if isinstance(model, Path):
        static = _onnx_input_shape(model)
        if input_shape is None:
            if len(static) != 4 or any(d is None for d in static[1:]):
                raise MeasurementError(f"{str(model)!r} has no fixed CxHxW input; give the shape, e.g. --input 3x224x224")
            input_shape = static[1:]
        shape = input_shape_of(nn.Identity(), input_shape, batch)
        fixed = [(axis, want) for axis, want in enumerate(static) if want is not None and want != shape[axis]] if len(static) == 4 else []
        if len(static) != 4 or fixed:
            expected = "x".join("N" if d is None else str(d) for d in static)
            raise MeasurementError(f"{str(model)!r} takes input {expected}, not {'x'.join(map(str, shape))}; pass a matching --input")
        return shape
    try:
        return input_shape_of(model, input_shape, batch)
    except ValueError as error:
        raise MeasurementError(str(error)) from None


def _reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (Linux ``clear_refs``); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def measure(
    model: nn.Module | str | Path,
    input_shape: Sequence[int] | None = None,
    runtime: str = "ort",
    threads: int | None = None,
    batch: int | None = None,
    *,
    deploy: bool = False,
    channels_last: bool = False,
    cuda_graphs: bool = False,
    plan: MeasurementPlan | None = None,
    time_budget_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    seed: int = 0,
    watch_machine: bool = True,
    quiet_wait_s: float | None = None,
) -> LatencyResult:
    """Measure per-call latency of ``model`` on ``runtime``.

    ``model`` is an ``nn.Module``, a registered name or a path to an ``.onnx`` file (ort/openvino).
    ``input_shape`` is (C, H, W) or (N, C, H, W) (default: the model's spec); ``batch`` defaults to 1.
    ``deploy=True`` re-parameterizes first. ``threads`` defaults to the physical core count and is
    recorded either way. The protocol (``plan``) warms up, then repeats until the 95% CI of the median
    is within 2% or ``time_budget_s`` runs out (then ``result.noisy`` is True).

    ``watch_machine`` samples /proc and times a reference network before and after
    (:mod:`.contention`); a contended measurement is flagged (``result.contended``) and, when
    ``quiet_wait_s`` > 0 (default: ``$EDGEVISION_QUIET_WAIT_S`` or 10 s, at most 120 s per process),
    re-measured once the machine has quietened within that wait (``result.remeasured``).
    """
    from .contention import default_quiet_wait_s, wait_within_budget

    arguments = dict(
        input_shape=input_shape, runtime=runtime, threads=threads, batch=batch, deploy=deploy, channels_last=channels_last,
        cuda_graphs=cuda_graphs, plan=plan, time_budget_s=time_budget_s, clock=clock, seed=seed, watch_machine=watch_machine,
    )  # fmt: skip
    result = _measure_once(model, **arguments)
    wait = default_quiet_wait_s() if quiet_wait_s is None else quiet_wait_s
    if result.contended and wait > 0 and wait_within_budget(wait):  # still busy after waiting: keep the flagged result
        from dataclasses import replace

        result = replace(_measure_once(model, **arguments), remeasured=True)
    return result


def _measure_once(
    model, input_shape, runtime, threads, batch, *, deploy, channels_last, cuda_graphs, plan, time_budget_s, clock, seed, watch_machine
) -> LatencyResult:
    from ..machine import machine_info

    runtime_class = get_runtime(runtime)
    runtime_class.check_available()
    if plan is None:
        plan = MeasurementPlan()
    if time_budget_s is not None:
        from dataclasses import replace

        plan = replace(plan, time_budget_s=time_budget_s)
    machine = machine_info()
    threads = machine.physical_cores if threads is None else threads
    adapter = runtime_class(threads, channels_last=channels_last, cuda_graphs=cuda_graphs)
    loaded, name, form = load_model(model, deploy)
    shape = _example_shape(loaded, input_shape, batch)
    example = torch.randn(shape, generator=torch.Generator().manual_seed(seed))

    from .contention import watch

    with adapter.prepared(loaded, example) as call:
        rss_visible = _reset_peak_rss()
        with watch(threads, reference=watch_machine) if watch_machine else contextlib.nullcontext([]) as load:
            samples = collect_samples(call, plan, clock)
        peak = _peak_rss_bytes() if rss_visible else None
        if runtime == "cuda":
            peak, kind = torch.cuda.max_memory_allocated(), "CUDA memory allocated by torch (peak)"
        else:
            kind = "process RSS high-water mark while measuring" if peak is not None else None

    context = MeasurementContext(
        model=name,
        model_form=form,
        runtime=runtime,
        runtime_versions=adapter.versions(),
        runtime_options=adapter.options(),
        threads=threads,
        dtype=_compute_dtype(loaded),
        input_shape=shape,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        cpu_model=machine.cpu_model,
        logical_cpus=machine.logical_cpus,
        physical_cores=machine.physical_cores,
        system=machine.system,
        fingerprint=machine.fingerprint,
    )
    return LatencyResult.from_summary(
        summarize(samples.latencies_s, plan.confidence),
        context=context,
        warmup_runs=samples.warmup_runs,
        peak_memory_bytes=peak,
        peak_memory_kind=kind,
        stop_reason=samples.stop_reason,
        noisy=samples.noisy,
        target_precision=plan.target_precision,
        latencies_ms=tuple(t * 1e3 for t in samples.latencies_s),
        contended=bool(load and load[0].contended),
        machine_load=load[0].to_dict() if load else None,
    )
