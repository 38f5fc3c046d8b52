"""Export what ships: re-parameterize, export to ONNX, check, simplify, and prove it computes the same.

:func:`export_onnx` runs the file it produced in ONNX Runtime on random inputs and compares every
output with the PyTorch model it was given; a file whose outputs differ by more than ``atol``
(relative to the output's scale, max |a - b| / max |a|) is refused and never left on disk.
The write is atomic: the target path holds either the previous file or the verified new one.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "ExportError",
    "ExportMismatchError",
    "ExportReport",
    "DEFAULT_OPSET",
    "SUPPORTED_OPSETS",
    "dynamic_size_blockers",
    "export_onnx",
    "fixed_size_models",
    "input_shape_of",
    "verification_shapes",
]

DEFAULT_OPSET = 17  # supported by onnxruntime >= 1.14 and OpenVINO >= 2023.0


def _supported_opsets() -> range:
    """Opsets both the installed TorchScript exporter and ONNX Runtime handle for the zoo.

    From 11: older opsets lack the Resize/Pad/Clip forms every exporter of today emits for
    HardSwish, upsampling and padding (opset 7 fails the ONNX checker); up to the exporter's maximum.
    """
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as highest
    except ImportError:  # a torch without the constant: the highest known to work
        highest = 20
    return range(11, highest + 1)


SUPPORTED_OPSETS = _supported_opsets()


class ExportError(ValueError):
    """The model could not be exported (bad input shape, unsupported operation, unwritable path)."""


class ExportMismatchError(ExportError):
    """The exported file computes something different from the PyTorch model; it was not written."""


@dataclass(frozen=True)
class ExportReport:
    path: str
    input_shape: tuple[int, ...]  # the example shape exported with (N, C, H, W)
    deploy: bool
    dynamic_batch: bool
    opset: int
    simplified: bool
    nodes: int  # after simplification
    size_bytes: int
    max_relative_error: dict[str, float]  # per output name: max |torch - ort| / max |torch|, worst checked input
    dynamic_hw: bool = False  # height and width free (checked at a second size)

    def summary(self) -> str:
        worst = max(self.max_relative_error.values())
        form = "deploy" if self.deploy else "train"
        return (
            f"wrote {self.path} ({self.size_bytes / 2**20:.1f} MiB, {self.nodes} nodes, opset {self.opset}, {form} form); "
            f"ONNX Runtime matches PyTorch within {worst:.1e} of the output scale"
            + ("; height and width are dynamic (checked at two sizes)" if self.dynamic_hw else "")
        )


def input_shape_of(model: nn.Module, input_shape: Sequence[int] | None, batch: int | None = None) -> tuple[int, ...]:
    """(N, C, H, W) from a (C, H, W) or (N, C, H, W) shape, or from the model's spec when None."""
    if input_shape is None:
        spec = getattr(model, "spec", None)
        if spec is None:
            raise ValueError("input_shape is required for a model without a .spec (give e.g. (3, 224, 224))")
        size = spec.input_size
        input_shape = (spec.in_channels, *((size, size) if isinstance(size, int) else size))
    shape = tuple(int(d) for d in input_shape)
    if len(shape) not in (3, 4) or any(d < 1 for d in shape):
        raise ValueError(f"input shape must be CxHxW or NxCxHxW with positive sizes, got {'x'.join(map(str, shape))}")
    if len(shape) == 3:
        return (batch or 1, *shape)
    if batch is not None and batch != shape[0]:
        raise ValueError(f"input shape {'x'.join(map(str, shape))} has batch {shape[0]} but batch={batch}; give one of them")
    return shape


def _flatten(outputs) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, (list, tuple)):
        return [t for item in outputs for t in _flatten(item)]
    if isinstance(outputs, dict):
        return [t for item in outputs.values() for t in _flatten(item)]
    raise ExportError(f"cannot compare model output of type {type(outputs).__name__}; return tensors")


def _output_names(model: nn.Module, example: torch.Tensor) -> list[str]:
    """The graph's output names: the model's own ``onnx_output_names`` where it declares them (a depth net's
    output is "depth", not "logits"), else "logits" for one output and output_<i> for several."""
    with torch.no_grad():
        count = len(_flatten(model(example)))
    declared = tuple(getattr(model, "onnx_output_names", ()))
    if len(declared) == count:
        return list(declared)
    return ["logits"] if count == 1 else [f"output_{i}" for i in range(count)]


