"""MATLAB-compatible ``imresize(img, 1/s, 'bicubic')``: how DIV2K, Set5, Set14, BSD100 and Urban100 LR
images are made (Timofte et al. 2017; Lim et al. EDSR 2017), and the bicubic baseline every SR table
reports.

MATLAB's algorithm (``imresize.m``): the Keys cubic with a = -0.5; output pixel ``x`` (1-based) maps to
input ``u = x/scale + 0.5*(1 - 1/scale)``; when shrinking (``scale < 1``) the kernel is stretched by
``1/scale`` (antialiasing) and its taps weigh ``scale * cubic(scale * d)``; weights are normalised to
sum 1; out-of-range taps are mirrored ('symmetric': the edge pixel repeats). Separable: one weight
matrix per axis, applied to rows then columns (MATLAB's order for equal scales). Results are float; MATLAB
rounds back to uint8 for a uint8 input, which :func:`imresize` does when ``quantize=True``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["imresize", "resize_weights", "cubic"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys (1981) cubic convolution kernel with a = -0.5, MATLAB's ``cubic``."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def resize_weights(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """[out_length, in_length] float64 matrix M with ``resized = M @ signal`` along one axis."""
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # [out, taps], 1-based
    distance = u[:, None] - indices
    weights = scale * cubic(scale * distance) if scale < 1 else cubic(distance)
    weights /= weights.sum(axis=1, keepdims=True)
    # mirror out-of-range taps (1-based symmetric: 0 -> 1, -1 -> 2, n+1 -> n)
    zero_based = indices.astype(np.int64) - 1
    period = 2 * in_length
    zero_based = np.mod(zero_based, period)
    zero_based = np.where(zero_based >= in_length, period - 1 - zero_based, zero_based)
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), taps), zero_based.ravel()), weights.ravel())
    return matrix


def imresize(image, scale: float | None = None, output_size: tuple[int, int] | None = None, quantize: bool = False):
    """Bicubic resize of ``image`` ([..., H, W] tensor, or an HxW / HxWxC numpy array) by ``scale``
    (e.g. 1/4) or to ``output_size`` (H, W), MATLAB-compatible. Returns the same kind of array, float
    (uint8 in, uint8 out when ``quantize``: rounded like MATLAB)."""
    is_numpy = isinstance(image, np.ndarray)
    if is_numpy:
        was_uint8 = image.dtype == np.uint8
        channels_last = image.ndim == 3
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1) if channels_last else image)).double()
    else:
        was_uint8 = image.dtype == torch.uint8
        tensor = image.double()
    height, width = tensor.shape[-2:]
    if output_size is None:
        if scale is None or scale <= 0:
            raise ValueError(f"imresize needs a positive scale or an output_size, got scale={scale}")
        output_size = (math.ceil(height * scale), math.ceil(width * scale))
    out_h, out_w = output_size
    scale_h = scale if scale is not None else out_h / height
    scale_w = scale if scale is not None else out_w / width
    rows = torch.from_numpy(resize_weights(height, out_h, scale_h))
    cols = torch.from_numpy(resize_weights(width, out_w, scale_w))
    out = torch.einsum("oh,...hw->...ow", rows, tensor)
    out = torch.einsum("pw,...ow->...op", cols, out)
    if quantize and was_uint8:
        out = out.round().clamp(0, 255).to(torch.uint8)
    if is_numpy:
        array = out.numpy()
        return array.transpose(1, 2, 0) if channels_last else array
    return out if (quantize and was_uint8) else out.to(image.dtype if image.is_floating_point() else torch.float32)
