"""Monocular depth estimation: FCRN specs (Laina et al. 2016), the berHu loss, the standard depth
metrics (Eigen et al. 2014), procedural and real depth data, an NYU-v2-layout loader, training/eval.

Submodules import torch lazily where they can; ``edgevision.depth.spec`` holds the spec kinds.
"""

from .spec import DepthModelSpec, DepthNet

__all__ = ["DepthModelSpec", "DepthNet"]
