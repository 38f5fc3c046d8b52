"""Train and evaluate segmentation models: per-pixel cross-entropy (ignore 255) + the aux head's loss.

The recipe follows torchvision's segmentation reference (``references/segmentation``): loss
``CE(out) + aux_weight * CE(aux)`` (0.5), poly learning-rate decay ``(1 - step/steps) ** 0.9``,
weight decay 1e-4; SGD (momentum 0.9) or AdamW. Inputs are ImageNet-normalised (the zoo backbones'
pretraining statistics). Training state (model, optimizer, epoch, history) is written atomically
after every epoch to ``out_dir/train_state.pt``; a rerun with the same ``out_dir`` resumes there
(after ``kill -9`` too). Evaluation accumulates one :class:`ConfusionMatrix` over the split.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .data import IGNORE_INDEX, PairedTransform
from .metrics import ConfusionMatrix

__all__ = ["SegmentationRecipe", "IMAGENET_MEAN", "IMAGENET_STD", "train_segmentation", "evaluate_segmentation", "segmentation_loss"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegmentationRecipe:
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    optimizer: str = "adamw"  # "sgd" (torchvision's reference, lr 0.02 at batch 32) or "adamw"
    weight_decay: float = 1e-4
    aux_weight: float = 0.5
    crop_size: int = 160
    scale_range: tuple[float, float] = (0.5, 2.0)
    ignore_index: int = IGNORE_INDEX

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _normalise(images: torch.Tensor, device) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    return (images.to(device).float() / 255 - mean) / std


def segmentation_loss(model: nn.Module, images: torch.Tensor, masks: torch.Tensor, aux_weight: float, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """CE on the logits (+ ``aux_weight`` x CE on the aux logits where the model has an aux head)."""
    if hasattr(model, "forward_with_aux"):
        logits, aux = model.forward_with_aux(images)
    else:
        logits, aux = model(images), None
    if ignore_index != IGNORE_INDEX:  # a dataset class ignored on top of void: void pixels (crop padding) must still not be targets
        masks = masks.masked_fill(masks == IGNORE_INDEX, ignore_index)
    loss = F.cross_entropy(logits, masks, ignore_index=ignore_index)
    if aux is not None and aux_weight:
        loss = loss + aux_weight * F.cross_entropy(aux, masks, ignore_index=ignore_index)
    return loss


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, dataset, *, resolution: int, batch_size: int = 8, ignore_index: int = IGNORE_INDEX,
                          device: str | torch.device = "cpu", workers: int = 0) -> dict:
    """mIoU / pixel accuracy / per-class IoU on ``dataset`` resized to ``resolution`` (image bilinear, mask nearest)."""
    dataset.transform = PairedTransform(resolution, train=False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    matrix = ConfusionMatrix(dataset.num_classes, ignore_index)
    model.eval().to(device)
    for images, masks in loader:
        matrix.update(model(_normalise(images, device)).argmax(1).cpu(), masks)
    result = matrix.compute(dataset.class_names)
    result["images"] = len(dataset)
    return result


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    final: dict = field(default_factory=dict)
    train_seconds: float = 0.0


def train_segmentation(model: nn.Module, train_set, val_set, recipe: SegmentationRecipe, *, seed: int = 0, out_dir=None,
                       device: str | torch.device = "cpu", workers: int = 0, log=None) -> TrainResult:
    """Train ``model`` on ``train_set`` for ``recipe.epochs``; evaluate on ``val_set`` after each epoch."""
    from ..atomic import atomic_path

    torch.manual_seed(seed)
    model.to(device)
    train_set.transform = PairedTransform(recipe.crop_size, train=True, scale_range=recipe.scale_range, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    loader = DataLoader(train_set, batch_size=recipe.batch_size, shuffle=True, drop_last=len(train_set) > recipe.batch_size,
                        num_workers=workers, generator=generator)
    parameters = [p for p in model.parameters() if p.requires_grad]
    if recipe.optimizer == "sgd":
        optimizer = torch.optim.SGD(parameters, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    elif recipe.optimizer == "adamw":
        optimizer = torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)
    else:
        raise ValueError(f"optimizer must be sgd or adamw, got {recipe.optimizer!r}")
    steps = max(1, recipe.epochs * len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (1 - min(step, steps - 1) / steps) ** 0.9)
    result = TrainResult(model)
    start_epoch = 0
    state_path = Path(out_dir) / "train_state.pt" if out_dir is not None else None
    if state_path is not None and state_path.is_file():  # resume after an interruption
        state = torch.load(state_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, result.history = int(state["epoch"]), list(state["history"])
        generator.set_state(state["generator"])
        if log:
            log(f"resuming from epoch {start_epoch} ({state_path})")
    started = time.perf_counter()
    for epoch in range(start_epoch, recipe.epochs):
        model.train()
        train_set.transform.rng.seed(seed * 1000 + epoch)  # augmentation depends on (seed, epoch) only: resumable
        total, count = 0.0, 0
        for images, masks in loader:
            loss = segmentation_loss(model, _normalise(images, device), masks.to(device), recipe.aux_weight, recipe.ignore_index)
            if not math.isfinite(loss.item()):
                raise ValueError(f"the loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total, count = total + loss.item() * len(images), count + len(images)
        metrics = evaluate_segmentation(model, val_set, resolution=recipe.crop_size, batch_size=recipe.batch_size, device=device, workers=workers)
        record = {"epoch": epoch + 1, "train_loss": total / max(count, 1), "val_miou": metrics["miou"], "val_pixel_accuracy": metrics["pixel_accuracy"]}
        result.history.append(record)
        if log:
            log(f"epoch {epoch + 1}/{recipe.epochs}: loss {record['train_loss']:.4f}, val mIoU {metrics['miou']:.4f}, pixel acc {metrics['pixel_accuracy']:.4f}")
        if state_path is not None:
            state_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(state_path) as temporary:
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                            "epoch": epoch + 1, "history": result.history, "generator": generator.get_state()}, temporary)
    result.train_seconds = time.perf_counter() - started
    final = evaluate_segmentation(model, val_set, resolution=recipe.crop_size, batch_size=recipe.batch_size, device=device, workers=workers)
    result.final = {**final, "train_loss": result.history[-1]["train_loss"] if result.history else math.nan}
    return result
