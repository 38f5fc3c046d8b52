"""Train and evaluate SR networks: L1 on random patches (the CARN/EDSR/EFDN recipe, Adam), and the
Y-channel PSNR/SSIM report with the bicubic baseline beside every number."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from .data import SRPair, random_patches
from .metrics import psnr_y, ssim_y
from .objectives import pixel_loss, primal_images, pyramid_targets
from .resize import imresize
from .tiling import super_resolve

if TYPE_CHECKING:
    from .objectives import SRObjectives

__all__ = ["SRTrainConfig", "train_sr", "evaluate_sr", "bicubic_upscale"]


@dataclass(frozen=True)
class SRTrainConfig:
    steps: int = 1000
    batch_size: int = 16
    patch_size: int = 24        # LR patch side (x4: 96-pixel HR patches, CARN's 64 at x2...)
    lr: float = 1e-3            # Adam, halved at 50% and 75% of the steps
    seed: int = 0
    grad_clip: float | None = None


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline: MATLAB bicubic upscale of [C, h, w] in [0, 1], clamped."""
    return imresize(lr.double(), scale).clamp(0, 1).float()


def train_sr(model: nn.Module, train_pairs: list[SRPair], scale: int, config: SRTrainConfig,
             on_step: Callable[[int, float], None] | None = None, start_step: int = 0, stop_step: int | None = None,
             optimizer_state: dict | None = None, objectives: "SRObjectives | None" = None,
             discriminator_optimizer_state: dict | None = None) -> dict:
    """Train ``model`` in place from ``start_step`` to ``stop_step`` (default: all ``config.steps``).

    ``objectives`` (:class:`~edgevision.super_resolution.objectives.SRObjectives`) adds GAN, teacher
    distillation and DRN dual terms to the L1; its adapters and dual downsampler train with the model's
    Adam, its discriminator with its own (stepped after the generator on the same batch, ESRGAN's order).
    Returns {"steps", "final_loss", "terms", "seconds", "optimizer", "discriminator_optimizer"} (optimizer
    states, to resume from). Patches of step k depend only on (seed, k), so a run resumed at k continues
    the same stream. ``on_step(step, loss)`` after each step."""
    generator = torch.Generator()
    trained = list(model.parameters()) + (objectives.generator_side_parameters() if objectives is not None else [])
    optimizer = torch.optim.Adam(trained, lr=config.lr)
    if optimizer_state:
        optimizer.load_state_dict(optimizer_state)
    discriminator_optimizer = None
    if objectives is not None and objectives.discriminator is not None:
        # ESRGAN: Adam beta1 0.9, beta2 0.99 for the discriminator
        discriminator_optimizer = torch.optim.Adam(objectives.discriminator.parameters(), lr=objectives.config.discriminator_lr, betas=(0.9, 0.99))
        if discriminator_optimizer_state:
            discriminator_optimizer.load_state_dict(discriminator_optimizer_state)
    milestones = [int(config.steps * 0.5), int(config.steps * 0.75)]
    model.train()
    if objectives is not None:
        objectives.train()
    started, loss_value, terms = time.perf_counter(), math.nan, {}
    for step in range(start_step, config.steps if stop_step is None else stop_step):
        generator.manual_seed(config.seed * 1_000_003 + step)  # one stream per step: a resumed run draws the same patches
        decay = 0.5 ** sum(step >= m for m in milestones)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * decay
        lr, hr = random_patches(train_pairs, config.patch_size, scale, config.batch_size, generator)
        if objectives is None:
            images = primal_images(model, lr)
            loss, parts = pixel_loss(images, pyramid_targets(lr, hr, len(images)))  # L1; a multi-output network (DRN): + its pyramid's
            terms = {name: value.item() for name, value in parts.items()}
        else:
            loss, terms, sr = objectives.generator_loss(model, lr, hr, progress=step / config.steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(trained, config.grad_clip)
        optimizer.step()
        if discriminator_optimizer is not None and objectives.gan_active(step / config.steps):
            for group in discriminator_optimizer.param_groups:
                group["lr"] = objectives.config.discriminator_lr * decay
            discriminator_loss = objectives.discriminator_loss(sr.detach(), hr)
            discriminator_optimizer.zero_grad(set_to_none=True)
            discriminator_loss.backward()
            discriminator_optimizer.step()
            terms["discriminator"] = discriminator_loss.item()
        loss_value = loss.item()
        if on_step is not None:
            on_step(step + 1, loss_value)
    model.eval()
    if objectives is not None:
        objectives.eval()
    return {"steps": config.steps if stop_step is None else stop_step, "final_loss": loss_value, "terms": terms, "seconds": time.perf_counter() - started,
            "optimizer": optimizer.state_dict(), "discriminator_optimizer": discriminator_optimizer.state_dict() if discriminator_optimizer else None}


@torch.no_grad()
def evaluate_sr(model: nn.Module, pairs: list[SRPair], scale: int, tile: int | None = None, overlap: int = 16) -> dict:
    """PSNR/SSIM (Y, ``scale``-pixel border crop) of the model and of bicubic, per image and mean."""
    model.eval()
    rows = []
    for pair in pairs:
        sr = super_resolve(model, pair.lr, scale, tile=tile, overlap=overlap)
        bicubic = bicubic_upscale(pair.lr, scale)
        rows.append({
            "image": pair.name,
            "hr_size": list(pair.hr.shape[-2:]),
            "psnr": psnr_y(sr, pair.hr, scale), "ssim": ssim_y(sr, pair.hr, scale),
            "bicubic_psnr": psnr_y(bicubic, pair.hr, scale), "bicubic_ssim": ssim_y(bicubic, pair.hr, scale),
        })
    mean = {key: sum(r[key] for r in rows) / len(rows) for key in ("psnr", "ssim", "bicubic_psnr", "bicubic_ssim")}
    return {"scale": scale, "metric": "Y channel, border crop = scale (BasicSR/MATLAB)", "images": len(rows), **mean, "per_image": rows}
