"""CIFAR-10 / CIFAR-100 from the official "python version" pickle batches (Krizhevsky 2009).

Layouts read (the extracted archives, unchanged):

* ``cifar-10-batches-py/``: ``data_batch_1`` … ``data_batch_5``, ``test_batch``, ``batches.meta``
* ``cifar-100-python/``: ``train``, ``test``, ``meta``

Each batch is a Python 2 pickle of a dict: ``data`` (N x 3072 uint8, channel-major 32x32),
``labels`` (CIFAR-10) or ``fine_labels`` (CIFAR-100), plus names. Pickle can run any code, so
the files are read with :class:`RestrictedUnpickler`, which admits only what those dicts hold:
plain containers, bytes/str, ints, and numpy arrays (``_reconstruct``, ``ndarray``, ``dtype``).
Anything else - ``os.system``, ``builtins.eval``, any class - raises :class:`UnsafePickleError`
before it is looked up, so it never runs. The official test split is the validation set.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .base import DataError, TensorImageDataset

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "load_cifar", "read_batch"]


class UnsafePickleError(DataError):
    """The pickle asked for a global that CIFAR batches never contain."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1")
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"pickle asked for _codecs.encode with encoding {encoding!r}; only latin1 is allowed")
    return codecs.encode(text, "latin1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy._core.multiarray", "_reconstruct"): np.ndarray.__reduce__(np.zeros(0))[0],
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the numpy-array globals a CIFAR batch holds."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name} from a pickle: CIFAR batches hold only dicts, lists, bytes "
                "and numpy arrays; this file is not an official CIFAR batch"
            ) from None


def read_batch(path: Path) -> dict[str, Any]:
    """One CIFAR pickle batch as a dict with str keys (the Python 2 files have bytes keys)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read CIFAR batch {str(path)!r}: {error.strerror}") from None
    try:
        loaded = RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except UnsafePickleError:
        raise
    except Exception as error:  # truncated or not a pickle at all
        raise DataError(f"{str(path)!r} is not a readable CIFAR pickle batch ({type(error).__name__}: {error})") from None
    if not isinstance(loaded, dict):
        raise DataError(f"{str(path)!r} holds a {type(loaded).__name__}, not the dict of a CIFAR batch")
    return {(key.decode("latin1") if isinstance(key, bytes) else key): value for key, value in loaded.items()}


def _batch_arrays(path: Path, label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    batch = read_batch(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{str(path)!r} has keys {sorted(batch)}; a CIFAR batch needs 'data' and {label_key!r}")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(f"{str(path)!r}: 'data' must be N x 3072 uint8 with N labels, got {data.dtype} {data.shape}, {len(labels)} labels")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())  # rows are R plane, G plane, B plane
    return images, torch.from_numpy(labels)


def _names(meta: Path, key: str, count: int) -> tuple[str, ...]:
    if not meta.is_file():
        return tuple(str(i) for i in range(count))
    names = read_batch(meta).get(key, [])
    decoded = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    return decoded if len(decoded) == count else tuple(str(i) for i in range(count))


def load_cifar(directory: str | Path, classes: int) -> tuple[TensorImageDataset, TensorImageDataset, tuple[str, ...]]:
    """(train, test, class names) of CIFAR-``classes`` (10 or 100) from its extracted python-version folder."""
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"CIFAR-{classes} folder {str(root)!r} does not exist; give the extracted cifar-{classes}-python folder")
    if classes == 10:
        train_files = sorted(root.glob("data_batch_*"))
        test_file, label_key, meta, name_key = root / "test_batch", "labels", root / "batches.meta", "label_names"
    elif classes == 100:
        train_files = [root / "train"] if (root / "train").is_file() else []
        test_file, label_key, meta, name_key = root / "test", "fine_labels", root / "meta", "fine_label_names"
    else:
        raise DataError(f"CIFAR has 10 or 100 classes, got {classes}")
    expected = "data_batch_1..5 and test_batch" if classes == 10 else "train and test"
    if not train_files or not test_file.is_file():
        raise DataError(f"{str(root)!r} is not a CIFAR-{classes} python folder: expected files {expected}")
    parts = [_batch_arrays(path, label_key) for path in train_files]
    train = TensorImageDataset(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
    test = TensorImageDataset(*_batch_arrays(test_file, label_key))
    highest = int(max(train.labels.max(), test.labels.max()))
    if highest >= classes:
        raise DataError(f"{str(root)!r} has label {highest}, too large for CIFAR-{classes}; is it the other CIFAR?")
    from ..validation import ValidationError, check_labels

    for split, data in (("training", train), ("test", test)):
        try:
            check_labels(data.labels.numpy(), classes, f"{str(root)!r} ({split} batches)")
        except ValidationError as error:
            raise DataError(str(error)) from None
    return train, test, _names(meta, name_key, classes)
