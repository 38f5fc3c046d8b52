"""Mult-adds of an SR network for a given *output* size, the convention of CARN's Table 2 and most SR papers
(Ahn et al. 2018, Sec. 4.1: "computed assuming the HR image is 720p", i.e. a 1280x720 SR output).

Every network here is fully convolutional at same padding, so its mult-adds are linear in the LR
pixel count: we count a small LR input with :func:`edgevision.counting.count_macs` and scale by
``H*W / (s*s) / (h*w)``. For x3 that LR size is fractional (1280/3 x 240), as in the paper (118.8G
for CARN x3 is only reproduced that way). EFDN's ESA branch pools to a coarse grid, so its cost is
not exactly linear; we count it at the real LR size ``ceil(H/s) x ceil(W/s)`` instead.
"""

from __future__ import annotations

import math

from torch import nn

from ..counting import count_macs

__all__ = ["sr_mult_adds", "HD_OUTPUT"]

#: (H, W) of the papers' SR output
HD_OUTPUT = (720, 1280)


def sr_mult_adds(model: nn.Module, output_size: tuple[int, int] = HD_OUTPUT, scale: int | None = None) -> float:
    """Multiply-accumulates of ``model`` producing an ``output_size`` (H, W) image at ``scale`` (default: the spec's)."""
    spec = model.spec
    scale = scale or spec.scale
    if scale != spec.scale:
        raise ValueError(f"{spec.name} runs at x{spec.scale}; rebuild it with spec.with_scale({scale})")
    height, width = output_size
    if getattr(spec, "kind", "") == "efdn":
        return float(count_macs(model, (math.ceil(height / scale), math.ceil(width / scale))))
    probe = 24  # LR probe side: linear cost, so any size works; small to stay cheap
    return count_macs(model, (probe, probe)) * (height * width) / (scale * scale) / (probe * probe)
