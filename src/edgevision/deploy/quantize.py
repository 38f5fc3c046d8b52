"""Static post-training INT8 quantization to a QDQ ONNX graph that ONNX Runtime runs in integer kernels.

``quantize(model_or_onnx, calibration)`` exports the model (deploy form, verified), calibrates
activation ranges on preprocessed images (min/max, entropy (KL) or percentile), quantizes weights
per output channel and writes ``QuantizeLinear``/``DequantizeLinear`` pairs around every
quantizable node (ONNX Runtime's ``quantize_static`` with ``QuantFormat.QDQ``, the format its CPU
kernels are optimised for since 1.11). ORT then fuses ``DQ -> Conv -> Q`` into ``QLinearConv``.
Activation/weight types and ``reduce_range`` default to what this CPU's instructions want
(:func:`~edgevision.deploy.isa.machine_scheme`). Nodes listed in ``keep_float`` stay in fp32:
that is how :mod:`~edgevision.deploy.mixed` builds mixed-precision graphs. Calibration ranges can
be cached to a file, so many mixed-precision variants share one calibration pass.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .calibration import CalibrationError, ImageSet, check_images
from .isa import SCHEMES, QuantScheme, machine_scheme

__all__ = ["QuantizeError", "QuantizeReport", "CALIBRATION_METHODS", "quantize", "onnx_input_shape", "load_onnx_model", "count_qdq"]

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")


class QuantizeError(ValueError):
    """The model or its options cannot be quantized; the message says why and what to do."""


@dataclass(frozen=True)
class QuantizeReport:
    path: str
    float_path: str  # the fp32 graph that was quantized
    scheme: QuantScheme
    method: str
    per_channel: bool
    calibration_images: int
    calibration_source: str
    quantize_linear_nodes: int
    dequantize_linear_nodes: int
    kept_float: tuple[str, ...] = field(default=())  # node names left in fp32

    def to_dict(self) -> dict:
        return {**asdict(self), "scheme": self.scheme.to_dict(), "kept_float": list(self.kept_float)}


def load_onnx_model(path: str | os.PathLike):
    """``onnx.ModelProto`` from ``path``, or a QuantizeError saying the file is not a usable model."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise QuantizeError(f"ONNX file {str(path)!r} does not exist; create it with `edgevision export MODEL {path}`")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:  # DecodeError, ValidationError: not an ONNX model
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise QuantizeError(f"{str(path)!r} is not a valid ONNX model ({message}); re-export it with `edgevision export MODEL {path}`") from None
    if not model.graph.node or not model.graph.input:
        raise QuantizeError(f"{str(path)!r} is not a valid ONNX model (its graph has no nodes or no inputs)")
    return model


