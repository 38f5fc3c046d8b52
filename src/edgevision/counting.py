"""Parameter and multiply-accumulate counts, in the papers' convention.

Papers count multiply-adds of convolutions and fully connected layers (the "MAdds" of
MobileNetV2, the "FLOPs" of ShuffleNet/GhostNet, which are multiply-adds too). We take the
FLOPs that ``torch.utils.flop_counter`` reports for conv / matmul operators (2 per MAC) and
halve them. The full per-operator cost model (element-wise ops, bytes, roofline) is separate.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_params", "count_macs"]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_size: int | tuple[int, int] = 224, in_channels: int | None = None) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (conv + linear + matmul)."""
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if in_channels is None:
        spec = getattr(model, "spec", None)
        in_channels = spec.in_channels if spec is not None else 3
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        x = torch.zeros(1, in_channels, *hw, dtype=param.dtype if param is not None else torch.float32)
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
