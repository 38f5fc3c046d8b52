"""Single-image super-resolution: CARN / CARN-M / GhostSR-CARN / EFDN specs, MATLAB-compatible bicubic,
bundled HR photos and benchmark folder loaders, Y-channel PSNR/SSIM, tiled inference, training."""

from .carn import CARN, CARNSpec, SRModelSpec
from .cost import sr_mult_adds
from .efdn import EDBB, EFDN, EFDNSpec
from .ghost import GhostShiftConv

__all__ = ["CARN", "CARNSpec", "EDBB", "EFDN", "EFDNSpec", "GhostShiftConv", "SRModelSpec", "sr_mult_adds"]
