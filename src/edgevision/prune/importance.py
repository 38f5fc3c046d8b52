"""Channel importance for every channel group: which channels a pruner keeps.

Criteria (all sum over every tensor that holds the group's channels, across the coupled blocks):

* ``l1`` / ``l2``: weight magnitude (Li et al., "Pruning Filters for Efficient ConvNets", ICLR 2017).
* ``bn``: the BatchNorm scale |gamma| (Liu et al., "Network Slimming", ICCV 2017).
* ``taylor``: first-order Taylor estimate of the loss change when a channel is removed,
  sum |w * dL/dw| over the channel's weights, gradients accumulated over a few batches
  (Molchanov et al., "Importance Estimation for Neural Network Pruning", CVPR 2019).
* ``random``: the control every criterion has to beat.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from .groups import ChannelGroup, TensorDim

__all__ = ["CRITERIA", "importance"]

CRITERIA = ("l1", "l2", "bn", "taylor", "random")


def _per_channel(tensor: torch.Tensor, tensor_dim: TensorDim, total: int, power: int) -> torch.Tensor | None:
    if tensor.dim() == 0 or (tensor_dim.groups > 1 and tensor_dim.dim == 1):
        return None  # a grouped conv's input side: its producer already scores these channels
    moved = tensor.detach().float().abs().pow(power).movedim(tensor_dim.dim, 0).reshape(total, -1)
    return moved.sum(1)


def _norm_weight_keys(model: nn.Module) -> set[str]:
    keys = set()
    for name, module in model.named_modules():
        if isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)) and getattr(module, "weight", None) is not None:
            keys.add(f"{name}.weight")
    return keys


def importance(
    model: nn.Module,
    criterion: str,
    groups: Sequence[ChannelGroup],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Group name -> one score per channel (higher = keep). ``taylor`` needs ``batches`` of (images, labels)."""
    if criterion not in CRITERIA:
        raise ValueError(f"importance criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}")
    resolved = model.resolved  # type: ignore[attr-defined]
    if criterion == "random":
        generator = torch.Generator().manual_seed(seed)
        return {g.name: torch.rand(g.width, generator=generator) for g in groups}
    state = dict(model.state_dict())
    if criterion == "taylor":
        if batches is None:
            raise ValueError("the taylor criterion needs a few batches of (images, labels)")
        state = _taylor_products(model, batches)
    norm_keys = _norm_weight_keys(model) if criterion == "bn" else set()
    scores = {}
    for group in groups:
        total = torch.zeros(group.width)
        for i, tensor_dim in group.dims:
            key = f"{resolved.blocks[i].path}.{tensor_dim.key}"
            if criterion == "bn" and key not in norm_keys:
                continue
            if key not in state:
                continue
            part_of = tensor_dim.segment >= 0  # one part of a segmented group: its W / segments channels
            size = group.width // tensor_dim.segments if part_of else group.width
            part = _per_channel(state[key], tensor_dim, size, 2 if criterion == "l2" else 1)
            if part is not None and part_of:
                total[tensor_dim.segment * size : (tensor_dim.segment + 1) * size] += part
            elif part is not None:
                total += part
        if criterion == "bn" and not bool(total.any()):  # no norm on these channels: fall back to magnitude
            total = importance(model, "l1", [group])[group.name]
        scores[group.name] = total
    return scores


def _taylor_products(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Parameter name -> w * (dL/dw summed over the batches); per-channel sums of its magnitude score."""
    products = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    was_training = model.training
    model.eval()  # BatchNorm statistics stay the source model's
    for images, labels in batches:
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(images), labels).backward()
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if parameter.grad is not None:
                    products[name] += parameter * parameter.grad  # Taylor term per weight, summed over batches
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return products
