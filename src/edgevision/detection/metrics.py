"""COCO detection metrics through pycocotools: mAP@[.5:.95], AP50, AP75, APs, APm, APl (Lin et al. 2014).

:func:`coco_detection_metrics` takes the ground-truth COCO JSON document (or path) and per-image
detections (``boxes`` xyxy pixels, ``scores``, ``labels`` 0..K-1 in the JSON's category order) and
returns the six standard numbers (percent-free fractions in [0, 1]; -1 where a bin has no ground truth).
:func:`match_detections` marks each detection right or wrong at one IoU threshold (COCO's greedy
matching) and :func:`detection_calibration` turns that into the expected calibration error of scores.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..evaluation.calibration import CalibrationReport, binned_calibration

__all__ = ["COCO_METRIC_NAMES", "DetectionCalibrationReport", "coco_detection_metrics", "detection_calibration", "detections_to_coco", "match_detections"]

#: the first six entries of COCOeval.stats, in order
COCO_METRIC_NAMES = ("mAP", "AP50", "AP75", "APs", "APm", "APl")


def _document(ground_truth) -> dict:
    if isinstance(ground_truth, dict):
        return ground_truth
    return json.loads(Path(ground_truth).read_text())


def detections_to_coco(document: dict, image_ids, detections) -> list[dict]:
    """Per-image detection dicts -> COCO result rows (``bbox`` [x, y, w, h], ``category_id``)."""
    category_ids = [category["id"] for category in sorted(document["categories"], key=lambda c: c["id"])]
    rows = []
    for image_id, result in zip(image_ids, detections):
        for box, score, label in zip(result["boxes"].tolist(), result["scores"].tolist(), result["labels"].tolist()):
            rows.append({"image_id": int(image_id), "category_id": category_ids[int(label)],
                         "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": float(score)})
    return rows


def coco_detection_metrics(ground_truth, image_ids, detections, *, backend: str = "pycocotools") -> dict[str, float]:
    """The six COCO box metrics; ``backend`` is ``"pycocotools"`` or ``"faster_coco_eval"`` (a cross-check)."""
    document = _document(ground_truth)
    rows = detections_to_coco(document, image_ids, detections)
    if backend == "pycocotools":
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    elif backend == "faster_coco_eval":
        from faster_coco_eval import COCO
        from faster_coco_eval import COCOeval_faster as COCOeval
    else:
        raise ValueError(f"coco_detection_metrics: backend must be 'pycocotools' or 'faster_coco_eval', got {backend!r}")
    with contextlib.redirect_stdout(io.StringIO()):  # both libraries print their progress
        truth = COCO()
        truth.dataset = json.loads(json.dumps(document))
        truth.createIndex()
        if not rows:
            return {name: 0.0 for name in COCO_METRIC_NAMES}
        results = truth.loadRes(rows)
        evaluator = COCOeval(truth, results, "bbox")
        evaluator.params.imgIds = [int(i) for i in image_ids]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: float(value) for name, value in zip(COCO_METRIC_NAMES, evaluator.stats[:6])}


def match_detections(ground_truth, image_ids, detections, *, iou_threshold: float = 0.5, min_score: float = 0.0):
    """Which detections are right: (scores (D,), correct (D,) bool) over all images.

    Per image and class, detections scoring at least ``min_score`` are taken in descending score;
    each claims the unclaimed ground-truth box of its class it overlaps most, and is right when that
    IoU is >= ``iou_threshold`` (COCO's greedy matching at one threshold). Crowd boxes are ignored.
    """
    import torch

    from .boxes import box_iou, xywh_to_xyxy

    document = _document(ground_truth)
    label_of = {category["id"]: index for index, category in enumerate(sorted(document["categories"], key=lambda c: c["id"]))}
    truth: dict[int, list] = {}
    for annotation in document["annotations"]:
        if not annotation.get("iscrowd", 0):
            truth.setdefault(int(annotation["image_id"]), []).append(annotation)
    all_scores, all_correct = [], []
    for image_id, result in zip(image_ids, detections):
        annotations = truth.get(int(image_id), [])
        gt_boxes = xywh_to_xyxy(torch.tensor([a["bbox"] for a in annotations], dtype=torch.float64).reshape(-1, 4))
        gt_labels = torch.tensor([label_of[a["category_id"]] for a in annotations], dtype=torch.long)
        keep = result["scores"] >= min_score
        boxes, scores, labels = result["boxes"][keep].double(), result["scores"][keep].double(), result["labels"][keep]
        correct = torch.zeros(len(scores), dtype=torch.bool)
        for label in labels.unique().tolist():
            mine = torch.nonzero(labels == label).flatten()
            mine = mine[scores[mine].argsort(descending=True, stable=True)]
            candidates = torch.nonzero(gt_labels == label).flatten()
            if not len(candidates):
                continue
            overlaps = box_iou(boxes[mine], gt_boxes[candidates])  # (d, g)
            claimed = torch.zeros(len(candidates), dtype=torch.bool)
            for row, detection in enumerate(mine.tolist()):
                free = overlaps[row].masked_fill(claimed, -1.0)
                best = int(free.argmax())
                if free[best] >= iou_threshold:
                    claimed[best] = True
                    correct[detection] = True
        all_scores.append(scores)
        all_correct.append(correct)
    if not all_scores:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.bool)
    return torch.cat(all_scores), torch.cat(all_correct)


@dataclass(frozen=True)
class DetectionCalibrationReport:
    """ECE of detection scores: ``calibration`` (the bins; accuracy per bin = precision), how many
    detections were scored, and the matching settings."""

    calibration: CalibrationReport
    detections: int
    iou_threshold: float
    min_score: float

    @property
    def ece(self) -> float:
        return self.calibration.ece

    def to_dict(self) -> dict:
        return {**self.calibration.to_dict(), "detections": self.detections, "iou_threshold": self.iou_threshold, "min_score": self.min_score}


def detection_calibration(ground_truth, image_ids, detections, *, bins: int = 15, iou_threshold: float = 0.5,
                          min_score: float = 0.3) -> DetectionCalibrationReport:
    """Calibration of detection confidences (Kuppers et al. 2020, "Multivariate Confidence Calibration
    for Object Detection", Sec. 3): a detection's score is its confidence and it is right when it
    matches a ground-truth box of its class at IoU >= ``iou_threshold``; ECE over equal-width bins.
    Detections below ``min_score`` are left out (at 0.001 the low-score tail would dominate every bin).
    JSON (``to_dict``): ``ece``, ``bin_edges``, ``bin_counts``, ``bin_accuracy`` (precision per bin,
    NaN when empty), ``bin_confidence``, ``detections``, ``iou_threshold``, ``min_score``; ``ece`` is
    NaN when no detection reaches ``min_score``.
    """
    from dataclasses import replace

    scores, correct = match_detections(ground_truth, image_ids, detections, iou_threshold=iou_threshold, min_score=min_score)
    report = binned_calibration(scores, correct, bins)
    if not len(scores):  # nothing scored: no calibration to speak of, not a perfect 0
        report = replace(report, ece=float("nan"))
    return DetectionCalibrationReport(report, int(len(scores)), iou_threshold, min_score)
