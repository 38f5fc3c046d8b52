"""Training and evaluation of depth models: berHu on valid pixels (Laina et al. 2016, Sec. 3.2), the
Eigen metrics (``edgevision.depth.metrics``), resumable per epoch.

The network predicts at its own output resolution (FCRN: half the input); the loss and the metrics
compare at the ground truth's resolution, after resizing the prediction bilinearly
(:func:`match_size`), the way FCRN's evaluation upsamples its 160 x 128 prediction.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import DepthSamples
from .loss import berhu_loss
from .metrics import DepthMetricAccumulator, valid_depth_mask

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "match_size", "predict_depth", "evaluate_depth", "train_depth", "DepthTrainResult"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STATE_FILE = "train_state.pt"


def match_size(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``prediction`` [N, 1, h, w] resized bilinearly to the target's H x W (unchanged when equal)."""
    if prediction.shape[-2:] == target.shape[-2:]:
        return prediction
    return F.interpolate(prediction, size=target.shape[-2:], mode="bilinear", align_corners=False)


@torch.no_grad()
def predict_depth(model: nn.Module, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Depth [N, 1, H, W] (metres) for normalised images [N, C, H, W], at ``size`` (default: the input's)."""
    model.eval()
    prediction = model(images)
    return F.interpolate(prediction, size=size or images.shape[-2:], mode="bilinear", align_corners=False)


def _batches(dataset, batch_size: int):
    """Consecutive samples stacked while their sizes agree (evaluation images may differ in size)."""
    images, depths = [], []
    for index in range(len(dataset)):
        image, depth = dataset[index]
        if images and (image.shape != images[0].shape or len(images) == batch_size):
            yield torch.stack(images), torch.stack(depths)
            images, depths = [], []
        images.append(image)
        depths.append(depth)
    if images:
        yield torch.stack(images), torch.stack(depths)


def evaluate_depth(model: nn.Module, pairs, *, mean: Sequence[float], std: Sequence[float], min_depth: float, max_depth: float,
                   batch_size: int = 8, device: str | torch.device = "cpu") -> dict:
    """The Eigen metrics of ``model`` over (image, depth) pairs at full resolution (mean over images)."""
    samples = DepthSamples(pairs, mean, std)
    accumulator = DepthMetricAccumulator(min_depth, max_depth)
    model = model.to(device).eval()
    for images, depths in _batches(samples, batch_size):
        prediction = predict_depth(model, images.to(device), depths.shape[-2:]).cpu()
        accumulator.update(prediction, depths)
    return accumulator.compute()


@dataclass
class DepthTrainResult:
    model: nn.Module
    final: dict  # the last epoch's validation metrics (val_*) and training loss
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    resumed_from_epoch: int = 0


def _make_optimizer(model: nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":  # the paper's choice (Sec. 4: momentum 0.9)
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)


def train_depth(model: nn.Module, train_pairs, val_pairs, *, epochs: int, batch_size: int, lr: float, optimizer: str = "adamw",
                crop: tuple[int, int], min_depth: float, max_depth: float, max_scale: float = 1.0, seed: int = 0,
                mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, out_dir: str | Path | None = None,
                progress: bool = False, log=print, init_output_bias: bool = True, pending_metrics: bool = False) -> DepthTrainResult:
    """Train on random crops (flip, optional scale) with berHu on valid pixels, cosine lr; validate each epoch.

    With ``out_dir``, the model and optimizer state are saved after every epoch (atomically); a
    rerun with the same ``out_dir`` and settings resumes after the last finished epoch.

    ``init_output_bias``: start the last convolution's bias at the mean valid training depth (a
    data-dependent initialisation, ours: a zero-initialised regressor spends its first thousands of
    steps of a small budget just moving its output from 0 m to the scene's range).
    """
    from ..atomic import atomic_path
    from ..training.loop import PENDING, commit_metrics, recover_metrics
    from ..training.schedule import learning_rate

    torch.manual_seed(seed)
    samples = DepthSamples(train_pairs, mean, std, size=crop, train=True, seed=seed, max_scale=max_scale)
    steps_per_epoch = max(1, math.ceil(len(samples) / batch_size))
    total_steps = epochs * steps_per_epoch
    opt = _make_optimizer(model, optimizer, lr)
    config = json.dumps({"epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "crop": list(crop), "seed": seed,
                         "max_scale": max_scale, "train_images": len(samples)}, sort_keys=True)
    history: list[dict] = []
    start_epoch = 0
    state_path = Path(out_dir) / STATE_FILE if out_dir is not None else None
    if out_dir is not None and Path(out_dir).is_dir():
        recover_metrics(out_dir)  # a run killed while committing its checkpoint: the metrics that describe it go back
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("config") == config:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            start_epoch, history = int(state["epoch"]), json.loads(state["history"])
            log(f"resuming from {state_path} after epoch {start_epoch}")
        else:
            log(f"ignoring {state_path}: it was written with other settings")
    if init_output_bias and start_epoch == 0 and isinstance(getattr(model, "predict", None), nn.Conv2d):
        total = count = 0.0
        for _, depth in train_pairs:
            depth = torch.as_tensor(depth)
            valid = valid_depth_mask(depth, min_depth, max_depth)
            total, count = total + float(depth[valid].sum()), count + int(valid.sum())
        if count:
            with torch.no_grad():
                model.predict.bias.fill_(total / count)
    started = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        samples.epoch = epoch
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed * 7919 + epoch)).tolist()
        model.train()
        losses = []
        for step in range(steps_per_epoch):
            chosen = order[step * batch_size:(step + 1) * batch_size]
            if len(chosen) < 2 and len(order) >= 2:  # BatchNorm needs two samples
                chosen = order[-2:]
            batch = [samples[i] for i in chosen]
            images = torch.stack([b[0] for b in batch])
            depths = torch.stack([b[1] for b in batch])
            for group in opt.param_groups:
                group["lr"] = learning_rate(epoch * steps_per_epoch + step, total_steps, lr)
            prediction = match_size(model(images), depths)
            loss = berhu_loss(prediction, depths, valid_depth_mask(depths, min_depth, max_depth))
            if not torch.isfinite(loss):
                raise ValueError(f"the berHu loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        metrics = evaluate_depth(model, val_pairs, mean=mean, std=std, min_depth=min_depth, max_depth=max_depth, batch_size=batch_size)
        record = {"epoch": epoch + 1, "train_berhu": sum(losses) / len(losses), **{f"val_{k}": v for k, v in metrics.items()}}
        history.append(record)
        if progress:
            log(f"epoch {epoch + 1}/{epochs}: berHu {record['train_berhu']:.4f}, val abs rel {metrics['abs_rel']:.4f}, "
                f"RMSE {metrics['rmse']:.4f} m, delta1 {metrics['delta1']:.3f}")
        if state_path is not None:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(state_path) as temporary:
                torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                            "history": json.dumps(history), "config": config}, temporary)
            with atomic_path(state_path.parent / PENDING[0]) as temporary:  # metrics.jsonl changes only with the checkpoint
                Path(temporary).write_text("".join(json.dumps(r) + "\n" for r in history))
    model.eval()
    if out_dir is not None and not pending_metrics:  # else the caller commits them with its checkpoint (commit_metrics)
        commit_metrics(out_dir)
    final = history[-1] if history else {}
    return DepthTrainResult(model, final, history, time.perf_counter() - started, start_epoch)
