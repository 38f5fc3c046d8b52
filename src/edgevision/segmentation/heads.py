"""Segmentation heads (torch modules) on a backbone's feature maps.

* :class:`LRASPPHead` — Lite Reduced ASPP (Howard et al. 2019, "Searching for MobileNetV3", Sec. 6.2,
  Fig. 10): a 1x1 conv branch on the 1/16 map gated by a global-pool 1x1 conv + sigmoid, upsampled,
  classified and added to a 1x1 classifier of the 1/8 map. torchvision's ``LRASPPHead`` layout
  (``cbr``, ``scale``, ``low_classifier``, ``high_classifier``) so its weights map one to one.
* :class:`ASPP` / :class:`DeepLabV3Head` — atrous spatial pyramid pooling (Chen et al. 2017,
  "Rethinking Atrous Convolution", Sec. 3.3): a 1x1 branch, one 3x3 branch per atrous rate, image
  pooling, concatenated and projected; then 3x3 conv + classifier as torchvision's ``DeepLabHead``.
  With no rates it is the Mobile DeepLabv3 head of Sandler et al. 2018 (MobileNetV2, Sec. 6.3,
  Table 7: 1x1 + image pooling only, the efficient choice).
* :class:`FCNHead` — the auxiliary head (3x3 conv to C/4, dropout 0.1, 1x1 classifier), as torchvision.
* :class:`UNetDecoder` — U-Net (Ronneberger et al. 2015) decoding of a feature pyramid: upsample x2,
  concatenate the skip, two 3x3 conv-BN-ReLU (depthwise-separable in the real-time variant).

All convs are :class:`~edgevision.layers.ConvNormAct`, so ``reparameterize`` folds their BatchNorm.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.conv_norm_act import ConvNormAct

__all__ = ["LRASPPHead", "ASPP", "DeepLabV3Head", "FCNHead", "UNetDecoder"]


class LRASPPHead(nn.Module):
    """``(low (N, C_low, H/8, W/8), high (N, C_high, H/16, W/16))`` -> logits (N, K, H/8, W/8)."""

    def __init__(self, low_channels: int, high_channels: int, num_classes: int, inter_channels: int = 128) -> None:
        super().__init__()
        self.cbr = ConvNormAct(high_channels, inter_channels, 1, act=nn.ReLU)
        # the gate: global average pool -> 1x1 conv (no bias, no norm) -> sigmoid (Fig. 10)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter_channels, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.scale(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class _ASPPPooling(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvNormAct(in_channels, out_channels, 1, act=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(self.pool(x)), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """(N, C, h, w) -> (N, out_channels, h, w): [1x1, 3x3 at each rate, image pooling] -> concat -> 1x1 -> dropout."""

    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 256, dropout: float = 0.5) -> None:
        super().__init__()
        branches = [ConvNormAct(in_channels, out_channels, 1, act=nn.ReLU)]
        branches += [ConvNormAct(in_channels, out_channels, 3, dilation=rate, act=nn.ReLU) for rate in atrous_rates]
        branches.append(_ASPPPooling(in_channels, out_channels))
        self.branches = nn.ModuleList(branches)
        self.project = ConvNormAct(len(branches) * out_channels, out_channels, 1, act=nn.ReLU)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.project(torch.cat([branch(x) for branch in self.branches], dim=1)))


class DeepLabV3Head(nn.Module):
    """ASPP -> 3x3 conv-BN-ReLU -> 1x1 classifier (torchvision's ``DeepLabHead``)."""

    def __init__(self, in_channels: int, num_classes: int, atrous_rates: Sequence[int], channels: int = 256, head_conv: bool = True) -> None:
        super().__init__()
        self.aspp = ASPP(in_channels, atrous_rates, channels)
        self.conv = ConvNormAct(channels, channels, 3, act=nn.ReLU) if head_conv else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv(self.aspp(x)))


class FCNHead(nn.Module):
    """(N, C, h, w) -> (N, K, h, w): 3x3 conv to C/4 -> BN -> ReLU -> dropout 0.1 -> 1x1 (Long et al. 2015; torchvision)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        inter = in_channels // 4
        self.conv = ConvNormAct(in_channels, inter, 3, act=nn.ReLU)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Conv2d(inter, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.conv(x)))


class _DecoderStage(nn.Module):
    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, separable: bool) -> None:
        super().__init__()
        total = in_channels + skip_channels
        if separable:  # depthwise 3x3 + pointwise 1x1, twice: the real-time decoder (MobileNet-style cost)
            self.convs = nn.Sequential(
                ConvNormAct(total, total, 3, groups=total, act=nn.ReLU), ConvNormAct(total, out_channels, 1, act=nn.ReLU),
                ConvNormAct(out_channels, out_channels, 3, groups=out_channels, act=nn.ReLU), ConvNormAct(out_channels, out_channels, 1, act=nn.ReLU),
            )
        else:
            self.convs = nn.Sequential(ConvNormAct(total, out_channels, 3, act=nn.ReLU), ConvNormAct(out_channels, out_channels, 3, act=nn.ReLU))

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        size = skip.shape[-2:] if skip is not None else (x.shape[-2] * 2, x.shape[-1] * 2)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return self.convs(x if skip is None else torch.cat([x, skip], dim=1))


class UNetDecoder(nn.Module):
    """Pyramid ``[fine ... coarse]`` -> logits at the finest level's resolution (one decoder stage per skip)."""

    def __init__(self, channels: Sequence[int], decoder_channels: Sequence[int], num_classes: int, separable: bool = True) -> None:
        super().__init__()
        channels = list(channels)
        if len(decoder_channels) != len(channels) - 1:
            raise ValueError(f"UNetDecoder needs one decoder width per skip level: {len(channels) - 1}, got {len(decoder_channels)}")
        stages, current = [], channels[-1]
        for skip, width in zip(reversed(channels[:-1]), decoder_channels):
            stages.append(_DecoderStage(current, skip, width, separable))
            current = width
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Conv2d(current, num_classes, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for stage, skip in zip(self.stages, reversed(features[:-1])):
            x = stage(x, skip)
        return self.classifier(x)
