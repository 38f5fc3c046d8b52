"""Augmentations on batches of tensors (so they run wherever the batch is: CPU or GPU).

Input batches are uint8 ``(B, C, H, W)`` from the loaders. :class:`BatchPreprocessor` turns them
into normalized float tensors at the training resolution, with the standard CIFAR/ImageNet
augmentations when training: random crop with zero padding and horizontal flip (Krizhevsky et
al. 2012; He et al. 2016 Sec. 4.2). Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) mix
images and their (one-hot or multi-hot) targets; "Bag of Tricks" (He et al. 2019, Sec. 5.4) uses
mixup with alpha = 0.2. Every random draw comes from an explicit generator, so a seed fixes them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["BatchPreprocessor", "random_crop", "random_flip", "normalize", "match_channels", "resize", "mixup", "cutmix", "MixAugment"]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of float ``(B, C, H, W)`` to ``size`` x ``size`` (no-op when it already is)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=images.shape[-1] > size)


def match_channels(images: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Grey -> RGB by repetition, RGB -> grey by averaging, so a network trained on one runs on the other."""
    channels = images.shape[1]
    if channels == in_channels:
        return images
    if channels == 1:
        return images.expand(-1, in_channels, -1, -1)  # (B, 1, H, W) -> (B, C, H, W)
    if in_channels == 1:
        return images.mean(1, keepdim=True)  # (B, C, H, W) -> (B, 1, H, W)
    raise ValueError(f"cannot map {channels}-channel images to a {in_channels}-channel network; use 1 or 3 channels")


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut a random H x W window per image (one offset pair per image)."""
    if padding <= 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)  # (B, C, H + 2p, W + 2p)
    device = images.device  # offsets are drawn on the CPU generator, then moved
    top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(device)
    left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(device)
    rows = (top[:, None] + torch.arange(height, device=device))[:, :, None]  # (B, H, 1)
    cols = (left[:, None] + torch.arange(width, device=device))[:, None, :]  # (B, 1, W)
    index = torch.arange(batch, device=device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[index, rows, cols]  # (B, H, W, C)
    return cropped.permute(0, 3, 1, 2).contiguous()  # -> (B, C, H, W)


def random_flip(images: torch.Tensor, generator: torch.Generator, probability: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with ``probability``."""
    flip = (torch.rand(images.shape[0], generator=generator) < probability).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=images.dtype, device=images.device)[None, :, None, None]
    std_t = torch.tensor(std, dtype=images.dtype, device=images.device)[None, :, None, None]
    return (images - mean_t) / std_t


def mixup(images: torch.Tensor, targets: torch.Tensor, lam: float, permutation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``lam * x + (1 - lam) * x[perm]`` for images and soft targets alike."""
    return lam * images + (1.0 - lam) * images[permutation], lam * targets + (1.0 - lam) * targets[permutation]


def cutmix(
    images: torch.Tensor, targets: torch.Tensor, lam: float, permutation: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste a box of area ``(1 - lam) H W`` from ``x[perm]``; targets mix by the box's actual area."""
    height, width = images.shape[-2:]
    cut_h, cut_w = int(height * math.sqrt(1.0 - lam)), int(width * math.sqrt(1.0 - lam))
    center_y, center_x = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = max(center_y - cut_h // 2, 0), min(center_y + cut_h // 2, height)
    left, right = max(center_x - cut_w // 2, 0), min(center_x + cut_w // 2, width)
    mixed = images.clone()
    mixed[:, :, top:bottom, left:right] = images[permutation, :, top:bottom, left:right]
    kept = 1.0 - (bottom - top) * (right - left) / (height * width)
    return mixed, kept * targets + (1.0 - kept) * targets[permutation]


class MixAugment:
    """Mixup and/or CutMix on a batch; with both on, each batch uses one of them with equal odds."""

    def __init__(self, mixup_alpha: float, cutmix_alpha: float, seed: int) -> None:
        self.mixup_alpha = mixup_alpha
        self.cutmix_alpha = cutmix_alpha
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def enabled(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``targets`` are soft (B, K) rows; returns mixed images and targets."""
        if not self.enabled:
            return images, targets
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or self.rng.random() < 0.5)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(self.rng.beta(alpha, alpha))
        permutation = torch.randperm(images.shape[0], generator=self.generator).to(images.device)
        if use_cutmix:
            return cutmix(images, targets, lam, permutation, self.rng)
        return mixup(images, targets, lam, permutation)


class BatchPreprocessor:
    """uint8 batch -> float, channels matched, resized, [augmented], normalized."""

    def __init__(
        self,
        resolution: int,
        in_channels: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        crop_padding: int = 0,
        flip: bool = False,
        seed: int = 0,
    ) -> None:
        self.resolution = resolution
        self.in_channels = in_channels
        self.mean = tuple(mean) if len(mean) == in_channels else (sum(mean) / len(mean),) * in_channels
        self.std = tuple(std) if len(std) == in_channels else (sum(std) / len(std),) * in_channels
        self.crop_padding = crop_padding
        self.flip = flip
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        x = images.float() / 255.0  # (B, C, H, W) uint8 -> float in [0, 1]
        x = resize(match_channels(x, self.in_channels), self.resolution)  # -> (B, C_net, R, R)
        if train:
            x = random_crop(x, self.crop_padding, self.generator)
            x = random_flip(x, self.generator) if self.flip else x
        return normalize(x, self.mean, self.std)

    def unnormalized(self, images: torch.Tensor) -> torch.Tensor:
        """[0, 1] pixels at the network's resolution and channels (corruptions are applied here)."""
        return resize(match_channels(images.float() / 255.0, self.in_channels), self.resolution)
