"""Datasets: CIFAR-10/100 pickle batches (restricted unpickler), ImageFolder trees, ``.npz``, and the embedded MNIST.

``load_data("default" | "cifar10:DIR" | "cifar100:DIR" | "imagefolder:DIR" | "npz:FILE")`` returns
:class:`DataSplits`; :class:`BatchPreprocessor` does resizing, augmentation and normalization on
batches; :func:`make_loader` builds the DataLoader.
"""

from .base import DataError, DataSplits, TensorImageDataset, channel_statistics, split_indices
from .cifar import RestrictedUnpickler, UnsafePickleError, load_cifar
from .loader import DATA_KINDS, DataSpec, load_data, make_loader, parse_data_spec
from .transforms import BatchPreprocessor, MixAugment

__all__ = [
    "BatchPreprocessor",
    "DATA_KINDS",
    "DataError",
    "DataSpec",
    "DataSplits",
    "MixAugment",
    "RestrictedUnpickler",
    "TensorImageDataset",
    "UnsafePickleError",
    "channel_statistics",
    "load_cifar",
    "load_data",
    "make_loader",
    "parse_data_spec",
    "split_indices",
]
