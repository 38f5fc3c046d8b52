"""Reading a foreign weights file safely: tensors only, never code.

``.safetensors`` is raw arrays by construction. ``.pth``/``.pt``/``.bin`` (and ``.pth.tar``, the
name apple's MobileOne release gives its ``torch.save`` files) go through
``torch.load(weights_only=True)``, whose unpickler accepts tensors and plain containers only and
raises on anything that would import or call code; such a file is refused with one line. The
common training-script containers are unwrapped (``{"state_dict": ...}``, ``{"model": ...}``,
``{"model_ema": ...}``, ``{"net": ...}``) and the ``module.`` prefix DataParallel/DDP adds is
stripped.

Training checkpoints often hold two weight sets: the trained weights and their exponential moving
average (timm's trainer: ``state_dict`` and ``state_dict_ema``; RepGhost's release reports the EMA
weights' accuracy). The trained set is read unless ``ema=True``; a file with both says so
(:func:`read_checkpoint` returns where the tensors came from).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["WeightImportError", "SUFFIXES", "read_state_dict", "read_checkpoint", "EMA_KEYS"]

SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".tar")  # ".tar": "x.pth.tar", a torch.save file
#: keys under which training scripts store the weights, most specific first
_CONTAINER_KEYS = ("state_dict", "model", "model_state_dict", "net", "params", "model_ema", "state_dict_ema")
#: keys under which training scripts store the moving average of the weights
EMA_KEYS = ("state_dict_ema", "model_ema", "ema_state_dict", "ema")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


class WeightImportError(ValueError):
    """A weights file cannot be imported into a model; the message says which tensors and what to do."""


def _is_tensor_dict(state: object) -> bool:
    return isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())


def _unwrap(state: object, file: Path, ema: bool = False) -> tuple[dict[str, torch.Tensor], str | None, str | None]:
    """(tensors, the container key they were under or None, an EMA key the file also holds or None)."""
    container, ema_available = None, None
    for _ in range(3):  # e.g. {"model": {"state_dict": {...}}}
        if isinstance(state, dict) and not _is_tensor_dict(state):
            present_ema = next((k for k in EMA_KEYS if isinstance(state.get(k), dict)), None)
            ema_available = ema_available or present_ema
            keys = EMA_KEYS if ema else _CONTAINER_KEYS
            key = next((k for k in keys if isinstance(state.get(k), dict)), None)
            if key is None:
                break
            state, container = state[key], key
    if ema and container not in EMA_KEYS:
        found = sorted(state)[:8] if isinstance(state, dict) and not _is_tensor_dict(state) else ["(a plain state dict)"]
        raise WeightImportError(f"{str(file)!r} holds no moving-average weights (looked for {', '.join(map(repr, EMA_KEYS))}; "
                                f"it has {', '.join(map(str, found))}); import it without --ema / ema=True")
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise WeightImportError(
            f"{str(file)!r} does not hold a state dict (a dict of tensors, or one under {', '.join(map(repr, _CONTAINER_KEYS[:3]))}); "
            "save model.state_dict() instead"
        )
    for prefix in _WRAPPER_PREFIXES:  # DataParallel / torch.compile / Lightning wrappers
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return dict(state), container, (None if container in EMA_KEYS else ema_available)


def read_state_dict(path: str | os.PathLike, *, ema: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of ``path`` (``.safetensors``/``.pth``/``.pt``/``.bin``), unwrapped, on the CPU;
    ``ema=True``: the moving-average weights of a training checkpoint (an error where it has none)."""
    return read_checkpoint(path, ema=ema)[0]


def read_checkpoint(path: str | os.PathLike, *, ema: bool = False) -> tuple[dict[str, torch.Tensor], str | None, str | None]:
    """``(tensors, container key they came from or None, an EMA key also in the file that was not read or None)``."""
    file = Path(path)
    if not file.is_file():
        raise WeightImportError(f"weights file {str(file)!r} does not exist")
    if file.suffix not in SUFFIXES:
        raise WeightImportError(f"weights file {str(file)!r} must end in {', '.join(SUFFIXES)}")
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(str(file), device="cpu"), file, ema)
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
    return _unwrap(state, file, ema)
