"""The detection task's deploy evaluator: COCO mAP of a runnable, NMS kept in fp32.

``edgevision deploy`` quantizes the detector's *raw head graph* (``SSDLite.forward``: box deltas
(N, A, 4) and class logits (N, A, K+1)) and runs the decode / softmax / class-aware NMS of
``model.postprocess`` in fp32 PyTorch on its outputs, so the INT8 form is judged on exactly the
detections ``edgevision eval --task detection`` scores (:func:`~edgevision.detection.training.evaluate_detector`).
ONNX Runtime 1.31 does *not* choke on the graph with ``NonMaxSuppression`` (:mod:`.export`): checked on
ssdlite320_mobilenetv2 at 128 px, ``quantize_static`` wrote 193 QuantizeLinear nodes, left
NonMaxSuppression and Softmax in float, and the INT8 graph ran. The head graph is used anyway
because (1) the metric must be the one ``eval`` reports, and the NMS graph's per-class cap differs
from ``postprocess``'s per-image top-N; (2) its outputs have a data-dependent length, and on a
detector whose scores tie (random weights) NMS picks differ between runtimes, so fp32 parity and
output SQNR cannot be computed on them (``export_detector_onnx`` refuses an untrained detector for
the same reason). The shipped ``model.onnx`` is therefore the head; deploy.json's ``postprocess`` says so.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..deploy.tasks import ForwardModule, TaskMetric

__all__ = ["METRIC", "MAP", "DetectionEvaluator", "deploy_evaluator"]

#: COCO mAP@[.5:.95] is a [0, 1] fraction; budgets are in points (x100)
MAP = TaskMetric(name="mAP", label="mAP@[.5:.95]", higher_is_better=True, budget_option="--max-drop", unit="mAP points", scale=100.0,
                 default_budget=1.0)
METRIC = MAP  # read by edgevision.deploy.tasks.task_metric before any data is loaded


class DetectionEvaluator:
    """mAP of a runnable's raw head outputs after ``model.postprocess`` on ``val_set`` (ground truth ``val_file``)."""

    task = "detection"
    metric = MAP

    def __init__(self, model, calibration_samples, val_set, val_file, *, image_size: int, data: str = "") -> None:
        self.postprocess = model.postprocess
        self.calibration_samples, self.val_set, self.val_file = list(calibration_samples), val_set, val_file
        self.image_size = int(image_size)
        self.input_shape = (model.spec.in_channels, self.image_size, self.image_size)
        self.data = data or f"{len(self.calibration_samples)} calibration / {len(val_set.samples)} val images"

    def calibration_images(self) -> torch.Tensor:
        from .training import load_batch

        return load_batch(self.calibration_samples, self.image_size)[0]

    def verification_images(self) -> torch.Tensor:
        from .training import load_batch

        return load_batch(self.val_set.samples[:8], self.image_size)[0]

    def evaluate(self, forward) -> dict:
        from .training import evaluate_detector

        metrics = evaluate_detector(ForwardModule(forward, postprocess=self.postprocess), self.val_set, self.val_file,
                                    image_size=self.image_size, batch_size=8)
        return {**{k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, "images": len(self.val_set.samples)}


def deploy_evaluator(model, metadata: dict, data: str | None, *, calibration: int = 32, verification: int = 32, input_size=None,
                     work_dir: Path | None = None) -> DetectionEvaluator:
    """``data``: a COCO instances JSON (default: the checkpoint's validation file; calibration from ``instances_train.json``
    beside it, else from images of the same file not used for verification), or ``scenes`` for freshly generated scenes."""
    import tempfile

    from .data import load_coco_detection

    size = int(input_size or metadata.get("preprocess", {}).get("resolution") or model.spec.input_size)
    data = data or metadata.get("dataset") or "scenes"
    names = metadata.get("class_names")
    if data in ("scenes", "default"):
        from ..datasets.scenes import generate_scenes

        root = Path(work_dir or tempfile.mkdtemp(prefix="edgevision-det-")) / "scenes"
        train_file = generate_scenes(root, split="train", num_images=calibration, seed=int(metadata.get("seed", 0)))
        val_file = generate_scenes(root, split="val", num_images=verification, seed=int(metadata.get("seed", 0)))
    else:
        val_file = Path(data)
        if not val_file.is_file():
            raise ValueError(f"--data {data}: no such COCO annotation file; give instances_<split>.json or 'scenes'")
        train_file = val_file.with_name(val_file.name.replace("val", "train"))
    val_set = load_coco_detection(val_file, class_names=names)
    if metadata.get("task") == "detection" and len(val_set.class_names) != model.spec.num_classes:
        raise ValueError(f"{data} has {len(val_set.class_names)} classes but the checkpoint predicts {model.spec.num_classes}; deploy on its own dataset")
    if train_file.is_file() and train_file != val_file:
        calibration_samples = load_coco_detection(train_file, class_names=val_set.class_names).samples[:calibration]
    else:  # one file: the first images calibrate, the others verify (disjoint)
        if len(val_set.samples) < 2:
            raise ValueError(f"{val_file} has {len(val_set.samples)} image(s); calibration and verification need at least 2")
        cut = min(calibration, len(val_set.samples) // 2)
        calibration_samples, val_set.samples = val_set.samples[:cut], val_set.samples[cut:]
    return DetectionEvaluator(model, calibration_samples, val_set, str(val_file), image_size=size,
                              data=f"{data} ({len(calibration_samples)} calibration / {len(val_set.samples)} val images, {size} px)")
