"""Train and evaluate a detector on a :class:`~edgevision.detection.data.DetectionSet` (COCO/VOC on disk).

Images are resized to ``image_size`` squares (boxes scaled by the same factors) and normalized with
mean = std = 0.5 (SSDLite's preprocessing); training flips horizontally with the boxes flipped, so
images and boxes stay consistent. AdamW with cosine decay; the metrics are COCO's
(:mod:`edgevision.detection.metrics`) on the validation set in original-image pixels.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from .data import DetectionSet
from .metrics import coco_detection_metrics

__all__ = ["detector_corruption_map", "evaluate_detector", "load_batch", "predict_detections", "train_detector", "MEAN", "STD"]

MEAN = STD = (0.5, 0.5, 0.5)


def _image(sample, image_size: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(sample.image) as image:
        array = np.asarray(image.convert("RGB").resize((image_size, image_size), Image.BILINEAR), dtype=np.float32) / 255.0
    return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.5  # (3, S, S) in [-1, 1]


def load_batch(samples, image_size: int, *, flip: torch.Tensor | None = None):
    """Images (N, 3, S, S) and targets with boxes in the resized frame; ``flip`` (N,) bool mirrors both."""
    images, targets = [], []
    for index, sample in enumerate(samples):
        image = _image(sample, image_size)
        scale = torch.tensor([image_size / sample.width, image_size / sample.height] * 2)
        boxes = sample.boxes * scale
        if flip is not None and flip[index]:
            image = image.flip(-1)
            boxes = torch.stack((image_size - boxes[:, 2], boxes[:, 1], image_size - boxes[:, 0], boxes[:, 3]), dim=1)
        images.append(image)
        targets.append({"boxes": boxes, "labels": sample.labels})
    return torch.stack(images), targets


def train_detector(model, train_set: DetectionSet, *, epochs: int, batch_size: int = 16, lr: float = 3e-3,
                   image_size: int = 320, seed: int = 0, log=print) -> dict:
    """Train in place; returns the per-epoch mean losses and the wall time."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=4e-5)
    steps_per_epoch = math.ceil(len(train_set.samples) / batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / max(epochs * steps_per_epoch, 1), 1.0))))
    model.set_input_size(image_size)
    history, start = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_set.samples), generator=generator).tolist()
        total = 0.0
        for first in range(0, len(order), batch_size):
            batch = [train_set.samples[i] for i in order[first: first + batch_size]]
            images, targets = load_batch(batch, image_size, flip=torch.rand(len(batch), generator=generator) < 0.5)
            loss = model.loss(model(images), targets)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        history.append(total / len(order))
        log(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
    return {"losses": history, "train_seconds": time.perf_counter() - start}


@torch.no_grad()
def predict_detections(model, data: DetectionSet, *, image_size: int = 320, batch_size: int = 16,
                       corruption: str | None = None, severity: int = 1, generator: torch.Generator | None = None) -> list[dict]:
    """Per-image detections (``boxes`` xyxy in original-image pixels, ``scores``, ``labels``) of ``model``
    on ``data``; ``corruption`` (a name of :data:`edgevision.evaluation.CORRUPTIONS`) is applied at
    ``severity`` to the [0, 1] pixels at the network resolution, as classification does."""
    from ..evaluation.corruptions import corrupt

    model.eval()
    detections = []
    for first in range(0, len(data.samples), batch_size):
        batch = data.samples[first: first + batch_size]
        images, _ = load_batch(batch, image_size)
        if corruption is not None:
            mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
            images = (corrupt(images * std + mean, corruption, severity, generator) - mean) / std
        for sample, result in zip(batch, model.postprocess(model(images), image_size)):
            scale = torch.tensor([sample.width / image_size, sample.height / image_size] * 2)
            detections.append({**result, "boxes": result["boxes"] * scale})
    return detections


def evaluate_detector(model, data: DetectionSet, ground_truth, *, image_size: int = 320, batch_size: int = 16) -> dict:
    """COCO metrics of ``model`` on ``data`` (whose images/ids come from the ``ground_truth`` COCO JSON)."""
    detections = predict_detections(model, data, image_size=image_size, batch_size=batch_size)
    return coco_detection_metrics(ground_truth, [s.image_id for s in data.samples], detections)


def detector_corruption_map(model, data: DetectionSet, ground_truth, *, image_size: int = 320, batch_size: int = 16,
                            names=None, severities=None, seed: int = 0) -> dict:
    """Detector robustness: COCO mAP and AP50 clean and under each corruption at each severity.

    Returns ``clean_mAP``, ``clean_AP50``, ``mAP`` and ``AP50`` (corruption -> one value per severity,
    in ``severities`` order), ``severities``, ``mean_corruption_mAP`` (mean over all corruptions and
    severities, mCA's analogue) and ``relative_mean_corruption_mAP`` (that over clean; -1 when clean is 0).
    """
    from ..evaluation.corruptions import CORRUPTIONS, SEVERITIES

    names = tuple(names or CORRUPTIONS)
    severities = tuple(severities or SEVERITIES)
    image_ids = [s.image_id for s in data.samples]
    clean = coco_detection_metrics(ground_truth, image_ids, predict_detections(model, data, image_size=image_size, batch_size=batch_size))
    generator = torch.Generator().manual_seed(seed)
    table = {"mAP": {}, "AP50": {}}
    for name in names:
        rows = [coco_detection_metrics(ground_truth, image_ids, predict_detections(
            model, data, image_size=image_size, batch_size=batch_size, corruption=name, severity=severity, generator=generator))
            for severity in severities]
        for metric in table:
            table[metric][name] = [row[metric] for row in rows]
    values = [v for row in table["mAP"].values() for v in row]
    mean = sum(values) / len(values)
    return {"clean_mAP": clean["mAP"], "clean_AP50": clean["AP50"], "severities": list(severities), **table,
            "mean_corruption_mAP": mean, "relative_mean_corruption_mAP": mean / clean["mAP"] if clean["mAP"] > 0 else -1.0}
