"""Calibration: expected calibration error and the reliability diagram (Guo et al., ICML 2017, Sec. 2).

Predictions are grouped into ``bins`` equal-width confidence bins (confidence = max softmax
probability); ECE = sum over bins of (bin size / N) * |accuracy(bin) - mean confidence(bin)|.
A perfectly calibrated model has ECE 0 and its diagram's bars lie on the diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["CalibrationReport", "binned_calibration", "calibration", "reliability_diagram"]


@dataclass(frozen=True)
class CalibrationReport:
    ece: float
    bin_edges: tuple[float, ...]  # bins + 1 edges in [0, 1]
    bin_counts: tuple[int, ...]
    bin_accuracy: tuple[float, ...]  # NaN for empty bins
    bin_confidence: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"ece": self.ece, "bin_edges": self.bin_edges, "bin_counts": self.bin_counts,
                "bin_accuracy": self.bin_accuracy, "bin_confidence": self.bin_confidence}


def calibration(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> CalibrationReport:
    """ECE of softmax ``probabilities`` (N, K) against ``labels`` (N,), with ``bins`` equal-width bins."""
    confidence, predicted = probabilities.max(1)
    return binned_calibration(confidence, predicted == labels, bins)


def binned_calibration(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 15) -> CalibrationReport:
    """ECE of confidences (N,) in [0, 1] against whether each prediction was right (N,) bool; shared by
    classification (max softmax) and detection (score of a detection, right when it matches a box)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    correct = correct.double()
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64)
    # bin b holds confidences in (edges[b], edges[b + 1]]; confidence 0 falls in the first bin
    index = (torch.bucketize(confidence.double(), edges, right=False) - 1).clamp(0, bins - 1)
    counts = torch.bincount(index, minlength=bins)
    correct_sum = torch.bincount(index, weights=correct, minlength=bins)
    confidence_sum = torch.bincount(index, weights=confidence.double(), minlength=bins)
    safe = counts.clamp_min(1).double()
    accuracy = torch.where(counts > 0, correct_sum / safe, torch.full_like(safe, float("nan")))
    mean_confidence = torch.where(counts > 0, confidence_sum / safe, torch.full_like(safe, float("nan")))
    gaps = (correct_sum - confidence_sum).abs()  # = count * |acc - conf| per bin
    ece = (gaps.sum() / max(len(correct), 1)).item()
    return CalibrationReport(ece, tuple(edges.tolist()), tuple(counts.tolist()), tuple(accuracy.tolist()), tuple(mean_confidence.tolist()))


def reliability_diagram(report: CalibrationReport, path: str | Path, title: str = "",
                        confidence_label: str = "confidence (max softmax probability)") -> Path:
    """Write the reliability diagram (accuracy per confidence bin vs the diagonal) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    edges = report.bin_edges
    width = edges[1] - edges[0]
    lefts = edges[:-1]
    accuracy = [0.0 if a != a else a for a in report.bin_accuracy]  # NaN (empty bin) -> no bar
    figure, axis = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    axis.bar(lefts, accuracy, width=width, align="edge", edgecolor="black", color="#4c72b0", label="accuracy")
    gap = [c - a if c == c else 0.0 for c, a in zip(report.bin_confidence, accuracy)]
    axis.bar(lefts, gap, bottom=accuracy, width=width, align="edge", color="#dd8452", alpha=0.5, label="gap to confidence")
    axis.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    axis.set_xlabel(confidence_label)
    axis.set_ylabel("accuracy")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_title(f"{title}  ECE = {report.ece:.3f}".strip())
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    target = Path(path)
    with atomic_path(target) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)
    return target
