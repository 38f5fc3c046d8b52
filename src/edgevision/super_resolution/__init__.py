"""Single-image super-resolution: CARN / CARN-M / GhostSR-CARN / EFDN / real-time SRGAN / DRN specs, MATLAB-compatible
bicubic, bundled HR photos and benchmark folder loaders, Y-channel PSNR/SSIM, tiled inference, training (L1, GAN,
teacher distillation, DRN dual regression)."""

from .carn import CARN, CARNSpec, SRModelSpec
from .cost import sr_mult_adds
from .efdn import EDBB, EFDN, EFDNSpec
from .drn import DRN, DRNSpec
from .dual import DualDownsampler
from .ghost import GhostShiftConv
from .objectives import SRObjectiveConfig, SRObjectives
from .srgan import PatchDiscriminator, SRGANGenerator, SRGANSpec

__all__ = ["CARN", "CARNSpec", "DRN", "DRNSpec", "DualDownsampler", "EDBB", "EFDN", "EFDNSpec", "GhostShiftConv", "PatchDiscriminator", "SRGANGenerator", "SRGANSpec",
           "SRModelSpec", "SRObjectiveConfig", "SRObjectives", "sr_mult_adds"]
