"""Images for calibration, the mixed-precision search and verification: three disjoint sets.

Calibration images (activation ranges) and the search split (which blocks stay in float) come
from the training split of a dataset, verification images from its validation split, so the
accuracy a deployed form is judged on was never used to choose its scales or its precisions.
Images get the training preprocessing (:class:`~edgevision.datasets.BatchPreprocessor`: channels
matched, resized to the model's input, normalized with the training mean/std).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["CalibrationError", "ImageSet", "DeploySplits", "check_images", "deploy_splits"]


class CalibrationError(ValueError):
    """Calibration or verification images that cannot be used; the message says what is wrong."""


@dataclass(frozen=True)
class ImageSet:
    """Preprocessed float images ``(N, C, H, W)`` and their labels ``(N,)`` (None when unlabelled)."""

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str  # e.g. "default/train[0:64]"

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass(frozen=True)
class DeploySplits:
    calibration: ImageSet
    search: ImageSet  # mixed-precision choices are scored here
    verification: ImageSet  # the held-out split every candidate is judged on
    num_classes: int


def check_images(images: torch.Tensor, input_shape: Sequence[int], what: str = "calibration images") -> torch.Tensor:
    """``images`` as float (N, C, H, W) matching the model's (C, H, W), or a one-line error."""
    if not isinstance(images, torch.Tensor):
        raise CalibrationError(f"{what} must be a tensor (N, C, H, W) or a dataset name, got {type(images).__name__}")
    expected = "x".join(map(str, input_shape))
    if images.ndim != 4:
        raise CalibrationError(f"{what} must be 4-D (N, C, H, W), got shape {tuple(images.shape)}; the model takes Nx{expected}")
    if images.shape[0] == 0:
        raise CalibrationError(f"{what}: the set is empty; give at least one image (e.g. --calibration 64)")
    if tuple(images.shape[1:]) != tuple(input_shape):
        got = "x".join(map(str, images.shape[1:]))
        raise CalibrationError(
            f"{what} are {got} (CxHxW) but the model takes {expected}; resize them or pass a dataset so they are preprocessed"
        )
    if not images.is_floating_point():
        raise CalibrationError(f"{what} must be preprocessed float tensors, got {images.dtype}; pass a dataset to preprocess uint8 images")
    return images.float()


def _take(dataset, indices: torch.Tensor, preprocess, source: str, shape: Sequence[int], allow_empty: bool = False) -> ImageSet:
    if len(indices) == 0 and allow_empty:
        return ImageSet(torch.empty((0, *shape)), torch.empty(0, dtype=torch.long), source)
    if len(indices) == 0:
        raise CalibrationError(f"{source}: no images left for this split; use a larger dataset or fewer calibration images")
    images, labels = [], []
    for start in range(0, len(indices), 256):
        batch = [dataset[int(i)] for i in indices[start : start + 256]]
        images.append(preprocess(torch.stack([image for image, _ in batch]), train=False))
        labels.append(torch.stack([torch.as_tensor(label) for _, label in batch]))
    label_tensor = torch.cat(labels)
    return ImageSet(torch.cat(images), label_tensor if label_tensor.ndim == 1 else None, source)


def deploy_splits(
    data,
    input_shape: Sequence[int],
    *,
    calibration: int = 64,
    search: int = 256,
    verification: int = 1000,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
) -> DeploySplits:
    """Calibration and search images from ``data``'s training split (disjoint), verification from its validation split.

    ``data`` is a ``--data`` text (``"default"``, ``"cifar10:DIR"``, ``"imagefolder:DIR"``, ``"npz:FILE"``) or a
    :class:`~edgevision.datasets.DataSplits` from any loader.

    ``mean``/``std`` default to the training set's statistics (what ``edgevision train`` stores);
    pass a checkpoint's recorded ones to repeat its preprocessing exactly.
    """
    from ..datasets import BatchPreprocessor, load_data

    channels, height, width = (int(d) for d in input_shape)
    if height != width:
        raise CalibrationError(f"deploy preprocesses square inputs; the model takes {height}x{width}")
    if calibration < 1:
        raise CalibrationError(f"the calibration set is empty ({calibration} images); give at least 1 (e.g. --calibration 64)")
    from ..datasets import DataSplits

    splits = data if isinstance(data, DataSplits) else load_data(data, image_size=height)  # DataError names the accepted forms
    data = splits.name if isinstance(data, DataSplits) else data
    preprocess = BatchPreprocessor(height, channels, tuple(mean or splits.mean), tuple(std or splits.std))
    order = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))
    calibration_idx = order[:calibration]
    search_idx = order[calibration : calibration + search]
    val_idx = torch.randperm(len(splits.val), generator=torch.Generator().manual_seed(seed + 1))[:verification]
    if len(calibration_idx) < calibration:
        raise CalibrationError(f"{data} has {len(splits.train)} training images, fewer than the {calibration} calibration images asked for")
    return DeploySplits(
        calibration=_take(splits.train, calibration_idx, preprocess, f"{data}/train[{len(calibration_idx)} images]", input_shape),
        search=_take(splits.train, search_idx, preprocess, f"{data}/train[{len(search_idx)} other images]", input_shape, allow_empty=search == 0),
        verification=_take(splits.val, val_idx, preprocess, f"{data}/val[{len(val_idx)} images]", input_shape),
        num_classes=splits.num_classes,
    )
