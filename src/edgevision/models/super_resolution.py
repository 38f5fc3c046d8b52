"""Super-resolution models: spec tables and registered builders (``register_model(..., task='super-resolution')``).

Every model here holds its upsampler(s) and a default ``scale`` (4); ``spec.with_scale(s)`` (CLI
``--scale``) picks another built upsampler, or replaces the single one. Counts: tests/test_super_resolution.py.
"""

from __future__ import annotations

from ..registry import register_model
from ..super_resolution.carn import CARNSpec
from ..super_resolution.drn import DRN_TEMPLATES, DRNSpec
from ..super_resolution.efdn import EFDNSpec
from ..super_resolution.srgan import SRGANSpec

_MULTI_SCALE = (2, 3, 4)


@register_model("carn", family="carn", task="super-resolution")
def carn() -> CARNSpec:
    # Ahn et al. 2018 Table 2: multi-scale CARN, 1,592K params; 222.8G / 118.8G / 90.9G mult-adds at x2 / x3 / x4 (720p output)
    return CARNSpec(name="carn", scale=4, scales=_MULTI_SCALE)


@register_model("carn_m", family="carn", task="super-resolution")
def carn_m() -> CARNSpec:
    # Table 2: CARN-M, 412K params; 91.2G / 46.1G / 32.5G mult-adds at x2 / x3 / x4
    return CARNSpec(name="carn_m", scale=4, scales=_MULTI_SCALE, efficient=True, recursive=True, groups=4)


@register_model("ghostsr_carn", family="ghostsr", task="super-resolution")
def ghostsr_carn() -> CARNSpec:
    # Nie et al. 2021: CARN with half of every residual unit's 3x3 output channels made by learned shifts
    return CARNSpec(name="ghostsr_carn", scale=4, scales=_MULTI_SCALE, ghost=True)


@register_model("ghostsr_carn_m", family="ghostsr", task="super-resolution")
def ghostsr_carn_m() -> CARNSpec:
    return CARNSpec(name="ghostsr_carn_m", scale=4, scales=_MULTI_SCALE, efficient=True, recursive=True, groups=4, ghost=True)


@register_model("efdn", family="efdn", task="super-resolution")
def efdn() -> EFDNSpec:
    # Wang 2022 (NTIRE 2022 efficient SR): x4 only, 276K params in the deploy form
    return EFDNSpec(name="efdn", scale=4, scales=(4,))


@register_model("realtime_srgan", family="srgan", task="super-resolution")
def realtime_srgan() -> SRGANSpec:
    # quantization-friendly SRGAN generator (ReLU, no BN, clipped output), the distillation student: 158,979 params at x4
    return SRGANSpec(name="realtime_srgan", scale=4, scales=(4,), channels=32, blocks=4)


@register_model("realtime_srgan_large", family="srgan", task="super-resolution")
def realtime_srgan_large() -> SRGANSpec:
    # the teacher width: SRGAN's 16 residual blocks of 64 channels (Ledig et al. 2017 Fig. 4), no BN: 1,517,571 params at x4
    return SRGANSpec(name="realtime_srgan_large", scale=4, scales=(4,), channels=64, blocks=16)


def _drn(name: str, size: str, scale: int) -> DRNSpec:
    blocks, features = DRN_TEMPLATES[size][scale]
    return DRNSpec(name=name, scale=scale, scales=(scale,), blocks=blocks, features=features, input_size=(64, 64) if scale == 4 else (32, 32))


@register_model("drn_s", family="drn", task="super-resolution")
def drn_s() -> DRNSpec:
    # Guo et al. 2020, the release's DRN-S x4 template (30 RCABs a step, 16 features): 4.8M params (its README)
    return _drn("drn_s", "s", 4)


@register_model("drn_l", family="drn", task="super-resolution")
def drn_l() -> DRNSpec:
    # DRN-L x4 (40, 20): 9.8M params
    return _drn("drn_l", "l", 4)


@register_model("drn_s_x8", family="drn", task="super-resolution")
def drn_s_x8() -> DRNSpec:
    # DRN-S x8 (30, 8): 5.4M params
    return _drn("drn_s_x8", "s", 8)


@register_model("drn_l_x8", family="drn", task="super-resolution")
def drn_l_x8() -> DRNSpec:
    # DRN-L x8 (36, 10): 10.0M params
    return _drn("drn_l_x8", "l", 8)
