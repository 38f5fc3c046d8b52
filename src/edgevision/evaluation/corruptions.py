"""Accuracy under common corruptions at severities 1-5 (after ImageNet-C, Hendrycks & Dietterich, ICLR 2019).

Five corruptions, written on tensors of [0, 1] pixels ``(B, C, H, W)`` so that they run on any
dataset at any resolution without files on disk:

==============  ===============================================  ================================
name            what it does                                     severity 1 .. 5
==============  ===============================================  ================================
gaussian_noise  ``x + N(0, sigma^2)``, clipped                    sigma 0.08 0.12 0.18 0.26 0.38
gaussian_blur   separable Gaussian, sigma in pixels at 32x32,    sigma 0.4 0.6 0.7 0.8 1.0
                scaled with the resolution                       (x R/32)
contrast        ``(x - mean) * c + mean`` per image              c 0.4 0.3 0.2 0.1 0.05
brightness      ``x + b``, clipped                               b 0.1 0.2 0.3 0.4 0.5
jpeg            8x8 DCT per channel, quantized with the JPEG     quality 25 18 15 10 7
                luminance table at that quality (IJG scaling)
==============  ===============================================  ================================

Noise, contrast, brightness and JPEG qualities are ImageNet-C's constants; blur uses sigmas
for 32-pixel images (ImageNet-C's 1-6 px are for 224 px). "JPEG-like": no colour transform or
chroma subsampling, so it isolates the block quantization. The summary is the mean accuracy over
all corruptions and severities (mCA) beside clean accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["CORRUPTIONS", "SEVERITIES", "corrupt", "jpeg_quantize", "gaussian_blur", "CorruptionReport", "corruption_accuracy"]

SEVERITIES = (1, 2, 3, 4, 5)
_NOISE_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
_BLUR_SIGMA_AT_32 = (0.4, 0.6, 0.7, 0.8, 1.0)
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
_JPEG_QUALITY = (25, 18, 15, 10, 7)

# ITU-T T.81 Annex K, Table K.1: the luminance quantization table
_JPEG_LUMINANCE = torch.tensor(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=torch.float64,
)


def _dct_matrix(size: int = 8) -> torch.Tensor:
    """Orthonormal DCT-II matrix D: coefficients = D @ block @ D.T."""
    n = torch.arange(size, dtype=torch.float64)
    matrix = torch.cos(math.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * math.sqrt(2.0 / size)
    matrix[0] /= math.sqrt(2.0)
    return matrix


def jpeg_quantize(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Quantize 8x8 DCT blocks of each channel with the JPEG table at ``quality`` (1-100)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality  # IJG libjpeg quality scaling
    table = ((_JPEG_LUMINANCE * scale + 50) // 100).clamp(1, 255).to(images.device)
    batch, channels, height, width = images.shape
    pad_h, pad_w = (-height) % 8, (-width) % 8
    pixels = F.pad(images.double() * 255.0 - 128.0, (0, pad_w, 0, pad_h), mode="replicate")  # level shift
    blocks = pixels.unfold(2, 8, 8).unfold(3, 8, 8)  # (B, C, H/8, W/8, 8, 8)
    dct = _dct_matrix().to(images.device)
    coefficients = dct @ blocks @ dct.T
    restored = dct.T @ (torch.round(coefficients / table) * table) @ dct
    rows, cols = pixels.shape[2] // 8, pixels.shape[3] // 8
    restored = restored.permute(0, 1, 2, 4, 3, 5).reshape(batch, channels, rows * 8, cols * 8)
    return ((restored[:, :, :height, :width] + 128.0) / 255.0).clamp(0, 1).to(images.dtype)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a kernel of radius ceil(3 sigma), reflect padding."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)  # along W
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)  # along H


def _noise(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
    return (images + noise * _NOISE_SIGMA[severity - 1]).clamp(0, 1)


def _blur(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    return gaussian_blur(images, _BLUR_SIGMA_AT_32[severity - 1] * images.shape[-1] / 32)


def _contrast(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return ((images - mean) * _CONTRAST[severity - 1] + mean).clamp(0, 1)


def _brightness(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    return (images + _BRIGHTNESS[severity - 1]).clamp(0, 1)


def _jpeg(images: torch.Tensor, severity: int, generator: torch.Generator) -> torch.Tensor:
    return jpeg_quantize(images, _JPEG_QUALITY[severity - 1])


CORRUPTIONS: dict[str, Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]] = {
    "gaussian_noise": _noise,
    "gaussian_blur": _blur,
    "contrast": _contrast,
    "brightness": _brightness,
    "jpeg": _jpeg,
}


def corrupt(images: torch.Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` (1-5) to [0, 1] images (B, C, H, W)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1..5, got {severity}")
    return CORRUPTIONS[name](images, severity, generator or torch.Generator().manual_seed(0))


@dataclass(frozen=True)
class CorruptionReport:
    clean_top1: float
    accuracy: dict[str, tuple[float, ...]]  # corruption -> top-1 at severities 1..5

    @property
    def mean_corruption_accuracy(self) -> float:
        values = [v for row in self.accuracy.values() for v in row]
        return sum(values) / len(values)

    def to_dict(self) -> dict:
        return {"clean_top1": self.clean_top1, "mean_corruption_top1": self.mean_corruption_accuracy, "accuracy": self.accuracy}


@torch.no_grad()
def corruption_accuracy(
    model: torch.nn.Module,
    dataset,
    to_unit: Callable[[torch.Tensor], torch.Tensor],
    normalize: Callable[[torch.Tensor], torch.Tensor],
    names: tuple[str, ...] = tuple(CORRUPTIONS),
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> CorruptionReport:
    """Top-1 of ``model`` on ``dataset`` clean and under each corruption/severity.

    ``to_unit`` maps a uint8 batch to [0, 1] pixels at the network's resolution; ``normalize``
    maps those to the network input. Noise draws come from a generator seeded with ``seed``.
    """
    from torch.utils.data import DataLoader

    device = torch.device(device)
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    correct = {(name, s): 0 for name in names for s in SEVERITIES}
    clean = total = 0
    generator = torch.Generator().manual_seed(seed)
    for images, labels in loader:
        pixels, labels = to_unit(images.to(device)), labels.to(device)
        clean += (model(normalize(pixels)).argmax(1) == labels).sum().item()
        total += labels.shape[0]
        for name in names:
            for severity in SEVERITIES:
                corrupted = corrupt(pixels, name, severity, generator)
                correct[(name, severity)] += (model(normalize(corrupted)).argmax(1) == labels).sum().item()
    accuracy = {name: tuple(correct[(name, s)] / total for s in SEVERITIES) for name in names}
    return CorruptionReport(clean / total, accuracy)