def onnx_input_shape(path: str | os.PathLike, fill: Sequence[int] | None = None) -> tuple[int, int, int]:
    """(C, H, W) of the first input of an image model; a QuantizeError when it is not fixed. ``fill`` (C, H, W)
    stands in for free dimensions: a dynamic-size graph (SR, depth) is calibrated on images of that size."""
    model = load_onnx_model(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    if fill is not None and len(shape) == 4:
        shape = (shape[0], *(int(given) if dim is None else dim for dim, given in zip(shape[1:], fill)))
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise QuantizeError(f"{str(path)!r} has input {shape}, not a fixed Nx C x H x W image input; re-export it with a fixed input size")
    return shape[1], shape[2], shape[3]


def count_qdq(path: str | os.PathLike) -> tuple[int, int]:
    import onnx

    ops = [node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node]
    return ops.count("QuantizeLinear"), ops.count("DequantizeLinear")


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over a float tensor, in batches."""

    def __init__(self, input_name: str, images: torch.Tensor, batch: int = 16) -> None:
        self.batches = [images[i : i + batch].numpy().astype(np.float32) for i in range(0, images.shape[0], batch)]
        self.input_name = input_name
        self.position = 0

    def get_next(self):
        if self.position >= len(self.batches):
            return None
        self.position += 1
        return {self.input_name: self.batches[self.position - 1]}

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:  # used by ORT's strided calibration only
        self.batches = self.batches[start_index:end_index]
        self.position = 0


def _calibration_images(calibration, input_shape: Sequence[int], count: int, seed: int) -> tuple[torch.Tensor, str]:
    if isinstance(calibration, ImageSet):
        return check_images(calibration.images, input_shape), calibration.source
    if isinstance(calibration, torch.Tensor):
        return check_images(calibration, input_shape), f"tensor of {calibration.shape[0]} images"
    from ..datasets import DataSplits

    if isinstance(calibration, (str, DataSplits)):
        from .calibration import deploy_splits

        splits = deploy_splits(calibration, input_shape, calibration=count, search=0, verification=1, seed=seed)
        return splits.calibration.images, splits.calibration.source
    raise CalibrationError(f"calibration must be a dataset name (e.g. 'default'), an ImageSet or a tensor, got {type(calibration).__name__}")


def _scheme(scheme: QuantScheme | str | None) -> QuantScheme:
    if scheme is None:
        return machine_scheme()
    if isinstance(scheme, QuantScheme):
        return scheme
    if scheme == "machine":
        return machine_scheme()
    if scheme not in SCHEMES:
        raise QuantizeError(f"unknown INT8 scheme {scheme!r}; choose machine, {', '.join(SCHEMES)}")
    return SCHEMES[scheme]


@contextlib.contextmanager
def _float_onnx(model: nn.Module | str | os.PathLike, input_shape: Sequence[int] | None) -> Iterator[Path]:
    if isinstance(model, nn.Module):
        from ..export import ExportError, export_onnx

        with tempfile.TemporaryDirectory(prefix="edgevision-quant-") as directory:
            path = Path(directory) / "model.fp32.onnx"
            try:
                export_onnx(model, path, input_shape, deploy=True)
            except ExportError as error:
                raise QuantizeError(str(error)) from None
            yield path
        return
    path = Path(model)
    load_onnx_model(path)
    yield path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence ORT's calibrator progress prints and its root-logger advice while it quantizes."""
    import io
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _pre_process(path: Path, prepared: Path) -> Path:
    """ORT's recommended pre-processing (shape inference), with every node named.

    ORT's graph optimisation step is skipped: it splits HardSwish into unnamed HardSigmoid + Mul
    nodes, and unnamed nodes cannot be kept in float by name. Nodes the exporter left unnamed are
    named after their first output (``/stem/stem.0/act/HardSwish_output_0``), which carries the
    module scope. Falls back to the input when ORT cannot process the model.
    """
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(path), str(prepared), skip_optimization=True, skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
    except Exception:  # pre-processing only helps; a model it cannot handle is quantized as exported
        return path
    names = {node.name for node in model.graph.node}
    for index, node in enumerate(model.graph.node):
        if not node.name:
            candidate = node.output[0] if node.output and node.output[0] not in names else f"{node.op_type}_{index}"
            node.name = candidate
            names.add(candidate)
    onnx.save(model, str(prepared))
    return prepared


def quantize(
    model_or_onnx: nn.Module | str | os.PathLike,
    calibration: ImageSet | torch.Tensor | str = "default",
    output: str | os.PathLike | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    method: str = "minmax",
    scheme: QuantScheme | str | None = None,
    per_channel: bool = True,
    keep_float: Sequence[str] = (),
    calibration_count: int = 64,
    calibration_cache: str | os.PathLike | None = None,
    percentile: float = 99.999,
    activation_ranges: dict[str, tuple[float, float]] | None = None,
    seed: int = 0,
) -> QuantizeReport:
    """Write an INT8 QDQ ONNX graph of ``model_or_onnx`` (an ``nn.Module`` or an ``.onnx`` path) to ``output``.

    ``calibration`` is a dataset name (``"default"`` = the embedded MNIST; same forms as ``train
    --data``), an :class:`ImageSet` or a preprocessed float tensor (N, C, H, W) at the model's input
    size. ``method`` is ``minmax``, ``entropy`` or ``percentile``; ``scheme`` is ``None``/``"machine"``
    (this CPU's best, see :mod:`.isa`) or one of ``u8s8_rr``, ``u8s8``, ``s8s8``, ``u8u8``.
    ``keep_float`` names ONNX nodes left in fp32. ``activation_ranges`` (tensor name -> (min, max)) fixes
    those tensors' ranges instead of calibrating them (QAT's learned ranges). Returns a :class:`QuantizeReport`.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from ..atomic import atomic_path

    if method not in CALIBRATION_METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; choose one of {', '.join(CALIBRATION_METHODS)}")
    chosen = _scheme(scheme)
    if isinstance(model_or_onnx, nn.Module) and input_shape is None:
        from ..export import input_shape_of

        input_shape = input_shape_of(model_or_onnx, None)[1:]
    with _float_onnx(model_or_onnx, input_shape) as float_path:
        # a graph with a free H x W is calibrated at the size of the images given; ranges are per tensor, not per pixel,
        # so one graph serves every size (callers check the metric at the sizes they run)
        given = calibration.images if isinstance(calibration, ImageSet) else calibration
        shape = onnx_input_shape(float_path, fill=tuple(given.shape[1:]) if isinstance(given, torch.Tensor) and given.dim() == 4 else None)
        images, source = _calibration_images(calibration, shape, calibration_count, seed)
        if output is None:
            output = Path(float_path).with_suffix(".int8.onnx") if not isinstance(model_or_onnx, nn.Module) else Path("model.int8.onnx")
        types = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
        methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
        extra: dict = {"CalibPercentile": percentile} if method == "percentile" else {}
        if activation_ranges:
            extra["TensorQuantOverrides"] = {
                name: [{"rmin": np.array(min(low, 0.0), dtype=np.float32), "rmax": np.array(max(high, 0.0), dtype=np.float32)}]
                for name, (low, high) in activation_ranges.items()
            }
        import onnx

        input_name = onnx.load(str(float_path), load_external_data=False).graph.input[0].name
        with atomic_path(output) as temporary, tempfile.TemporaryDirectory(prefix="edgevision-quant-") as scratch, _quiet():
            try:
                prepared = _pre_process(Path(float_path), Path(scratch) / "prepared.onnx")
                quantize_static(
                    str(prepared),
                    str(temporary),
                    _Reader(input_name, images),
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    reduce_range=chosen.reduce_range,
                    activation_type=types[chosen.activation_type],
                    weight_type=types[chosen.weight_type],
                    nodes_to_exclude=list(keep_float),
                    calibrate_method=methods[method],
                    extra_options=extra,
                    calibration_cache_path=calibration_cache,
                )
            except Exception as error:
                raise QuantizeError(f"ONNX Runtime could not quantize {str(float_path)!r}: {str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
        quantize_nodes, dequantize_nodes = count_qdq(output)
        return QuantizeReport(
            path=os.fspath(output),
            float_path=os.fspath(float_path),
            scheme=chosen,
            method=method,
            per_channel=per_channel,
            calibration_images=int(images.shape[0]),
            calibration_source=source,
            quantize_linear_nodes=quantize_nodes,
            dequantize_linear_nodes=dequantize_nodes,
            kept_float=tuple(keep_float),
        )
