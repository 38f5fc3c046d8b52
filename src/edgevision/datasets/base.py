"""What every loader returns: images as uint8 ``(C, H, W)`` tensors with integer (or multi-hot) labels.

Two dataset shapes cover the formats we read:

* :class:`TensorImageDataset` holds every image in one uint8 tensor ``(N, C, H, W)`` (CIFAR,
  ``.npz``, the embedded MNIST): indexing is a slice, so no DataLoader worker is needed.
* :class:`~edgevision.datasets.imagefolder.ImageFolderDataset` decodes files lazily; there the
  DataLoader's worker process decodes while the main process trains (see ``loader.py``).

Augmentation and normalization run on whole batches afterwards (``transforms.py``), so loaders
only decode. :class:`DataSplits` is a train/validation pair plus what a checkpoint must remember
to preprocess the same way later (class names, channel count, mean/std, whether flips are safe).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset

__all__ = ["DataError", "DataSplits", "TensorImageDataset", "split_indices", "channel_statistics"]


class DataError(ValueError):
    """A dataset cannot be read: wrong path, wrong layout, empty class, corrupt file. The message says how to fix it."""


class TensorImageDataset(Dataset):
    """Images ``(N, C, H, W)`` uint8 with labels ``(N,)`` int64, or ``(N, K)`` multi-hot for multi-label data."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape[0] != images.shape[0]:
            raise DataError(f"{images.shape[0]} images but {labels.shape[0]} labels; they must pair one to one")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def subset(self, indices: torch.Tensor) -> "TensorImageDataset":
        return TensorImageDataset(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class DataSplits:
    """A training and a validation set with the facts needed to preprocess them (and to do so again at eval)."""

    name: str  # the ``--data`` text it came from, e.g. "default" or "cifar10:/data/cifar-10-batches-py"
    train: Dataset
    val: Dataset
    class_names: tuple[str, ...]
    in_channels: int
    image_size: int  # stored H = W of the images before resizing to the training resolution
    mean: tuple[float, ...]  # per channel, on [0, 1] pixels, from the training set
    std: tuple[float, ...]
    flip_safe: bool = True  # False for digits/text: a mirrored "2" is not a "2"
    multi_label: bool = False
    skipped: tuple[str, ...] = field(default=())  # corrupt files skipped while loading (with the reason)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def split_indices(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded, stratified split: every class gives ``val_fraction`` of its images (at least one) to validation."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction}")
    generator = torch.Generator().manual_seed(seed)
    keys = labels if labels.ndim == 1 else labels.argmax(1)  # multi-label: stratify by the first label
    train, val = [], []
    for value in torch.unique(keys):
        members = torch.nonzero(keys == value).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        count = int(round(len(members) * val_fraction))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)  # every class of 2+ images on both sides
        val.append(members[:count])
        train.append(members[count:])
    train_idx, val_idx = torch.cat(train), torch.cat(val)
    # shuffle across classes so that a plain sequential read is not sorted by label
    return train_idx[torch.randperm(len(train_idx), generator=generator)], val_idx[torch.randperm(len(val_idx), generator=generator)]


def channel_statistics(dataset: Dataset, max_images: int = 2000) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of [0, 1] pixels over (up to ``max_images`` evenly spaced) training images."""
    if isinstance(dataset, TensorImageDataset):
        step = max(1, len(dataset) // max_images)
        pixels = dataset.images[::step].float() / 255.0  # (n, C, H, W)
    else:
        step = max(1, len(dataset) // max_images)
        pixels = torch.stack([dataset[i][0] for i in range(0, len(dataset), step)]).float() / 255.0
    mean = pixels.mean(dim=(0, 2, 3))
    std = pixels.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())
