"""A generic ``.npz`` of images and labels (read with ``allow_pickle=False``: no object arrays, no code).

Keys: ``images`` (or ``x``) and ``labels`` (or ``y``); optionally ``class_names``.
Images may be ``(N, H, W)`` (grey), ``(N, H, W, C)`` or ``(N, C, H, W)`` with C in {1, 3}, as
uint8 0-255 or float 0-1. Labels are ``(N,)`` integers or ``(N, K)`` 0/1 multi-hot (multi-label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..validation import ValidationError, check_finite_images, check_labels
from .base import DataError, TensorImageDataset


def _sane(check, *args) -> None:
    try:
        check(*args)
    except ValidationError as error:
        raise DataError(str(error)) from None

__all__ = ["load_npz"]


def _to_nchw_uint8(images: np.ndarray, path: Path) -> torch.Tensor:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"{str(path)!r}: images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3, got {images.shape}")
    if images.shape[2] != images.shape[3]:
        raise DataError(f"{str(path)!r}: images must be square, got {images.shape[2]}x{images.shape[3]}; crop or resize them first")
    if np.issubdtype(images.dtype, np.floating):
        _sane(check_finite_images, images, str(path))
        if images.min() < 0.0 or images.max() > 1.0:
            raise DataError(f"{str(path)!r}: float images must be in [0, 1], got [{images.min():.3g}, {images.max():.3g}]")
        images = np.round(images * 255.0)
    elif images.dtype != np.uint8:
        raise DataError(f"{str(path)!r}: images must be uint8 or float, got {images.dtype}")
    return torch.from_numpy(np.ascontiguousarray(images.astype(np.uint8)))


def load_npz(path: str | Path) -> tuple[TensorImageDataset, tuple[str, ...], bool]:
    """(dataset, class names, multi_label) from an ``.npz`` file."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"npz file {str(file)!r} does not exist")
    try:
        archive = np.load(file, allow_pickle=False)
        arrays = {key: archive[key] for key in archive.files}
    except Exception as error:  # not a zip, or object arrays that would need pickle
        raise DataError(f"{str(file)!r} is not a readable .npz without pickle ({type(error).__name__}: {error})") from None
    image_key = next((k for k in ("images", "x") if k in arrays), None)
    label_key = next((k for k in ("labels", "y") if k in arrays), None)
    if image_key is None or label_key is None:
        raise DataError(f"{str(file)!r} has arrays {sorted(arrays)}; it needs 'images' (or 'x') and 'labels' (or 'y')")
    if "class_names" in arrays and arrays["class_names"].ndim != 1:
        raise DataError(f"{str(file)!r}: class_names must be a 1-D array of names, got shape {arrays['class_names'].shape}")
    images = _to_nchw_uint8(arrays[image_key], file)
    labels = arrays[label_key]
    multi_label = labels.ndim == 2
    if multi_label:
        if not np.isin(labels, (0, 1)).all():
            raise DataError(f"{str(file)!r}: 2-D labels are multi-hot and must hold only 0 and 1")
        num_classes = labels.shape[1]
        tensor_labels = torch.from_numpy(labels.astype(np.float32))
    else:
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
            raise DataError(f"{str(file)!r}: labels must be (N,) non-negative integers or (N, K) multi-hot, got {labels.dtype} {labels.shape}")
        declared = len(arrays["class_names"]) if "class_names" in arrays and arrays["class_names"].ndim == 1 else None
        num_classes = declared if declared is not None else max(int(labels.max()) + 1, 1)
        _sane(check_labels, labels, num_classes if labels.min() >= 0 or declared is not None else max(num_classes, 2), str(file))
        tensor_labels = torch.from_numpy(labels.astype(np.int64))
        empty = sorted(set(range(num_classes)) - set(np.unique(labels).tolist()))
        if empty:
            raise DataError(f"{str(file)!r}: class(es) {empty} have no images; renumber the labels 0..K-1 without gaps")
    if "class_names" in arrays:
        names = tuple(str(n) for n in arrays["class_names"])
        if len(names) != num_classes:
            raise DataError(f"{str(file)!r}: {len(names)} class_names for {num_classes} classes")
    else:
        names = tuple(str(i) for i in range(num_classes))
    return TensorImageDataset(images, tensor_labels), names, multi_label
