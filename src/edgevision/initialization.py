"""Initialisation as a block protocol: the recipe-dependent part of a block's init (zero-init).

Protocol: a module whose output adds a residual branch to a shortcut has an
``init_weights(zero_init_last: bool) -> tuple[nn.Parameter, ...]`` method. It sets the *last*
scale of each residual branch it owns (the branch's last BatchNorm gamma, its LayerScale, or,
where the branch ends in a bare conv/linear, that layer's weight) to zero when ``zero_init_last``
(Goyal et al. 2017, "Accurate, Large Minibatch SGD", Sec. 5.1; Bag of Tricks, He et al. 2019,
Sec. 3.1), and back to the block's standard value otherwise (gamma = 1, the paper's LayerScale
init, a fresh default init of the layer). It returns the parameters it set. Every other weight
keeps the init the module's constructor gave it (PyTorch's defaults plus the paper's own inits),
so ``init_weights(zero_init_last=False)`` after construction changes only those parameters.

One walker, :func:`initialize`, applies it to a whole model *parent-last* (children before their
parents, like :func:`edgevision.reparameterize`): a block made of residual sub-blocks (a G-Ghost
stage of RegNet blocks, an MGIC V-cycle of residual smoothers) sees its children set first and may
override what they chose, so the outermost block has the last word.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["Initializable", "initialize", "init_last_norm", "init_layer_scale", "init_last_layer"]


@runtime_checkable
class Initializable(Protocol):
    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]: ...


@torch.no_grad()
def initialize(model: nn.Module, zero_init_last: bool = False) -> list[str]:
    """Apply every block's ``init_weights`` (parent-last); returns the names of the parameters set.

    With ``zero_init_last=True`` those parameters are zero, so every block with an identity shortcut
    starts as the identity (``ResolvedBlock.identity_shortcut``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"initialize() needs an nn.Module, got {type(model).__name__}")
    touched: set[int] = set()
    # modules() is pre-order, so its reverse visits every child before its parent
    for module in reversed(list(model.modules())):
        if isinstance(module, Initializable):
            for parameter in module.init_weights(zero_init_last=zero_init_last):
                touched.add(id(parameter))
    return [name for name, parameter in model.named_parameters() if id(parameter) in touched]


def init_last_norm(norm: nn.Module | None, zero_init_last: bool) -> tuple[nn.Parameter, ...]:
    """gamma = 0 (or 1) of a BatchNorm/LayerNorm; nothing for a norm without a learned scale."""
    weight = getattr(norm, "weight", None)
    if not isinstance(weight, nn.Parameter):  # no norm, or TF-slim's scale-free BatchNorm (gamma is a buffer)
        return ()
    weight.fill_(0.0 if zero_init_last else 1.0)
    return (weight,)


def init_layer_scale(scale: nn.Parameter, zero_init_last: bool, value: float) -> tuple[nn.Parameter, ...]:
    """LayerScale (Touvron et al. 2021, CaiT Sec. 2): 0, or its init ``value`` (1e-6 / 1e-5 in the papers)."""
    scale.fill_(0.0 if zero_init_last else value)
    return (scale,)


def init_last_layer(layer: nn.Conv2d | nn.Linear, zero_init_last: bool) -> tuple[nn.Parameter, ...]:
    """A branch that ends in a bare conv/linear (no norm after it): zero it, or give it a fresh default init."""
    if zero_init_last:
        layer.weight.zero_()
        if layer.bias is not None:
            layer.bias.zero_()
    else:
        layer.reset_parameters()
    return (layer.weight,) if layer.bias is None else (layer.weight, layer.bias)