def _dynamic_axes(example: torch.Tensor, outputs: list[torch.Tensor], output_names: list[str], dynamic_batch: bool, dynamic_hw: bool):
    """Names of the free axes: batch (0) and, with ``dynamic_hw``, height and width (2, 3) of the input and of 4-D outputs."""
    if not (dynamic_batch or dynamic_hw):
        return None
    axes: dict[str, dict[int, str]] = {}
    for name, tensor in [("input", example), *zip(output_names, outputs)]:
        free = {0: "batch"} if dynamic_batch else {}
        if dynamic_hw and tensor.dim() == 4:
            suffix = "" if name == "input" else f"_{name}"
            free.update({2: f"height{suffix}", 3: f"width{suffix}"})
        axes[name] = free
    return axes


def _export(model: nn.Module, example: torch.Tensor, path: Path, output_names: list[str], opset: int, dynamic_axes) -> None:
    # The TorchScript exporter: ~5x faster than torch.export-based one on our zoo and needs no
    # onnxscript; every zoo model is plain convolutional code it handles exactly.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the deprecation notice of the TorchScript exporter
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
        )


def _simplify(path: Path) -> bool:
    """Simplify in place with onnxslim (constant folding, dead-node removal, fusions); False if it fails."""
    import onnx
    import onnxslim

    try:
        slimmed = onnxslim.slim(onnx.load(str(path)))
    except Exception:  # a simplifier bug must not block the export; the unsimplified file is still valid
        return False
    if slimmed is None:
        return False
    onnx.checker.check_model(slimmed)
    onnx.save(slimmed, str(path))
    return True


