"""Self-describing model artifacts: one ``.safetensors`` file = spec JSON + weights + training metadata.

Format (``edgevision.checkpoint/1``): a standard safetensors file whose string header metadata
holds

* ``edgevision.format``: ``"edgevision.checkpoint/1"``,
* ``edgevision.spec``: the :class:`~edgevision.NetworkSpec` as JSON (classes and input channels included),
* ``edgevision.form``: ``"train"`` or ``"deploy"`` (re-parameterized: BatchNorm folded, branches merged),
* ``edgevision.metadata``: JSON with whatever the writer adds (dataset, recipe, metrics, the
  preprocessing to repeat at evaluation) plus ``versions`` (edgevision, torch, python, numpy,
  safetensors) and the machine fingerprint.

and whose tensors are the module's ``state_dict``. :func:`load` rebuilds the network from the
spec (re-parameterizing it when the form is ``deploy``), then refuses the file unless its tensor
names, shapes and dtypes are exactly the rebuilt network's. Safetensors holds raw arrays only, so
reading never executes code. One file keeps the write atomic (``edgevision.atomic``) and lets any
safetensors reader inspect it. :func:`load_state_dict_file` also reads user ``.pt``/``.pth``
state dicts, with ``torch.load(weights_only=True)`` (no arbitrary unpickling).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .tensor_listing import mismatch_listing

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save", "load", "read_metadata", "load_state_dict_file"]

CHECKPOINT_FORMAT = "edgevision.checkpoint/1"
SUFFIX = ".safetensors"


class CheckpointError(ValueError):
    """A checkpoint cannot be written or does not match its own spec; the message says why."""


def _versions() -> dict[str, str]:
    import numpy
    import safetensors

    from . import __version__
    from .machine import machine_info

    return {
        "edgevision": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "safetensors": safetensors.__version__,
        "machine_fingerprint": machine_info().fingerprint,
    }


def save(model: nn.Module, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (an edgevision ``Network``, train or deploy form) with ``metadata`` to ``path`` atomically."""
    from safetensors.torch import save_file

    from .atomic import atomic_path
    from .reparam import is_deploy_form

    spec = getattr(model, "spec", None)
    if spec is None:
        raise CheckpointError(
            f"cannot save a {type(model).__name__}: a checkpoint rebuilds the network from its spec, so the model must be "
            "built by edgevision (create_model / build)"
        )
    target = Path(path)
    if target.suffix != SUFFIX:
        raise CheckpointError(f"checkpoint path {str(target)!r} must end in {SUFFIX}")
    tensors = {name: tensor.detach().cpu().contiguous().clone() for name, tensor in model.state_dict().items()}
    header = {
        "edgevision.format": CHECKPOINT_FORMAT,
        "edgevision.spec": spec.to_json(),
        "edgevision.form": "deploy" if is_deploy_form(model) else "train",
        "edgevision.metadata": json.dumps({**(metadata or {}), "versions": _versions()}, default=str),
    }
    with atomic_path(target) as temporary:
        save_file(tensors, str(temporary), metadata=header)
    return target


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory; give the .safetensors file in it (e.g. {str(path / 'model.safetensors')!r})")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except Exception as error:  # not a safetensors file, truncated header, ...
        raise CheckpointError(f"{str(path)!r} is not a readable safetensors file ({type(error).__name__}: {error})") from None
    if header.get("edgevision.format") != CHECKPOINT_FORMAT:
        found = header.get("edgevision.format", "no edgevision header")
        raise CheckpointError(f"{str(path)!r} is not an edgevision checkpoint ({found}); expected {CHECKPOINT_FORMAT}")
    for key in HEADER_KEYS:
        if key not in header:
            raise CheckpointError(f"{str(path)!r}: the header lacks {key!r}; the file is damaged or was not written by edgevision")
    return header


#: what every checkpoint header holds (safetensors header metadata is str -> str)
HEADER_KEYS = ("edgevision.format", "edgevision.spec", "edgevision.form", "edgevision.metadata")


