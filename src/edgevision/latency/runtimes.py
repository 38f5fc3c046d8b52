"""Runtimes behind one interface: each adapter turns a model and an input into a blocking call to time.

An adapter knows how to check that its runtime is installed (with an install hint naming the
extra), which versions to record, and how to prepare a ready-to-run call with an explicit thread
count. Preparation (compilation, session creation, export) happens outside the timed region.

=========  ==========================================================================
eager      PyTorch eager, fp32, optional channels_last memory format
compile    ``torch.compile`` with the inductor backend on CPU
ort        ONNX Runtime CPU execution provider, all graph optimizations, intra-op threads set
openvino   OpenVINO CPU plugin (``pip install edgevision[openvino]``), fp32, latency hint
cuda       PyTorch eager on a CUDA GPU, optionally replayed as a CUDA graph
=========  ==========================================================================
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import tempfile
from pathlib import Path
from typing import Callable, ClassVar, Iterator

import torch
from torch import nn

from .errors import MeasurementError, RuntimeNotAvailable, first_line

__all__ = ["RUNTIMES", "Runtime", "get_runtime", "available_runtimes"]

Call = Callable[[], object]


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _require(module: str, message: str) -> None:
    """Import ``module`` or raise RuntimeNotAvailable with ``message`` (which says what to install)."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise RuntimeNotAvailable(message) from None


