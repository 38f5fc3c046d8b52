"""Reading a foreign weights file safely: tensors only, never code.

``.safetensors`` is raw arrays by construction. ``.pth``/``.pt``/``.bin`` (and ``.pth.tar``, the
name apple's MobileOne release gives its ``torch.save`` files) go through
``torch.load(weights_only=True)``, whose unpickler accepts tensors and plain containers only and
raises on anything that would import or call code; such a file is refused with one line. The
common training-script containers are unwrapped (``{"state_dict": ...}``, ``{"model": ...}``,
``{"model_ema": ...}``, ``{"net": ...}``) and the ``module.`` prefix DataParallel/DDP adds is
stripped.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["WeightImportError", "SUFFIXES", "read_state_dict"]

SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".tar")  # ".tar": "x.pth.tar", a torch.save file
#: keys under which training scripts store the weights, most specific first
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net", "params", "model_ema", "state_dict_ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


class WeightImportError(ValueError):
    """A weights file cannot be imported into a model; the message says which tensors and what to do."""


def _unwrap(state: object, file: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}
        if isinstance(state, dict) and not all(isinstance(v, torch.Tensor) for v in state.values()):
            inner = next((state[k] for k in _CONTAINER_KEYS if isinstance(state.get(k), dict)), None)
            if inner is None:
                break
            state = inner
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightImportError(
            f"{str(file)!r} does not hold a state dict (a dict of tensors, or one under {', '.join(map(repr, _CONTAINER_KEYS[:3]))}); "
            "save model.state_dict() instead"
        )
    for prefix in _WRAPPER_PREFIXES:  # DataParallel / torch.compile / Lightning wrappers
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` (``.safetensors``/``.pth``/``.pt``/``.bin``), unwrapped, on the CPU."""
    file = Path(path)
    if not file.is_file():
        raise WeightImportError(f"weights file {str(file)!r} does not exist")
    if file.suffix not in SUFFIXES:
        raise WeightImportError(f"weights file {str(file)!r} must end in {', '.join(SUFFIXES)}")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(str(file), device="cpu"), file)
        except WeightImportError:
            raise
        except Exception as error:  # truncated header, not safetensors at all
            raise WeightImportError(f"{str(file)!r} is not a readable safetensors file ({type(error).__name__})") from None
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # UnpicklingError for pickles that carry code; also truncated / foreign files
        text = str(error)
        if "Unsupported global" in text:  # the pickle names a class or function to import and call
            raise WeightImportError(
                f"{str(file)!r} needs code unpickling to load, which is refused (only tensors and plain containers are read); "
                "re-save it as model.state_dict() or convert it to .safetensors"
            ) from None
        detail = next((line.strip() for line in text.splitlines() if line.strip().startswith("Unsupported")), type(error).__name__)
        raise WeightImportError(
            f"{str(file)!r} is not a readable PyTorch weights file ({detail[:120]}; only plain tensor pickles are read); "
            "re-save it as model.state_dict() or convert it to .safetensors"
        ) from None
    return _unwrap(state, file)
