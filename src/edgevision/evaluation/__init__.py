"""Evaluation: top-1/top-5, per-class accuracy, confusion matrix, calibration (ECE + reliability
diagram), accuracy under corruptions, multi-label F-beta."""

from .calibration import CalibrationReport, calibration, reliability_diagram
from .corruptions import CORRUPTIONS, SEVERITIES, CorruptionReport, corrupt, corruption_accuracy
from .metrics import confusion_matrix, fbeta_score, per_class_accuracy, topk_accuracy
from .predict import predict

__all__ = [
    "CORRUPTIONS",
    "SEVERITIES",
    "CalibrationReport",
    "CorruptionReport",
    "calibration",
    "confusion_matrix",
    "corrupt",
    "corruption_accuracy",
    "fbeta_score",
    "per_class_accuracy",
    "predict",
    "reliability_diagram",
    "topk_accuracy",
]
