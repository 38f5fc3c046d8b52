"""Multi-process data-parallel training with ``torch.distributed`` (DDP), launched by ``torchrun``.

``torchrun --nproc_per_node 2 -m edgevision.cli train mobilenetv2_050`` starts two processes;
each reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` from the environment that torchrun sets,
joins a process group (gloo on CPU, NCCL on GPUs) and trains on its shard of every global batch
(:func:`~edgevision.datasets.make_loader` uses a DistributedSampler). DDP averages gradients
across processes in ``backward``, so K processes with batch B/K take the same steps as one
process with batch B, up to BatchNorm: each process normalizes with its own batch statistics
(PyTorch's default); pass ``sync_batchnorm=True`` on GPUs to share them.
Only rank 0 logs, draws progress and writes files.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistributedContext", "init_from_environment", "wrap_model", "shutdown", "all_reduce_sum"]


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_context() -> DistributedContext:
    """The context of an already initialized process group (or the single-process one)."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistributedContext()


def init_from_environment(backend: str | None = None) -> DistributedContext:
    """Join the process group torchrun describes in the environment; single process when WORLD_SIZE is unset or 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    if dist.is_initialized():
        return current_context()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank)


def wrap_model(model: nn.Module, device: torch.device, sync_batchnorm: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` (already on ``device``); rank 0's weights are broadcast."""
    if sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    device_ids = [device.index] if device.type == "cuda" else None
    # depthwise weights (C, 1, k, k) in channels_last have strides DDP's bucket views report as different; harmless
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum numbers over processes (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