def _max_relative_errors(
    model: nn.Module, path: Path, shapes: Sequence[tuple[int, ...]], output_names: list[str], seed: int
) -> dict[str, tuple[float, tuple[int, ...]]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # verification is small; spinning thread pools only contend
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    worst: dict[str, tuple[float, tuple[int, ...]]] = {name: (0.0, shapes[0]) for name in output_names}
    for shape in shapes:
        x = torch.randn(shape, generator=generator)
        with torch.no_grad():
            expected = [t.numpy() for t in _flatten(model(x))]
        actual = session.run(output_names, {"input": x.numpy()})
        for name, reference, other in zip(output_names, expected, actual):
            if reference.shape != other.shape:
                raise ExportMismatchError(
                    f"output {name!r} has shape {other.shape} in ONNX Runtime but {reference.shape} in PyTorch (input {_shape_text(shape)})"
                )
            scale = max(float(np.abs(reference).max()), 1e-12)
            error = float(np.abs(reference - other).max()) / scale
            if not np.isfinite(error) or error > worst[name][0]:
                worst[name] = (error if np.isfinite(error) else float("inf"), shape)
    return worst


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def verification_shapes(shape: tuple[int, ...], dynamic_batch: bool, dynamic_hw: bool) -> list[tuple[int, ...]]:
    """Input shapes the exported file is checked at: the example, then one with every free axis changed.

    A dynamic H x W is checked at a second, non-square size (3/4 of H, 5/4 of W, multiples of 32
    where the example is) so a size baked into the graph shows up as a mismatch.
    """
    batch, channels, height, width = shape
    other_h, other_w = height, width
    if dynamic_hw:
        step = 32 if height % 32 == 0 and width % 32 == 0 else 1
        other_h = max(step, (height * 3 // 4) // step * step)
        other_w = max(step, (width * 5 // 4 + step - 1) // step * step)
    other = (batch + 1 if dynamic_batch else batch, channels, other_h, other_w)
    return [shape] if other == shape else [shape, other]


def dynamic_size_blockers(model: nn.Module) -> list[str]:
    """Block kinds of ``model`` that cannot run at another H x W in an exported graph (``fixed_input_size``)."""
    resolved = getattr(model, "resolved", None)
    if resolved is None:
        return []
    return sorted({type(b.spec).__name__ for b in resolved if getattr(b.spec, "fixed_input_size", False)})


def fixed_size_models() -> list[str]:
    """Registered models with a block tied to its input grid (no dynamic height/width export)."""
    from .registry import get_spec, list_models

    def kinds(spec):
        blocks = [*spec.stem, *(b for stage in spec.stages for b in stage.blocks), spec.head]
        return any(getattr(b, "fixed_input_size", False) for b in blocks if b is not None)

    return [name for name in list_models() if kinds(get_spec(name))]


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int] | None = None,
    *,
    deploy: bool = True,
    dynamic_batch: bool = True,
    dynamic_hw: bool = False,
    opset: int = DEFAULT_OPSET,
    atol: float = 1e-4,
    simplify: bool = True,
    seed: int = 0,
) -> ExportReport:
    """Export ``model`` to ONNX at ``path`` and verify it in ONNX Runtime against PyTorch.

    ``input_shape`` is (C, H, W) or (N, C, H, W); None takes the model's spec (3x224x224 for the zoo).
    With ``deploy=True`` the model is re-parameterized first (BatchNorm folded, branches merged); the
    comparison is always against ``model`` as given, in eval mode, so the check covers both steps.
    Raises :class:`ExportMismatchError` naming the output and the error if the file computes
    something else (relative error above ``atol``); nothing is left at ``path`` then.
    ``dynamic_hw=True`` leaves height and width free (dense models run at many sizes) and checks the
    file at a second, non-square size; models whose attention is tied to the token grid are refused.
    """
    from .atomic import atomic_path
    from .latency.errors import first_line
    from .reparam import reparameterize

    if not isinstance(model, nn.Module):
        raise TypeError(f"export_onnx() needs an nn.Module, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in SUPPORTED_OPSETS:
        raise ExportError(
            f"opset {opset!r} is not supported here: the installed exporter and ONNX Runtime handle opsets "
            f"{SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1}; use e.g. --opset {DEFAULT_OPSET}"
        )
    shape = input_shape_of(model, input_shape)
    blockers = dynamic_size_blockers(model) if dynamic_hw else []
    if blockers:
        name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
        raise ExportError(
            f"{name} cannot export with a dynamic height and width: {', '.join(blockers)} ties its attention bias to the "
            f"token grid of its resolved input; export at the size you run (drop dynamic_hw / --dynamic-hw). "
            f"Zoo models with this limit: {', '.join(fixed_size_models())}"
        )
    was_training = model.training
    model.eval()
    try:
        to_export = reparameterize(model) if deploy else model
        example = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        try:
            output_names = _output_names(to_export, example)
            with torch.no_grad():
                outputs = _flatten(to_export(example))
        except RuntimeError as error:
            raise ExportError(f"the model cannot take input shape {'x'.join(map(str, shape))}: {first_line(error)}") from None
        with atomic_path(path) as temporary:
            import onnx

            _export(to_export, example, temporary, output_names, opset, _dynamic_axes(example, outputs, output_names, dynamic_batch, dynamic_hw))
            onnx.checker.check_model(str(temporary))
            simplified = _simplify(temporary) if simplify else False
            try:
                errors = _max_relative_errors(model, temporary, verification_shapes(shape, dynamic_batch, dynamic_hw), output_names, seed + 1)
            except ExportMismatchError:
                raise
            except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeException types
                raise ExportMismatchError(
                    f"ONNX Runtime cannot run the exported graph: {first_line(error)}; {os.fspath(path)!r} was not written"
                ) from None
            for name, (error, at) in errors.items():
                if not error <= atol:
                    raise ExportMismatchError(
                        f"ONNX output {name!r} differs from PyTorch by {error:.2e} of the output scale at input {_shape_text(at)} "
                        f"(tolerance {atol:.0e}); {os.fspath(path)!r} was not written"
                    )
            nodes = len(onnx.load(str(temporary), load_external_data=False).graph.node)
            size = temporary.stat().st_size
    finally:
        model.train(was_training)
    return ExportReport(
        path=os.fspath(path),
        input_shape=shape,
        deploy=deploy,
        dynamic_batch=dynamic_batch,
        opset=opset,
        simplified=simplified,
        dynamic_hw=dynamic_hw,
        nodes=nodes,
        size_bytes=size,
        max_relative_error={name: error for name, (error, _) in errors.items()},
    )
