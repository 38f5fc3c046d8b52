"""Tiled inference: super-resolve an image of any size in bounded memory.

The LR image is cut into ``tile x tile`` cores; each is run with ``overlap`` extra LR pixels of real
context on every side (fewer at the image border, where the network sees its own zero padding exactly
as in one whole-image pass), and only the core's ``tile*s`` output is kept. When ``overlap`` covers
the network's receptive-field radius (in LR pixels) the result equals the untiled output; a purely
convolutional network (CARN, CARN-M, GhostSR) then matches to float rounding everywhere. EFDN's ESA
pools over its whole input, so tiles differ from one pass slightly, more so for small tiles.

Peak memory: one padded tile's activations plus the output image, whatever the image size.

The network is any runnable ``[N, C, h, w] -> [N, C, h*s, w*s]``: the PyTorch model, or an ONNX graph
with a free height and width (the dynamic-size INT8 graph of :mod:`.int8`) opened by :func:`onnx_sr_runnable`.
"""

from __future__ import annotations

import os
from typing import Callable

import torch
from torch import nn

__all__ = ["tiled_super_resolve", "super_resolve", "check_sr_input", "onnx_sr_runnable"]


@torch.no_grad()
def tiled_super_resolve(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, scale: int, tile: int = 128, overlap: int = 16) -> torch.Tensor:
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
def super_resolve(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], lr: torch.Tensor, scale: int, tile: int | None = None, overlap: int = 16) -> torch.Tensor:
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


def onnx_sr_runnable(path: str | os.PathLike, spec, threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """An ONNX Runtime session of an SR graph (fp32 or INT8) for ``spec``'s images at any size, as a runnable.

    ValueError (one line) when the file is not a graph this checkpoint's images can go through: not ONNX, another
    channel count, a fixed height and width (tiles and whole images come in many sizes), or another scale.
    """
    from ..deploy.quantize import QuantizeError, load_onnx_model
    from ..deploy.tasks import onnx_forward

    if os.path.isdir(path):
        raise ValueError(f"{os.fspath(path)!r} is a directory, not an ONNX graph (.onnx)")
    try:
        graph = load_onnx_model(path)
    except QuantizeError as error:
        raise ValueError(str(error)) from None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in graph.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != spec.in_channels:
        raise ValueError(f"{os.fspath(path)!r} takes input {'x'.join('?' if d is None else str(d) for d in dims)}, not "
                         f"N x {spec.in_channels} x H x W images of {spec.name}")
    if dims[2] is not None or dims[3] is not None:
        raise ValueError(f"{os.fspath(path)!r} has a fixed {dims[2]}x{dims[3]} input; tiles and images come in many sizes: make a "
                         f"dynamic-size graph with `edgevision eval CKPT --max-drop-db DB --int8-dynamic` or `edgevision deploy CKPT --dynamic-size`")
    run = onnx_forward(path, threads or max(1, (os.cpu_count() or 2) // 2))
    side = spec.min_input_size
    probe = run(torch.zeros(1, spec.in_channels, side, side + 1))
    probe = probe[0] if isinstance(probe, tuple) else probe
    if tuple(probe.shape[-2:]) != (side * spec.scale, (side + 1) * spec.scale):
        raise ValueError(f"{os.fspath(path)!r} maps a {side}x{side + 1} image to {probe.shape[-2]}x{probe.shape[-1]}, not the "
                         f"checkpoint's x{spec.scale}; give the graph made from this checkpoint")

    def runnable(lr: torch.Tensor) -> torch.Tensor:
        out = run(lr)
        return out[0] if isinstance(out, tuple) else out

    return runnable
