"""INT8 deployment of a segmentation model with an mIoU budget.

:class:`SegmentationEvaluator` is this task's :class:`~edgevision.deploy.tasks.TaskEvaluator`:
calibration images from the training split and mIoU (the confusion-matrix metric of
:func:`~edgevision.segmentation.training.evaluate_segmentation`) of any runnable (PyTorch, ONNX
Runtime, OpenVINO) on the validation split, both at the deploy resolution. ``edgevision deploy``
uses it through :func:`deploy_evaluator`; :func:`quantize_segmentation` (the Python API of the
previous stop) quantizes the deploy form (``reparameterize``) with the shared static PTQ and
accepts the INT8 graph only if it loses at most ``max_drop`` mIoU points.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..deploy.tasks import ForwardModule, TaskMetric, quantize_within_budget, torch_forward
from .data import PairedTransform
from .training import _normalise, evaluate_segmentation

__all__ = ["METRIC", "MIOU", "SegmentationEvaluator", "SegmentationQuantizeResult", "deploy_evaluator", "quantize_segmentation"]

#: mIoU is stored as a [0, 1] fraction; budgets are in points (x100), like ``train``'s printed numbers
MIOU = TaskMetric(name="miou", label="mIoU", higher_is_better=True, budget_option="--max-drop", unit="mIoU points", scale=100.0,
                  default_budget=1.0)
METRIC = MIOU  # read by edgevision.deploy.tasks.task_metric before any data is loaded


@dataclass
class SegmentationQuantizeResult:
    path: str
    fp32_miou: float
    int8_miou: float
    drop_points: float
    max_drop_points: float
    accepted: bool
    calibration_images: int

    def to_dict(self) -> dict:
        return asdict(self)


def _batches(dataset, resolution: int, batch_size: int = 8):
    dataset.transform = PairedTransform(resolution, train=False)
    for images, masks in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        yield _normalise(images, "cpu"), masks


class SegmentationEvaluator:
    """mIoU of a runnable on ``val_set`` at ``resolution``; calibration from ``calibration_set`` (see the module docstring)."""

    task = "segmentation"
    metric = MIOU

    def __init__(self, calibration_set, val_set, *, resolution: int, in_channels: int = 3, calibration_count: int = 32,
                 ignore_index: int = 255, verification_count: int = 8, data: str = "") -> None:
        self.calibration_set, self.val_set = calibration_set, val_set
        self.resolution, self.ignore_index = int(resolution), ignore_index
        self.input_shape = (in_channels, self.resolution, self.resolution)
        self.calibration_count, self.verification_count = calibration_count, verification_count
        self.data = data or f"{len(calibration_set)} train / {len(val_set)} val images"

    def calibration_images(self) -> torch.Tensor:
        return torch.cat([images for images, _ in _batches(self.calibration_set, self.resolution)])[: self.calibration_count]

    def verification_images(self) -> torch.Tensor:
        return next(iter(_batches(self.val_set, self.resolution, batch_size=self.verification_count)))[0]

    def evaluate(self, forward) -> dict:
        result = evaluate_segmentation(ForwardModule(forward), self.val_set, resolution=self.resolution, ignore_index=self.ignore_index)
        return {key: result[key] for key in ("miou", "pixel_accuracy", "images")}


def deploy_evaluator(model, metadata: dict, data: str | None, *, calibration: int = 32, verification: int = 32, input_size=None,
                     work_dir: Path | None = None) -> SegmentationEvaluator:
    """The evaluator ``edgevision deploy`` uses: ``data`` (default: the checkpoint's dataset, else the embedded scenes),
    the checkpoint's resolution and ignore index. ``--data default`` generates ``calibration`` train / ``verification`` val scenes."""
    from .data import load_segmentation_data

    preprocess = metadata.get("preprocess", {})
    data = data or metadata.get("dataset") or "default"
    size = model.spec.input_size
    resolution = int(input_size or preprocess.get("resolution") or (size if isinstance(size, int) else size[0]))
    train_set, val_set = load_segmentation_data(data, cache_dir=work_dir, scene_images=(calibration, verification),
                                                seed=int(metadata.get("seed", 0)))
    if metadata.get("task") == "segmentation" and val_set.num_classes != model.spec.num_classes:
        raise ValueError(f"{data} has {val_set.num_classes} classes but the checkpoint predicts {model.spec.num_classes}; deploy on its own dataset")
    return SegmentationEvaluator(train_set, val_set, resolution=resolution, in_channels=model.spec.in_channels, calibration_count=calibration,
                                 ignore_index=int(preprocess.get("ignore_index", 255)), data=f"{data} ({len(train_set)} train / {len(val_set)} val images)")


def quantize_segmentation(model, calibration_set, val_set, output, *, resolution: int, max_drop: float = 1.0,
                          calibration_count: int = 32, ignore_index: int = 255) -> SegmentationQuantizeResult:
    """Write ``output`` (INT8 ONNX) and compare its mIoU with the fp32 model's (``max_drop`` in mIoU points)."""
    from ..export import export_onnx
    from ..reparam import reparameterize

    deployed = reparameterize(copy.deepcopy(model).cpu().eval())
    evaluator = SegmentationEvaluator(calibration_set, val_set, resolution=resolution, in_channels=deployed.spec.in_channels,
                                      calibration_count=calibration_count, ignore_index=ignore_index)
    with tempfile.TemporaryDirectory(prefix="edgevision-seg-int8-") as directory:
        float_onnx = Path(directory) / "model.fp32.onnx"
        export_onnx(deployed, float_onnx, evaluator.input_shape, deploy=False)
        result = quantize_within_budget(float_onnx, evaluator, output, max_drop, float_metrics=evaluator.evaluate(torch_forward(deployed)))
    judgement = result["judgement"]
    return SegmentationQuantizeResult(str(Path(output)), judgement["float_value"], judgement["int8_value"], judgement["change"], max_drop,
                                      judgement["within"], min(calibration_count, len(calibration_set)))
