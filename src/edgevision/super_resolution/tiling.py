"""Tiled inference: super-resolve an image of any size in bounded memory.

The LR image is cut into ``tile x tile`` cores; each is run with ``overlap`` extra LR pixels of real
context on every side (fewer at the image border, where the network sees its own zero padding exactly
as in one whole-image pass), and only the core's ``tile*s`` output is kept. When ``overlap`` covers
the network's receptive-field radius (in LR pixels) the result equals the untiled output; a purely
convolutional network (CARN, CARN-M, GhostSR) then matches to float rounding everywhere. EFDN's ESA
pools over its whole input, so tiles differ from one pass slightly, more so for small tiles.

Peak memory: one padded tile's activations plus the output image, whatever the image size.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["tiled_super_resolve", "super_resolve", "check_sr_input"]


@torch.no_grad()
def tiled_super_resolve(model: nn.Module, lr: torch.Tensor, scale: int, tile: int = 128, overlap: int = 16) -> torch.Tensor:
    """[N, C, h, w] -> [N, C, h*s, w*s] through tiles of ``tile`` LR pixels with ``overlap`` context."""
    if tile < 1 or overlap < 0:
        raise ValueError(f"tile must be >= 1 and overlap >= 0, got tile={tile}, overlap={overlap}")
    n, c, h, w = lr.shape
    out: torch.Tensor | None = None
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            bottom, right = min(top + tile, h), min(left + tile, w)
            y0, x0 = max(0, top - overlap), max(0, left - overlap)
            y1, x1 = min(h, bottom + overlap), min(w, right + overlap)
            sr = model(lr[:, :, y0:y1, x0:x1])  # [N, C, (y1-y0)*s, (x1-x0)*s]
            if out is None:
                out = sr.new_empty(n, sr.shape[1], h * scale, w * scale)
            core = sr[:, :, (top - y0) * scale: (bottom - y0) * scale, (left - x0) * scale: (right - x0) * scale]
            out[:, :, top * scale: bottom * scale, left * scale: right * scale] = core
    return out


@torch.no_grad()
def super_resolve(model: nn.Module, lr: torch.Tensor, scale: int, tile: int | None = None, overlap: int = 16) -> torch.Tensor:
    """[C, h, w] or [N, C, h, w] in [0, 1] -> the SR image clamped to [0, 1]; tiled when ``tile`` is set."""
    batched = lr.dim() == 4
    x = lr if batched else lr[None]
    if tile is not None and (x.shape[-2] > tile or x.shape[-1] > tile):
        y = tiled_super_resolve(model, x, scale, tile, overlap)
    else:
        y = model(x)
    y = y.clamp(0, 1)
    return y if batched else y[0]


def check_sr_input(spec, channels: int, height: int, width: int, tile: int | None = None, overlap: int = 0) -> None:
    """ValueError (one line) when an LR image of that size cannot go through ``spec``'s network as tiled."""
    if channels != spec.in_channels:
        raise ValueError(f"{spec.name} takes {spec.in_channels}-channel images, got {channels} channel(s)")
    smallest = spec.min_input_size
    if min(height, width) < smallest:
        raise ValueError(f"an LR image of {height}x{width} is smaller than {spec.name}'s minimum input {smallest}x{smallest}")
    if tile is not None:
        if tile < smallest:
            raise ValueError(f"--tile {tile} is smaller than {spec.name}'s minimum input {smallest}")
        if overlap >= tile:
            raise ValueError(f"--tile-overlap {overlap} must be smaller than --tile {tile}")
        # the last tile of a row/column can be narrow; with its overlap it must still reach the minimum
        for side in (height, width):
            rest = side % tile
            if side > tile and rest and rest + min(overlap, side - rest) < smallest:
                raise ValueError(f"a {side}-pixel side leaves a {rest}-pixel last tile that, with --tile-overlap {overlap}, is smaller "
                                 f"than {spec.name}'s minimum input {smallest}; raise --tile-overlap or change --tile")
