"""Exponential moving average of weights (Polyak averaging), evaluated in place of the raw weights.

``ema = d * ema + (1 - d) * weights`` after every optimizer step, with the decay warmed up as
``min(d, (1 + step) / (10 + step))`` (TensorFlow's ``ExponentialMovingAverage`` with
``num_updates``) so that short runs are not dominated by the random initialization. Buffers
(BatchNorm running statistics) are copied, not averaged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for parameter in self.module.parameters():
            parameter.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        self.updates += 1
        for averaged, current in zip(self.module.parameters(), model.parameters()):
            averaged.lerp_(current.detach(), 1.0 - decay)  # averaged = decay * averaged + (1 - decay) * current
        for averaged, current in zip(self.module.buffers(), model.buffers()):
            averaged.copy_(current)
