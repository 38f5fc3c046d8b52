"""DRN, the dual regression network's primal model (Guo et al., "Closed-loop Matters: Dual Regression
Networks for Single Image Super-Resolution", CVPR 2020): a U-Net that outputs the image at every x2 step.

Structure as the release (guoyongcs/DRN ``model/drn.py``, ``model/common.py``), which the paper's Fig. 3
draws; ``s = 2**P`` (P phases, x4: 2, x8: 3), ``F`` = ``features`` (the release's ``n_feats``):

- the LR input is bicubically upsampled to the output size first (``nn.Upsample(mode='bicubic')``), the
  DIV2K mean subtracted, then a conv3x3 ``3 -> F`` head;
- P down steps; step p: conv3x3 stride 2 ``F*2**p -> F*2**p`` (no bias) + LeakyReLU(0.2) + conv3x3
  ``F*2**p -> F*2**(p+1)`` (no bias) — the release's ``DownBlock`` at x2; the input of each step is kept
  for the skip;
- P up steps; step k: ``blocks`` RCABs (Zhang et al. 2018: conv3x3-ReLU-conv3x3, channel attention with
  reduction 16, + identity) at the step's width, a pixel-shuffle x2 (conv3x3 ``C -> 4C``, no activation),
  a 1x1 conv halving to the skip's width, then concatenation with the matching down step's input;
- one conv3x3 ``-> 3`` "tail" per resolution: P + 1 images, from the LR size up to the output size,
  each with the mean added back. The last one is the SR image.

``forward`` returns the last image only, so evaluation, tiling, export and deploy see an ordinary SR model
(one ONNX output); :meth:`DRN.forward_pyramid` returns all P + 1, which the training loss uses: L1 of
every image against the HR image resized to that size (the LR input itself at the LR size), and with
the dual option one x2 dual module per step (the release's ``dual_models``), see
:mod:`~edgevision.super_resolution.objectives`.

Release templates (``utility.init_model``) and its README's counts: DRN-S x4 30 blocks, F 16, 4.8M;
x8 30, 8, 5.4M; DRN-L x4 40, 20, 9.8M; x8 36, 10, 10.0M (tests/test_super_resolution.py). The release
makes its mean shifts 1x1 convs it means to freeze (24 parameters; its ``requires_grad = False`` is set
on the module, so they do train there); here they are fixed buffers, as in every SR model of this package.

Tiling: channel attention pools over the whole input, so tiled output differs slightly from one pass (as
EFDN's ESA); the bicubic upsampling at the input also looks two LR pixels across a tile's edge.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..spec import check, check_positive
from .carn import SRModelSpec
from .layers import DIV2K_RGB_MEAN, MeanShift, PixelShuffleUpsampler

__all__ = ["DRNSpec", "DRN", "RCAB", "ChannelAttention", "DRN_TEMPLATES"]

#: (blocks, features) of the release's DRN-S / DRN-L templates per scale (guoyongcs/DRN utility.init_model)
DRN_TEMPLATES = {"s": {4: (30, 16), 8: (30, 8)}, "l": {4: (40, 20), 8: (36, 10)}}


@dataclass(frozen=True, kw_only=True)
class DRNSpec(SRModelSpec):
    kind: ClassVar[str] = "drn"

    features: int = 16        # the release's n_feats (DRN-S x4)
    blocks: int = 30          # RCABs per up step (n_blocks)
    reduction: int = 16       # channel-attention reduction (RCAN's)
    negative_slope: float = 0.2  # LeakyReLU of the down steps (the release's --negval)

    def validate(self) -> None:
        super().validate()
        check_positive(self, "features", "blocks", "reduction")
        check(self, "scales", len(self.scales) == 1 and self.scales[0] in (2, 4, 8), "one of (2,), (4,), (8,): DRN is a single-scale x2-step U-Net")

    def with_scale(self, scale: int) -> "DRNSpec":
        if scale not in (2, 4, 8):
            raise ValueError(f"{self.name} is a DRN: its scale is a power of two (2, 4 or 8), not x{scale}")
        return dataclasses.replace(self, scale=scale, scales=(scale,))

    @property
    def phases(self) -> int:
        return int(math.log2(self.scale))

    def build(self) -> "DRN":
        return DRN(self)


class ChannelAttention(nn.Module):
    """x * sigmoid(conv1x1(relu(conv1x1(avgpool(x))))): [N, C, H, W] -> [N, C, H, W] (RCAN's CA layer)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.squeeze(x)


class RCAB(nn.Module):
    """Residual channel-attention block: x + CA(conv3x3(relu(conv3x3(x))))."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1), ChannelAttention(channels, reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DRN(nn.Module):
    """LR [N, 3, h, w] in [0, 1] -> SR [N, 3, h*s, w*s]; :meth:`forward_pyramid` gives every x2 step's image."""

    onnx_output_names = ("sr",)  # read by export (main's protocol): the graph output holds the SR image

    def __init__(self, spec: DRNSpec) -> None:
        super().__init__()
        self.spec = spec
        phases, f = spec.phases, spec.features
        mean = DIV2K_RGB_MEAN if spec.in_channels == 3 else (0.5,) * spec.in_channels
        self.sub_mean, self.add_mean = MeanShift(mean, -1), MeanShift(mean, +1)
        self.head = nn.Conv2d(spec.in_channels, f, 3, padding=1)
        self.down = nn.ModuleList(
            nn.Sequential(nn.Conv2d(f * 2 ** p, f * 2 ** p, 3, stride=2, padding=1, bias=False), nn.LeakyReLU(spec.negative_slope, inplace=True),
                          nn.Conv2d(f * 2 ** p, f * 2 ** (p + 1), 3, padding=1, bias=False))
            for p in range(phases))
        # up step k works at width_in[k] and hands width_in[k] // 2 (after the 1x1) to the concatenation with the skip
        # of down step phases-1-k (width f*2**(phases-1-k)): width_in = [f*2**P, f*2**P, f*2**(P-1), ..., f*2**2]
        width_in = [f * 2 ** phases] + [f * 2 ** (phases - k + 1) for k in range(1, phases)]
        self.up = nn.ModuleList(
            nn.Sequential(*(RCAB(width, spec.reduction) for _ in range(spec.blocks)), PixelShuffleUpsampler(width, 2, act=False),
                          nn.Conv2d(width, f * 2 ** (phases - 1 - k), 1))
            for k, width in enumerate(width_in))
        # tails: the LR-size image from the bottleneck (f*2**P), then one after each up step's concatenation (f*2**P, ..., f*2)
        tail_widths = [f * 2 ** phases] + [f * 2 ** p for p in range(phases, 0, -1)]
        self.tails = nn.ModuleList(nn.Conv2d(width, spec.in_channels, 3, padding=1) for width in tail_widths)
        self.dual_features = f  # the release's dual modules use the primal's n_feats
        # no feature_taps(): the up steps' maps grow x2 each, so feature distillation would pair maps of different sizes
        # with another family's LR-space taps; a teacher distils DRN through its output (objectives' output L1)

    @property
    def pyramid_steps(self) -> int:
        """x2 steps whose images :meth:`forward_pyramid` returns besides the LR-size one (read by the objectives)."""
        return self.spec.phases

    def forward_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[N, 3, h, w] -> [SR at h x w, 2h x 2w, ..., sh x sw] (P + 1 images, the release's ``results``)."""
        return self._run(x, every_step=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, every_step=False)[-1]  # the intermediate tails are not computed (nor exported)

    def _run(self, x: torch.Tensor, every_step: bool) -> list[torch.Tensor]:
        features = self.head(self.sub_mean(F.interpolate(x, scale_factor=self.spec.scale, mode="bicubic", align_corners=False)))
        skips = []
        for step in self.down:
            skips.append(features)                         # [N, f*2**p, H/2**p, W/2**p]
            features = step(features)
        images = [self.add_mean(self.tails[0](features))] if every_step else []  # [N, 3, h, w]
        for k, step in enumerate(self.up):
            features = torch.cat((step(features), skips[-1 - k]), dim=1)  # [N, f*2**(P-k), h*2**(k+1), w*2**(k+1)]
            if every_step or k == len(self.up) - 1:
                images.append(self.add_mean(self.tails[k + 1](features)))
        return images
