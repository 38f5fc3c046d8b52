"""``--data`` text -> :class:`DataSplits`, and DataLoaders that keep both cores busy.

``default`` | ``cifar10:DIR`` | ``cifar100:DIR`` | ``imagefolder:DIR`` | ``npz:FILE``.

Loader workers: in-memory datasets (CIFAR, npz, the embedded MNIST) are sliced in the main
process (a worker would only add inter-process copies); lazily decoded ImageFolder trees get
``cpu_count - 1`` worker processes (one on a 2-core machine) that decode JPEG/PNG while the main
process runs the network with its intra-op threads, so both cores work. Batches come from a
:class:`~torch.utils.data.DistributedSampler`, also with one process: with a shuffle seeded by
``seed + epoch``, the global batch at step k is the same set of images however many processes
share it, which is what makes DDP runs reproduce single-process runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .base import DataError, DataSplits, TensorImageDataset, channel_statistics, split_indices

__all__ = ["DataSpec", "parse_data_spec", "load_data", "make_loader", "default_workers", "DATA_KINDS"]

DATA_KINDS = ("default", "cifar10", "cifar100", "imagefolder", "npz")


@dataclass(frozen=True)
class DataSpec:
    kind: str  # one of DATA_KINDS
    path: str | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def parse_data_spec(text: str) -> DataSpec:
    """``"cifar10:/data/cifar-10-batches-py"`` -> ``DataSpec("cifar10", "/data/...")``; errors name the accepted forms."""
    forms = "default, cifar10:DIR, cifar100:DIR, imagefolder:DIR or npz:FILE"
    kind, _, path = text.partition(":")
    kind = kind.strip().lower()
    if kind not in DATA_KINDS:
        raise DataError(f"unknown dataset {text!r}; use {forms}")
    if kind == "default":
        if path:
            raise DataError(f"'default' takes no path, got {text!r}")
        return DataSpec("default")
    if not path:
        raise DataError(f"{kind} needs a path: {kind}:{'FILE' if kind == 'npz' else 'DIR'}")
    return DataSpec(kind, path)


def load_data(
    spec: DataSpec | str,
    image_size: int = 32,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    on_corrupt: str = "skip",
) -> DataSplits:
    """Read a dataset and split it (official test split for CIFAR; seeded stratified otherwise).

    ``image_size`` matters only for ImageFolder trees (files are decoded to that square size);
    tensor datasets keep their stored size and are resized per batch by the preprocessor.
    """
    spec = parse_data_spec(spec) if isinstance(spec, str) else spec
    flip_safe, multi_label, skipped = True, False, ()
    if spec.kind == "default":
        from .embedded import load_embedded_mnist

        train, val, names = load_embedded_mnist()
        flip_safe = False
    elif spec.kind in ("cifar10", "cifar100"):
        from .cifar import load_cifar

        train, val, names = load_cifar(spec.path, 10 if spec.kind == "cifar10" else 100)
    elif spec.kind == "npz":
        from .npz import load_npz

        full, names, multi_label = load_npz(spec.path)
        train_idx, val_idx = split_indices(full.labels, val_fraction, split_seed)
        train, val = full.subset(train_idx), full.subset(val_idx)
    else:
        train, val, names, skipped = _load_image_folder(Path(spec.path), image_size, val_fraction, split_seed, on_corrupt)
    if not multi_label and len(names) < 2:
        raise DataError(f"{spec}: only {len(names)} class ({', '.join(names)}); a classifier needs at least 2 classes")
    if len(train) == 0 or len(val) == 0:
        raise DataError(f"{spec}: {len(train)} training and {len(val)} validation images; both must be non-empty")
    mean, std = channel_statistics(train)
    sample = train[0][0]
    return DataSplits(
        name=str(spec),
        train=train,
        val=val,
        class_names=names,
        in_channels=int(sample.shape[0]),
        image_size=int(sample.shape[-1]),
        mean=mean,
        std=std,
        flip_safe=flip_safe,
        multi_label=multi_label,
        skipped=tuple(skipped),
    )


def _load_image_folder(root: Path, image_size: int, val_fraction: float, split_seed: int, on_corrupt: str):
    from .imagefolder import ImageFolderDataset, is_grey_tree, scan_image_folder

    if (root / "train").is_dir() and (root / "val").is_dir():
        train_files, names, skipped = scan_image_folder(root / "train", on_corrupt)
        val_files, val_names, val_skipped = scan_image_folder(root / "val", on_corrupt)
        if val_names != names:
            raise DataError(f"{str(root)!r}: train/ has classes {list(names)} but val/ has {list(val_names)}; they must match")
        grey = is_grey_tree(train_files)
        return ImageFolderDataset(train_files, image_size, grey), ImageFolderDataset(val_files, image_size, grey), names, skipped + val_skipped
    files, names, skipped = scan_image_folder(root, on_corrupt)
    full = ImageFolderDataset(files, image_size, is_grey_tree(files))
    train_idx, val_idx = split_indices(full.labels, val_fraction, split_seed)
    return full.subset(train_idx), full.subset(val_idx), names, skipped


def default_workers(dataset: Dataset) -> int:
    """0 for in-memory tensors; otherwise one decoding process per spare core (at least 1)."""
    if isinstance(dataset, TensorImageDataset):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    seed: int = 0,
    workers: int | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> DataLoader:
    """A DataLoader over ``dataset``; ``batch_size`` is per process. Call ``loader.sampler.set_epoch(e)`` each epoch."""
    if batch_size < 1:
        raise DataError(f"batch size must be >= 1, got {batch_size}")
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=train)
    workers = default_workers(dataset) if workers is None else workers
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=train and len(dataset) // world_size >= batch_size,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
    )
