"""Classification metrics on logits: top-k, per-class accuracy, confusion matrix, multi-label F-beta.

Multi-label mode (several labels per image) scores sigmoid probabilities against multi-hot
targets with F-beta; beta = 2 weighs recall four times as much as precision (van Rijsbergen
1979), the usual choice when a missed label costs more than a spurious one. F-beta here is
*micro-averaged*: true/false positives are summed over every (image, label) pair.
"""

from __future__ import annotations

import torch

__all__ = ["topk_accuracy", "per_class_accuracy", "confusion_matrix", "fbeta_score"]


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """{k: fraction of rows whose label is among the k largest logits}."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"need logits (N, K) and labels (N,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    highest = max(ks)
    if highest > logits.shape[1]:
        raise ValueError(f"top-{highest} needs at least {highest} classes, got {logits.shape[1]}")
    top = logits.topk(highest, dim=1).indices  # (N, kmax)
    hits = top == labels[:, None]
    return {k: hits[:, :k].any(1).float().mean().item() for k in ks}


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts; row = true class, column = predicted class."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(K,) recall of each class (NaN for a class with no images)."""
    matrix = confusion_matrix(logits.argmax(1), labels, logits.shape[1]).double()
    return (matrix.diagonal() / matrix.sum(1)).float()


def fbeta_score(probabilities: torch.Tensor, targets: torch.Tensor, beta: float = 2.0, threshold: float = 0.5) -> float:
    """Micro-averaged F-beta of ``probabilities >= threshold`` against multi-hot ``targets`` (both (N, K))."""
    predicted = probabilities >= threshold
    actual = targets.bool()
    true_positive = (predicted & actual).sum().item()
    false_positive = (predicted & ~actual).sum().item()
    false_negative = (~predicted & actual).sum().item()
    weight = beta**2
    denominator = (1 + weight) * true_positive + weight * false_negative + false_positive
    return (1 + weight) * true_positive / denominator if denominator else 1.0
