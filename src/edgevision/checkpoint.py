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
    return header


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The training metadata of a checkpoint, plus ``spec`` (dict) and ``form``, without loading weights."""
    header = _header(Path(path))
    metadata = json.loads(header["edgevision.metadata"])
    return {**metadata, "spec": json.loads(header["edgevision.spec"]), "form": header["edgevision.form"]}


def _check_tensors(path: Path, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], what: str) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{name} {tuple(found[name].shape)}/{str(found[name].dtype).replace('torch.', '')} != "
        f"{tuple(expected[name].shape)}/{str(expected[name].dtype).replace('torch.', '')}"
        for name in sorted(set(expected) & set(found))
        if found[name].shape != expected[name].shape or found[name].dtype != expected[name].dtype
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} with wrong shape/dtype (e.g. {'; '.join(wrong[:3])})")
    if problems:
        raise CheckpointError(f"{str(path)!r}: tensors do not match {what}: {', '.join(problems)}; the file is damaged or was edited")


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the network a checkpoint describes and load its weights (in eval mode)."""
    from safetensors.torch import load_file

    from .builder import build
    from .network import NetworkSpec
    from .reparam import reparameterize

    file = Path(path)
    header = _header(file)
    try:
        spec = NetworkSpec.from_json(header["edgevision.spec"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"{str(file)!r}: its spec does not parse: {error}") from None
    form = header.get("edgevision.form")
    if form not in ("train", "deploy"):
        raise CheckpointError(f"{str(file)!r}: edgevision.form must be 'train' or 'deploy', got {form!r}")
    model = build(spec)
    if form == "deploy":
        model = reparameterize(model, inplace=True)
    try:
        tensors = load_file(str(file), device="cpu")
    except Exception as error:
        raise CheckpointError(f"{str(file)!r}: reading its tensors failed ({type(error).__name__}: {error})") from None
    _check_tensors(file, model.state_dict(), tensors, f"the {form} form of its spec {spec.name!r}")
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval()


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