class Runtime:
    """One runtime. Subclasses set ``name``/``packages`` and implement :meth:`_prepare`."""

    name: ClassVar[str]
    packages: ClassVar[tuple[str, ...]] = ("torch",)  # versions recorded with every result
    accepts_onnx: ClassVar[bool] = False  # can run an .onnx file directly
    install_hint: ClassVar[str] = ""

    def __init__(self, threads: int, channels_last: bool = False, cuda_graphs: bool = False) -> None:
        if threads < 1:
            raise MeasurementError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.channels_last = channels_last
        self.cuda_graphs = cuda_graphs

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`RuntimeNotAvailable` naming what to install when the runtime is missing."""

    @classmethod
    def is_available(cls) -> bool:
        try:
            cls.check_available()
        except RuntimeNotAvailable:
            return False
        return True

    def versions(self) -> dict[str, str]:
        return {package: _version(package) for package in self.packages}

    def options(self) -> dict[str, object]:
        return {}

    @contextlib.contextmanager
    def prepared(self, model: nn.Module | Path, example: torch.Tensor) -> Iterator[Call]:
        """A call that runs ``model`` on ``example`` to completion; runs once here to check it works."""
        self.check_available()
        if isinstance(model, Path) and not self.accepts_onnx:
            raise MeasurementError(
                f"runtime {self.name!r} runs PyTorch models, not ONNX files; give a model name or use --runtime ort"
            )
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with self._prepare(model, example) as call:
                try:
                    call()
                except Exception as error:  # the first run is where a wrong shape shows up
                    shape = "x".join(map(str, example.shape))
                    raise MeasurementError(f"the model cannot take input shape {shape} on {self.name}: {first_line(error)}") from None
                yield call
        finally:
            torch.set_num_threads(previous_threads)

    def _prepare(self, model: nn.Module | Path, example: torch.Tensor) -> contextlib.AbstractContextManager[Call]:
        raise NotImplementedError


class EagerRuntime(Runtime):
    name = "eager"

    def options(self) -> dict[str, object]:
        return {"channels_last": self.channels_last}

    @contextlib.contextmanager
    def _prepare(self, model, example):
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        model = model.eval().to(memory_format=memory_format)
        x = example.contiguous(memory_format=memory_format)

        @torch.inference_mode()
        def call():
            return model(x)

        yield call


class CompileRuntime(EagerRuntime):
    name = "compile"

    def options(self) -> dict[str, object]:
        return {"channels_last": self.channels_last, "backend": "inductor"}

    @contextlib.contextmanager
    def _prepare(self, model, example):
        import torch._dynamo

        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        compiled = torch.compile(model.eval().to(memory_format=memory_format), backend="inductor", dynamic=False)
        x = example.contiguous(memory_format=memory_format)

        @torch.inference_mode()
        def call():
            return compiled(x)

        try:
            yield call
        finally:
            torch._dynamo.reset()  # drop compiled graphs so the next measurement starts clean


class OrtRuntime(Runtime):
    name = "ort"
    packages = ("onnxruntime", "onnx", "torch")
    accepts_onnx = True

    @classmethod
    def check_available(cls) -> None:
        _require("onnxruntime", "runtime 'ort' needs onnxruntime; install it with `pip install onnxruntime`")

    def options(self) -> dict[str, object]:
        return {"graph_optimization": "all", "execution_mode": "sequential", "inter_op_threads": 1}

    def session(self, path: Path, profile_prefix: str | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        if profile_prefix is not None:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        try:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise MeasurementError(
                f"cannot load ONNX file {str(path)!r}: {first_line(error)}; re-export it with `edgevision export MODEL {path}`"
            ) from None

    @contextlib.contextmanager
    def _prepare(self, model, example):
        with _as_onnx(model, example) as path:
            session = self.session(path)
            feed = {session.get_inputs()[0].name: example.numpy()}
            yield lambda: session.run(None, feed)


class OpenVinoRuntime(Runtime):
    name = "openvino"
    packages = ("openvino", "onnx", "torch")
    accepts_onnx = True

    @classmethod
    def check_available(cls) -> None:
        _require("openvino", "runtime 'openvino' needs the optional extra; install it with `pip install 'edgevision[openvino]'`")

    def options(self) -> dict[str, object]:
        return {"performance_hint": "LATENCY", "inference_precision": "f32"}

    @contextlib.contextmanager
    def _prepare(self, model, example):
        import openvino as ov

        with _as_onnx(model, example) as path:
            config = {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
            try:
                compiled = ov.Core().compile_model(str(path), "CPU", config)
            except Exception as error:
                raise MeasurementError(f"OpenVINO cannot load {str(path)!r}: {first_line(error)}") from None
            request = compiled.create_infer_request()
            x = example.numpy()
            yield lambda: request.infer({0: x})


class CudaRuntime(Runtime):
    name = "cuda"

    @classmethod
    def check_available(cls) -> None:
        if not torch.cuda.is_available():
            raise RuntimeNotAvailable("runtime 'cuda' needs a CUDA GPU and a CUDA build of torch; none is visible here")

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "cuda": str(torch.version.cuda), "gpu": torch.cuda.get_device_name()}

    def options(self) -> dict[str, object]:
        return {"channels_last": self.channels_last, "cuda_graphs": self.cuda_graphs}

    @contextlib.contextmanager
    def _prepare(self, model, example):
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        model = model.eval().to("cuda", memory_format=memory_format)
        x = example.to("cuda").contiguous(memory_format=memory_format)
        torch.cuda.reset_peak_memory_stats()
        if self.cuda_graphs:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(3):  # warm up on a side stream before capture, as the CUDA graphs docs require
                    model(x)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                model(x)

            def call():
                graph.replay()
                torch.cuda.synchronize()
        else:

            @torch.inference_mode()
            def call():
                model(x)
                torch.cuda.synchronize()

        yield call


@contextlib.contextmanager
def _as_onnx(model: nn.Module | Path, example: torch.Tensor) -> Iterator[Path]:
    """An ONNX file of ``model``: the given path, or a verified export to a temporary directory."""
    if isinstance(model, Path):
        yield model
        return
    from ..export import ExportError, export_onnx

    with tempfile.TemporaryDirectory(prefix="edgevision-") as directory:
        path = Path(directory) / "model.onnx"
        try:  # the model is measured in the form it was given (the caller re-parameterized it or not)
            export_onnx(model, path, tuple(example.shape), deploy=False, dynamic_batch=False)
        except ExportError as error:
            raise MeasurementError(str(error)) from None
        yield path


RUNTIMES: dict[str, type[Runtime]] = {
    runtime.name: runtime for runtime in (EagerRuntime, CompileRuntime, OrtRuntime, OpenVinoRuntime, CudaRuntime)
}


def get_runtime(name: str) -> type[Runtime]:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise MeasurementError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}") from None


def available_runtimes() -> list[str]:
    return [name for name, runtime in RUNTIMES.items() if runtime.is_available()]
