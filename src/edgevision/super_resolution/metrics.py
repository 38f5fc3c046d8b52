"""PSNR and SSIM on the Y channel after a ``scale``-pixel border crop: the convention of the SR literature
(MATLAB evaluation scripts of EDSR/RCAN, BasicSR's ``calculate_psnr``/``calculate_ssim`` with
``test_y_channel=True``, ``crop_border=scale``).

Y is ITU-R BT.601 studio range from [0, 1] RGB: ``16 + 65.481 R + 128.553 G + 24.966 B`` (MATLAB
``rgb2ycbcr``), on the 0..255 scale; images are rounded to 8 bits first, as saved PNGs would be. SSIM is
Wang et al. 2004: an 11x11 Gaussian window (sigma 1.5), 'valid' filtering, C1 = (0.01*255)^2,
C2 = (0.03*255)^2 — the numbers ``skimage.metrics.structural_similarity(..., gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255)`` gives (tests check both against skimage).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["rgb_to_y", "psnr_y", "ssim_y", "prepare_y"]


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """[..., 3, H, W] (or [..., 1, H, W], gray) in [0, 1] -> [..., H, W] Y on the 0..255 scale (16..235)."""
    if image.shape[-3] == 1:
        return 16.0 + 219.0 * image[..., 0, :, :]
    r, g, b = image[..., 0, :, :], image[..., 1, :, :], image[..., 2, :, :]
    return 16.0 + 65.481 * r + 128.553 * g + 24.966 * b


def prepare_y(image: torch.Tensor, border: int) -> torch.Tensor:
    """8-bit rounding, Y, border crop: [C, H, W] in [0, 1] -> [H - 2b, W - 2b] float64."""
    quantized = (image.double().clamp(0, 1) * 255).round() / 255
    y = rgb_to_y(quantized)
    if border:
        y = y[..., border:-border, border:-border]
    return y


def _check_pair(sr: torch.Tensor, hr: torch.Tensor, border: int) -> None:
    if sr.shape != hr.shape:
        raise ValueError(f"SR output {tuple(sr.shape)} and HR image {tuple(hr.shape)} differ in shape")
    if min(hr.shape[-2:]) <= 2 * border:
        raise ValueError(f"image {tuple(hr.shape[-2:])} is too small for a {border}-pixel border crop")


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, border: int) -> float:
    """PSNR in dB of two [C, H, W] images in [0, 1], on Y with ``border`` pixels cropped on each side."""
    _check_pair(sr, hr, border)
    mse = torch.mean((prepare_y(sr, border) - prepare_y(hr, border)) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g /= g.sum()
    return (g[:, None] * g[None, :])[None, None]  # [1, 1, 11, 11]


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, border: int) -> float:
    """Mean SSIM of two [C, H, W] images in [0, 1] on Y with ``border`` pixels cropped."""
    _check_pair(sr, hr, border)
    x = prepare_y(sr, border)[None, None]
    y = prepare_y(hr, border)[None, None]
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"image {tuple(x.shape[-2:])} after the border crop is smaller than SSIM's 11x11 window")
    window = _gaussian_window()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x**2
    var_y = F.conv2d(y * y, window) - mu_y**2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean().item()
