"""Fine-grained sparsity: unstructured and N:M masks, trained with SR-STE, and what they really save.

* N:M (Mishra et al., "Accelerating Sparse Deep Neural Networks", 2021; Zhou et al., "Learning N:M
  Fine-grained Structured Sparse Neural Networks From Scratch", ICLR 2021): in every run of M
  consecutive weights along a layer's input dimension at most N are non-zero (2:4, 4:8, 1:4, ...).
* SR-STE (Zhou et al., Eq. 6): the forward pass uses the masked weight, the gradient passes straight
  through to the dense weight, plus ``lambda * (1 - mask) * w`` that decays the pruned weights, so the
  mask can change while training and settles.

No AVX2 CPU runtime turns either pattern into speed (OpenVINO's sparse weights need AMX and cover
MatMul only; torch's 2:4 path is CUDA only), so the report is what is real: non-zero parameters and
MACs, and the size on disk of a sparse encoding (values + per-run index bits).
"""

from __future__ import annotations

import math
import re

import torch
from torch import nn
from torch.nn.utils import parametrize

__all__ = ["parse_pattern", "nm_mask", "magnitude_mask", "sparsify", "finalize", "check_pattern", "sparse_size_bytes"]


def parse_pattern(text: str) -> tuple[int, int] | float:
    """'2:4' -> (2, 4); '0.5' -> 0.5 (unstructured: that fraction of zeros). One-line errors."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 0 < n < m:
            raise ValueError(f"an N:M pattern needs 0 < N < M (N kept of every M weights), got {text!r}")
        return n, m
    try:
        ratio = float(text)
    except ValueError:
        raise ValueError(f"sparsity pattern {text!r} is neither N:M (e.g. 2:4) nor a fraction of zeros in (0, 1)") from None
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"unstructured sparsity must be a fraction of zeros in (0, 1), got {text!r}")
    return ratio


def _runs(weight: torch.Tensor, m: int) -> torch.Tensor:
    """(C_out, C_in, *k) -> (C_out * k, C_in / M, M): runs of M along the input dimension."""
    moved = weight.movedim(1, -1)  # (C_out, *k, C_in)
    return moved.reshape(-1, weight.shape[1] // m, m)


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` largest |w| of every ``m`` consecutive input weights (input width divisible by ``m``)."""
    runs = _runs(weight.detach().abs(), m)
    top = runs.topk(n, dim=-1).indices
    mask = torch.zeros_like(runs).scatter_(-1, top, 1.0)
    shape = weight.movedim(1, -1).shape
    return mask.reshape(shape).movedim(-1, 1)


def magnitude_mask(weight: torch.Tensor, zeros: float) -> torch.Tensor:
    """Unstructured: zero the ``zeros`` fraction of smallest |w| of the tensor."""
    count = int(round(weight.numel() * zeros))
    if count == 0:
        return torch.ones_like(weight)
    threshold = weight.detach().abs().flatten().kthvalue(count).values
    return (weight.detach().abs() > threshold).to(weight.dtype)


class _SRSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, mask, decay):
        ctx.save_for_backward(weight, mask)
        ctx.decay = decay
        return weight * mask

    @staticmethod
    def backward(ctx, grad):
        weight, mask = ctx.saved_tensors
        return grad + ctx.decay * (1 - mask) * weight, None, None  # straight through + sparse-refined decay


class SparseWeight(nn.Module):
    """Parametrization: the layer sees the masked weight; the mask is recomputed from the dense weight each step."""

    def __init__(self, pattern: tuple[int, int] | float, decay: float = 2e-4) -> None:
        super().__init__()
        self.pattern, self.decay = pattern, decay

    def mask(self, weight: torch.Tensor) -> torch.Tensor:
        if isinstance(self.pattern, tuple):
            return nm_mask(weight, *self.pattern)
        return magnitude_mask(weight, self.pattern)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _SRSTE.apply(weight, self.mask(weight), self.decay)


def _targets(model: nn.Module, pattern) -> list[nn.Module]:
    """Convolutions (not depthwise) and linears whose input width fits the pattern; the first conv stays dense."""
    layers = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.groups == 1 and module.in_channels > 3:
            layers.append(module)
        elif isinstance(module, nn.Linear):
            layers.append(module)
    if isinstance(pattern, tuple):
        layers = [layer for layer in layers if layer.weight.shape[1] % pattern[1] == 0]
    return layers


def sparsify(model: nn.Module, pattern: tuple[int, int] | float | str, decay: float = 2e-4) -> list[nn.Module]:
    """Attach an SR-STE sparse parametrization to every eligible layer of ``model`` (in place); returns the layers."""
    if isinstance(pattern, str):
        pattern = parse_pattern(pattern)
    layers = _targets(model, pattern)
    for layer in layers:
        parametrize.register_parametrization(layer, "weight", SparseWeight(pattern, decay))
    return layers


def finalize(model: nn.Module) -> nn.Module:
    """Bake the masks into plain weights (exact zeros) and remove the parametrizations: ready to save/export."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            with torch.no_grad():
                parametrization = module.parametrizations.weight[0]
                dense = module.parametrizations.weight.original
                masked = dense * parametrization.mask(dense)
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            with torch.no_grad():
                module.weight.copy_(masked)
    return model


def check_pattern(weight: torch.Tensor, n: int, m: int) -> bool:
    """True when every run of ``m`` input weights has at most ``n`` non-zeros."""
    return bool(((_runs(weight, m) != 0).sum(-1) <= n).all())


def sparse_size_bytes(model: nn.Module, pattern: tuple[int, int] | float, value_bytes: int = 4) -> dict[str, int]:
    """Dense vs sparse-encoded weight bytes of the sparsified layers (N:M: values + log2(M) index bits each;
    unstructured: values + a 1-bit-per-weight bitmap)."""
    dense = encoded = 0
    for layer in _targets(model, pattern):
        weight = layer.weight.detach()
        dense += weight.numel() * value_bytes
        nonzero = int((weight != 0).sum())
        if isinstance(pattern, tuple):
            n, m = pattern
            kept = weight.numel() // m * n
            encoded += kept * value_bytes + math.ceil(kept * math.ceil(math.log2(m)) / 8)
        else:
            encoded += nonzero * value_bytes + math.ceil(weight.numel() / 8)
    return {"dense_bytes": dense, "sparse_bytes": encoded}
