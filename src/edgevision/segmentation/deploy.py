"""INT8 deployment of a segmentation model with an mIoU budget.

The deploy form (``reparameterize``) is exported and quantized to a QDQ ONNX graph by the shared
:func:`edgevision.deploy.quantize.quantize` (static PTQ, this CPU's scheme), calibrated on training
images; then fp32 (PyTorch) and INT8 (ONNX Runtime) mIoU are measured on the validation split with
the same confusion-matrix metric, and the INT8 graph is accepted only if it loses at most
``max_drop`` mIoU points.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .data import PairedTransform
from .metrics import ConfusionMatrix
from .training import _normalise

__all__ = ["SegmentationQuantizeResult", "quantize_segmentation"]


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


def quantize_segmentation(model, calibration_set, val_set, output, *, resolution: int, max_drop: float = 1.0,
                          calibration_count: int = 32, ignore_index: int = 255) -> SegmentationQuantizeResult:
    """Write ``output`` (INT8 ONNX) and compare its mIoU with the fp32 model's (``max_drop`` in mIoU points)."""
    import onnxruntime as ort

    from ..deploy.quantize import quantize
    from ..reparam import reparameterize

    deployed = reparameterize(copy.deepcopy(model).cpu().eval())
    calibration = torch.cat([images for images, _ in _batches(calibration_set, resolution)])[:calibration_count]
    quantize(deployed, calibration, output, input_shape=(deployed.spec.in_channels, resolution, resolution))
    session = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fp32, int8 = ConfusionMatrix(val_set.num_classes, ignore_index), ConfusionMatrix(val_set.num_classes, ignore_index)
    with torch.no_grad():
        for images, masks in _batches(val_set, resolution):
            fp32.update(deployed(images).argmax(1), masks)
            for image, mask in zip(images, masks):  # one image per run: the graph may have a fixed batch
                logits = session.run(None, {name: image[None].numpy().astype(np.float32)})[0]
                int8.update(torch.from_numpy(logits).argmax(1), mask[None])
    fp32_miou, int8_miou = fp32.compute()["miou"], int8.compute()["miou"]
    drop = 100 * (fp32_miou - int8_miou)
    return SegmentationQuantizeResult(str(Path(output)), fp32_miou, int8_miou, drop, max_drop, drop <= max_drop, len(calibration))
