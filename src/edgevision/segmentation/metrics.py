"""mIoU and pixel accuracy from one dataset-wide confusion matrix (Long et al. 2015, Sec. 5; VOC/Cityscapes protocol).

Pixels whose target is ``ignore_index`` (255) are left out. The matrix accumulates over the whole
dataset (not averaged per image), so every pixel weighs the same. IoU_c = TP / (TP + FP + FN);
a class with no target and no predicted pixel has no IoU (``None`` in JSON, left out of the mean).
Pixel accuracy = trace / total.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ConfusionMatrix", "segmentation_metrics"]


VOID_LABEL = 255  # what every loader writes for "no label" (VOC borders, crop/scale padding), whatever ignore_index is


class ConfusionMatrix:
    """``matrix[t, p]``: pixels of target class t predicted as p (int64, K x K)."""

    def __init__(self, num_classes: int, ignore_index: int = 255) -> None:
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """``prediction``: class ids (N, H, W) or logits (N, K, H, W); ``target``: (N, H, W) with ``ignore_index``."""
        if prediction.dim() == target.dim() + 1:
            prediction = prediction.argmax(1)
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} must have the same shape")
        target, prediction = target.reshape(-1).long().cpu(), prediction.reshape(-1).long().cpu()
        keep = (target != self.ignore_index) & (target != VOID_LABEL)  # void (255: borders, crop padding) is never scored
        target, prediction = target[keep], prediction[keep]
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= self.num_classes):
            raise ValueError(f"target has class ids outside 0..{self.num_classes - 1} (and not {self.ignore_index})")
        self.matrix += torch.bincount(target * self.num_classes + prediction, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def compute(self, class_names=None) -> dict:
        """``{"miou", "pixel_accuracy", "per_class_iou": {name: iou or None}, "pixels"}``."""
        matrix = self.matrix.double()
        true_positive = matrix.diag()
        union = matrix.sum(0) + matrix.sum(1) - true_positive
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        per_class = {name: (float(tp / u) if u > 0 else None) for name, tp, u in zip(names, true_positive, union)}
        present = [v for v in per_class.values() if v is not None]
        total = float(matrix.sum())
        return {
            "miou": sum(present) / len(present) if present else math.nan,
            "pixel_accuracy": float(true_positive.sum() / total) if total else math.nan,
            "per_class_iou": per_class,
            "pixels": int(total),
        }


def segmentation_metrics(predictions, targets, num_classes: int, ignore_index: int = 255, class_names=None) -> dict:
    """One-shot :class:`ConfusionMatrix` over pairs of (prediction, target) batches."""
    matrix = ConfusionMatrix(num_classes, ignore_index)
    for prediction, target in zip(predictions, targets):
        matrix.update(prediction, target)
    return matrix.compute(class_names)