def _json_object(path: Path, header: dict[str, str], key: str) -> dict[str, Any]:
    try:
        value = json.loads(header[key])
    except (json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{str(path)!r}: {key} is not valid JSON ({type(error).__name__}: {' '.join(str(error).split())[:120]})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{str(path)!r}: {key} must be a JSON object, got {type(value).__name__}")
    return value


def _check_metadata(path: Path, metadata: dict[str, Any], spec: dict[str, Any]) -> None:
    """The fields evaluation reads back must have the types it expects (a crafted header must not crash it)."""
    import math

    def bad(field: str, allowed: str, value: Any) -> CheckpointError:
        return CheckpointError(f"{str(path)!r}: metadata {field} must be {allowed}, got {value!r:.80}; the file is damaged or was edited")

    if "task" in metadata and not isinstance(metadata["task"], str):
        raise bad("task", "a string", metadata["task"])
    if "dataset" in metadata and not (isinstance(metadata["dataset"], str) or metadata["dataset"] is None):
        raise bad("dataset", "a string", metadata["dataset"])
    if "class_names" in metadata:
        names = metadata["class_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise bad("class_names", "a list of strings", names)
    preprocess = metadata.get("preprocess", {})
    if not isinstance(preprocess, dict):
        raise bad("preprocess", "an object", preprocess)
    resolution = preprocess.get("resolution", 32)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or not 1 <= resolution <= 65_536:
        raise bad("preprocess.resolution", "an integer in 1..65536", resolution)
    for field in ("mean", "std"):
        if field in preprocess:
            values = preprocess[field]
            if (
                not isinstance(values, list)
                or not 1 <= len(values) <= 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
                or (field == "std" and not all(v > 0 for v in values))
            ):
                raise bad(f"preprocess.{field}", "1 to 4 finite numbers" + (" > 0" if field == "std" else ""), values)
            channels = spec.get("in_channels", 3)
            if isinstance(channels, int) and len(values) != channels:
                raise bad(f"preprocess.{field}", f"one number per input channel ({channels})", values)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The training metadata of a checkpoint, plus ``spec`` (dict) and ``form``, without loading weights."""
    file = Path(path)
    header = _header(file)
    metadata = _json_object(file, header, "edgevision.metadata")
    spec = _json_object(file, header, "edgevision.spec")
    _check_metadata(file, metadata, spec)
    return {**metadata, "spec": spec, "form": header["edgevision.form"]}


def parse_spec(text: str):
    """A checkpoint's spec JSON -> a ``NetworkSpec`` or a ``TaskModelSpec`` (other kinds are refused)."""
    from . import models  # noqa: F401  (registers every spec kind a checkpoint may name)
    from .network import NetworkSpec
    from .spec import Spec
    from .task_spec import TaskModelSpec

    spec = Spec.from_json(text)
    if not isinstance(spec, (NetworkSpec, TaskModelSpec)):
        raise ValueError(f"the stored spec is a {type(spec).__name__}, not a network or task model")
    return spec


def _meta_state(spec) -> dict[str, torch.Tensor]:
    """The train-form state dict of ``spec``'s network on the meta device: shapes and dtypes, no memory."""
    from .builder import build

    with torch.device("meta"):
        return build(spec).state_dict()


def estimated_bytes(spec) -> int:
    """Bytes of the parameters and buffers the network of ``spec`` would allocate, counted on the meta device."""
    return sum(t.numel() * t.element_size() for t in _meta_state(spec).values())


def _stored_tensors(file: Path) -> dict[str, torch.Tensor]:
    """Name -> an empty meta tensor of the stored shape and dtype, read from the header only."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            return {name: torch.empty(handle.get_slice(name).get_shape(), dtype=_DTYPES.get(handle.get_slice(name).get_dtype(), torch.uint8), device="meta")
                    for name in handle.keys()}
    except Exception as error:
        raise CheckpointError(f"{str(file)!r}: reading its tensor headers failed ({type(error).__name__}: {error})") from None


_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64, "I64": torch.int64,
           "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def _check_tensors(path: Path, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], what: str) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{name} {tuple(found[name].shape)}/{str(found[name].dtype).replace('torch.', '')} != "
        f"{tuple(expected[name].shape)}/{str(expected[name].dtype).replace('torch.', '')}"
        for name in sorted(set(expected) & set(found))
        if found[name].shape != expected[name].shape or found[name].dtype != expected[name].dtype
    ]
    problems = mismatch_listing([("missing", missing), ("unexpected", unexpected), ("with wrong shape/dtype", wrong)])
    if problems:
        raise CheckpointError(f"{str(path)!r}: tensors do not match {what}: {problems}; the file is damaged or was edited")


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (in eval mode)."""
    from safetensors.torch import load_file

    from .builder import build
    from .reparam import reparameterize

    file = Path(path)
    header = _header(file)
    try:
        spec = parse_spec(header["edgevision.spec"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{str(file)!r}: its spec does not parse: {' '.join(str(error).split())[:300]}") from None
    form = header.get("edgevision.form")
    if form not in ("train", "deploy"):
        raise CheckpointError(f"{str(file)!r}: edgevision.form must be 'train' or 'deploy', got {form!r}")
    expected = _check_allocation(file, spec)
    if form == "train":  # compare names, shapes and dtypes before building anything for real
        _check_tensors(file, expected, _stored_tensors(file), f"the train form of its spec {spec.name!r}")
    try:
        model = build(spec)
    except (ValueError, TypeError) as error:  # a spec that validates field by field but not as a whole
        raise CheckpointError(f"{str(file)!r}: its spec does not build: {' '.join(str(error).split())[:300]}") from None
    if form == "deploy":
        model = reparameterize(model, inplace=True)
    try:
        tensors = load_file(str(file), device="cpu")
    except Exception as error:
        raise CheckpointError(f"{str(file)!r}: reading its tensors failed ({type(error).__name__}: {error})") from None
    _check_tensors(file, model.state_dict(), tensors, f"the {form} form of its spec {spec.name!r}")
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


def _check_allocation(file: Path, spec) -> dict[str, torch.Tensor]:
    """Refuse, before building, a spec whose weights would not fit in memory (a crafted header must not reach the allocator)."""
    from .validation import ValidationError, check_memory

    try:
        expected = _meta_state(spec)
    except (ValueError, TypeError, RuntimeError, NotImplementedError) as error:
        raise CheckpointError(f"{str(file)!r}: its spec does not build: {' '.join(str(error).split())[:300]}") from None
    needed = sum(t.numel() * t.element_size() for t in expected.values())
    try:
        check_memory(2 * needed, f"{str(file)!r}: building its spec {spec.name!r} (weights plus the loaded copy)")
    except ValidationError as error:
        raise CheckpointError(str(error)) from None
    return expected


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a weights file: ``.safetensors`` (ours or any), or a ``.pt``/``.pth`` state dict (``weights_only=True``)."""
    from safetensors.torch import load_file

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"weights file {str(file)!r} does not exist")
    if file.suffix == SUFFIX:
        return load_file(str(file), device="cpu")
    if file.suffix not in (".pt", ".pth"):
        raise CheckpointError(f"weights file {str(file)!r} must be .safetensors, .pt or .pth")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # includes the UnpicklingError weights_only raises for code-carrying pickles
        raise CheckpointError(f"{str(file)!r} is not a plain tensor state dict ({type(error).__name__}: {str(error).splitlines()[0]})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{str(file)!r} does not hold a dict of tensors (a state_dict)")
    return state
