"""Train and evaluate SR networks: L1 on random patches (the CARN/EDSR/EFDN recipe, Adam), and the
Y-channel PSNR/SSIM report with the bicubic baseline beside every number."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import SRPair, random_patches
from .metrics import psnr_y, ssim_y
from .resize import imresize
from .tiling import super_resolve

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
             optimizer_state: dict | None = None) -> dict:
    """Train ``model`` in place from ``start_step`` to ``stop_step`` (default: all ``config.steps``).

    Returns {"steps", "final_loss", "seconds", "optimizer"} (the optimizer state, to resume from).
    Patches of step k depend only on (seed, k), so a run resumed at k continues the same stream.
    ``on_step(step, loss)`` after each step."""
    generator = torch.Generator()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if optimizer_state:
        optimizer.load_state_dict(optimizer_state)
    milestones = [int(config.steps * 0.5), int(config.steps * 0.75)]
    model.train()
    started, loss_value = time.perf_counter(), math.nan
    for step in range(start_step, config.steps if stop_step is None else stop_step):
        generator.manual_seed(config.seed * 1_000_003 + step)  # one stream per step: a resumed run draws the same patches
        for group in optimizer.param_groups:
            group["lr"] = config.lr * 0.5 ** sum(step >= m for m in milestones)
        lr, hr = random_patches(train_pairs, config.patch_size, scale, config.batch_size, generator)
        loss = F.l1_loss(model(lr), hr)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        loss_value = loss.item()
        if on_step is not None:
            on_step(step + 1, loss_value)
    model.eval()
    return {"steps": config.steps if stop_step is None else stop_step, "final_loss": loss_value, "seconds": time.perf_counter() - started, "optimizer": optimizer.state_dict()}


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
