"""Run a network over a dataset: logits and labels, in eval mode, with the training preprocessing."""

from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["predict", "autocast_context"]


def autocast_context(device: torch.device):
    """bf16 autocast on CUDA; nothing on CPU (fp32 stays exact and deterministic there)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def predict(
    model: nn.Module,
    dataset: Dataset,
    preprocess: Callable[[torch.Tensor], torch.Tensor],
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, K) float32 on CPU, labels (N,) or (N, K)) over ``dataset`` in order.

    ``preprocess`` maps a uint8 batch already on ``device`` to the network's input.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    try:
        for images, targets in loader:
            inputs = preprocess(images.to(device)).contiguous(memory_format=torch.channels_last)
            with autocast_context(device):
                logits.append(model(inputs).float().cpu())  # (B, C, R, R) -> (B, K)
            labels.append(targets)
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(labels)
