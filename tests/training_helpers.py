"""Tiny networks and datasets for the training, checkpoint and DDP tests (fast on 2 cores)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import edgevision as ev
from edgevision.blocks import ClassifierHeadSpec, ConvNormActSpec, InvertedResidualSpec
from edgevision.datasets import DataSplits, TensorImageDataset


def tiny_spec(num_classes: int = 2, in_channels: int = 1) -> ev.NetworkSpec:
    """stem 8 -> one stride-2 inverted residual -> one residual (identity shortcut) block -> head."""
    return ev.NetworkSpec(
        name="tiny",
        stem=(ConvNormActSpec(out_channels=8, kernel_size=3, stride=2),),
        stages=(ev.StageSpec.repeat(InvertedResidualSpec(out_channels=8, stride=2, expansion_ratio=2), depth=2),),
        head=ClassifierHeadSpec(num_classes=num_classes),
        in_channels=in_channels,
        input_size=16,
    )


def tiny_model(seed: int = 0, num_classes: int = 2) -> ev.Network:
    torch.manual_seed(seed)
    return ev.build(tiny_spec(num_classes))


def toy_splits(count: int = 48, size: int = 8, num_classes: int = 2, seed: int = 0) -> DataSplits:
    """A learnable toy task: class = which half of the image is bright (plus noise)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % num_classes
    images = torch.randint(0, 60, (count, 1, size, size), generator=generator)
    for index, label in enumerate(labels.tolist()):
        rows = slice(0, size // 2) if label == 0 else slice(size // 2, size)
        images[index, :, rows] += 150
    data = TensorImageDataset(images.clamp(0, 255).to(torch.uint8), labels)
    half = count // 2
    return DataSplits(
        name="toy", train=data.subset(torch.arange(half)), val=data.subset(torch.arange(half, count)),
        class_names=tuple(str(i) for i in range(num_classes)), in_channels=1, image_size=size,
        mean=(0.3,), std=(0.3,), flip_safe=False,
    )


class BatchNormFreeNet(nn.Module):
    """conv -> ReLU -> pool -> linear: no BatchNorm, so data-parallel equals large-batch exactly."""

    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.linear = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.relu(self.conv(x)).mean((2, 3)))  # (B, 1, H, W) -> (B, K)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: intra-op threads only add synchronization (30x slower on a loaded 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics so that a round trip that drops them is caught."""
    from helpers import randomize_batchnorm

    return randomize_batchnorm(model, seed)


DDP_RECIPE_FIELDS = dict(name="ddp", epochs=1, batch_size=8, lr=0.1, crop_padding=0, horizontal_flip=False)


def ddp_worker(rank: int, world_size: int, port: int, steps: int, out_path: str) -> None:
    """One process of the DDP test: join a gloo group, train, rank 0 writes the weights (safetensors)."""
    import os

    from safetensors.torch import save_file

    from edgevision.training import Recipe, init_from_environment, train
    from edgevision.training.ddp import shutdown

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    context = init_from_environment("gloo")
    assert context.world_size == world_size and context.rank == rank
    torch.manual_seed(0)
    result = train(BatchNormFreeNet(), toy_splits(count=64), Recipe(**DDP_RECIPE_FIELDS), resolution=8, seed=0, max_steps=steps, device="cpu")
    if rank == 0:
        save_file({k: v.contiguous() for k, v in result.model.state_dict().items()}, out_path)
    shutdown()
