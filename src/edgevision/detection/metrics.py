"""COCO detection metrics through pycocotools: mAP@[.5:.95], AP50, AP75, APs, APm, APl (Lin et al. 2014).

:func:`coco_detection_metrics` takes the ground-truth COCO JSON document (or path) and per-image
detections (``boxes`` xyxy pixels, ``scores``, ``labels`` 0..K-1 in the JSON's category order) and
returns the six standard numbers (percent-free fractions in [0, 1]; -1 where a bin has no ground truth).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

__all__ = ["COCO_METRIC_NAMES", "coco_detection_metrics", "detections_to_coco"]

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
