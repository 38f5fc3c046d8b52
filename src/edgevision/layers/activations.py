"""Activation functions by name: specs hold names (plain data), modules get constructors."""

from __future__ import annotations

from typing import Callable

from torch import nn

__all__ = ["ACTIVATIONS", "get_activation"]

# name -> constructor. Names are the vocabulary allowed in every spec's ``activation`` field.
_CONSTRUCTORS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hard_swish": nn.Hardswish,
    "hard_sigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "identity": nn.Identity,
}

ACTIVATIONS: tuple[str, ...] = tuple(_CONSTRUCTORS)


def get_activation(name: str | None) -> Callable[[], nn.Module] | None:
    """Constructor for an activation name; ``None`` or ``"identity"`` means no activation."""
    if name is None or name == "identity":
        return None
    try:
        return _CONSTRUCTORS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}") from None
