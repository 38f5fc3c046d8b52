"""Validation at the boundary: numbers, sizes and memory checked before any work or allocation starts.

Every entry point (CLI option, file loader, Python API) that takes a size, a rate or a budget
checks it here, so the error is one line naming the value, what is allowed and how to fix it,
raised before a model is built or a tensor allocated. The memory estimate compares what a shape
(or a spec's parameters) would need with what this machine has and names both numbers, so
``--input 1x3x100000x100000`` is refused in microseconds instead of dying in the allocator.

Errors are :class:`ValidationError` (a ``ValueError``); the CLI turns them into exit code 2.
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Sequence

__all__ = [
    "ValidationError",
    "ACTIVATION_FACTOR",
    "MAX_DIMENSION",
    "available_memory_bytes",
    "check_finite",
    "check_int_range",
    "check_memory",
    "check_name_length",
    "check_finite_images",
    "check_labels",
    "check_shape",
    "format_bytes",
]

#: no tensor dimension may exceed this: past int32, kernels overflow their index arithmetic
MAX_DIMENSION = 2**31 - 1
#: a vision network's peak activations relative to its input: MobileNetV2 at 224 peaks at
#: 96x112x112 (8x the 3x224x224 input), ResNet-50 at 64x112x112 plus its residual (~6x); 8 covers the zoo
ACTIVATION_FACTOR = 8


class ValidationError(ValueError):
    """A value outside what the entry point accepts; the message names the value and the fix."""


def format_bytes(count: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{int(count)} B"


def available_memory_bytes() -> int:
    """Memory this process can still get: psutil's 'available' (free + reclaimable page cache)."""
    import psutil

    return int(psutil.virtual_memory().available)


def check_finite(value: object, name: str, *, minimum: float | None = None, maximum: float | None = None, positive: bool = False) -> float:
    """``value`` as a float if it is a finite number within the bounds; else ValidationError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValidationError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ValidationError(f"{name} must be a finite number, got {value!r}")
    if positive and number <= 0:
        raise ValidationError(f"{name} must be positive, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValidationError(f"{name} must be >= {minimum:g}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ValidationError(f"{name} must be <= {maximum:g}, got {value!r}")
    return number


def check_int_range(value: object, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValidationError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValidationError(f"{name} must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValidationError(f"{name} must be <= {maximum}, got {value!r}")
    return int(value)


def check_memory(needed_bytes: float, what: str, *, available: int | None = None) -> None:
    """Refuse ``what`` when it needs more memory than this machine has available (both numbers named)."""
    available = available_memory_bytes() if available is None else available
    if needed_bytes > available:
        raise ValidationError(
            f"{what} needs about {format_bytes(needed_bytes)} of memory but this machine has {format_bytes(available)} available; "
            "use a smaller size"
        )


def check_shape(
    shape: Sequence[int],
    what: str = "input",
    *,
    element_bytes: int = 4,
    activation_factor: float = ACTIVATION_FACTOR,
    available: int | None = None,
) -> tuple[int, ...]:
    """A tensor shape a network can run: positive dimensions within int32, and (input + its peak
    activations, ``activation_factor`` x the input) within the available memory."""
    dims = tuple(shape)
    for dim in dims:
        check_int_range(dim, f"{what} dimension", 1, MAX_DIMENSION)
    text = "x".join(map(str, dims))
    needed = math.prod(dims) * element_bytes * (1 + activation_factor)
    check_memory(needed, f"{what} {text} (float32 input plus ~{activation_factor:g}x for activations)", available=available)
    return dims


def check_name_length(path: str | os.PathLike, what: str = "path") -> None:
    """Refuse a path whose file name or total length the file system cannot store (ENAMETOOLONG up front)."""
    text = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(text)) or "."
    while not os.path.isdir(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    try:
        name_max = os.pathconf(directory, "PC_NAME_MAX")
        path_max = os.pathconf(directory, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):  # not POSIX: the common limits
        name_max, path_max = 255, 4096
    for part in text.split(os.sep):
        if len(os.fsencode(part)) > name_max:
            raise ValidationError(f"{what} {text[:60]!r}...: the name {part[:40]!r}... has {len(os.fsencode(part))} bytes, over this file system's {name_max}; choose a shorter name")
    if len(os.fsencode(os.path.abspath(text))) >= path_max:
        raise ValidationError(f"{what} {text[:60]!r}... is {len(os.fsencode(text))} bytes long, over this system's {path_max}; choose a shorter path")


# ---- training data sanity: refuse with the count and the first offending index ------------------------
def _count_and_first(mask) -> tuple[int, int]:
    import numpy as np

    flat = np.asarray(mask).reshape(len(mask), -1).any(axis=1) if np.ndim(mask) > 1 else np.asarray(mask)
    indices = np.flatnonzero(flat)
    return int(indices.size), int(indices[0]) if indices.size else -1


def check_finite_images(images, what: str) -> None:
    """Float images must hold no NaN or infinity (a NaN pixel turns into an arbitrary byte, and NaN loss later)."""
    import numpy as np

    if not np.issubdtype(np.asarray(images).dtype, np.floating):
        return
    bad, first = _count_and_first(~np.isfinite(images))
    if bad:
        raise ValidationError(f"{what}: {bad} image(s) contain NaN or infinite pixels (first: image {first}); clean or drop them")


def check_labels(labels, num_classes: int, what: str) -> None:
    """Integer class labels must lie in 0..num_classes-1, and there must be at least two classes to learn."""
    import numpy as np

    labels = np.asarray(labels)
    if num_classes < 2:
        raise ValidationError(f"{what}: every image has the same class ({num_classes} class); a classifier needs at least 2 classes")
    bad, first = _count_and_first((labels < 0) | (labels >= num_classes))
    if bad:
        raise ValidationError(
            f"{what}: {bad} label(s) outside 0..{num_classes - 1} (first: index {first}, label {int(labels[first])}); renumber them"
        )
