"""Train and evaluate a detector on a :class:`~edgevision.detection.data.DetectionSet` (COCO/VOC on disk).

Evaluation resizes images to ``image_size`` squares (boxes scaled by the same factors), normalized
with mean = std = 0.5 (SSDLite's preprocessing). Training draws each image through
:func:`~edgevision.detection.data.augment_detection` (default :data:`SSD_AUGMENTATION`: scale/crop/
expand, flip and photometric jitter, boxes moved with the pixels; ``FLIP_ONLY`` is the earlier
flip-only recipe). AdamW with cosine decay computed from the step number; the metrics are COCO's
(:mod:`edgevision.detection.metrics`) on the validation set in original-image pixels.

Resumable: the batch order of epoch e depends on (seed, e) only and the augmentation of step k on
(seed, k) only, and the learning rate is a function of the step, so a run restarted at the end of an
epoch from the weights and the optimizer state (``start_epoch``, ``optimizer_state``; ``on_epoch``
hands both out after every epoch) continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import numpy as np
import torch

from .data import SSD_AUGMENTATION, DetectionAugmentation, DetectionSet, augment_detection
from .metrics import coco_detection_metrics

__all__ = ["cosine_lr", "detector_corruption_map", "evaluate_detector", "load_batch", "predict_detections", "train_detector", "MEAN", "STD"]

MEAN = STD = (0.5, 0.5, 0.5)


def _pixels(sample, image_size: int | None = None) -> torch.Tensor:
    """The sample's image as (3, H, W) float in [0, 1]; ``image_size``: resized to a square first (PIL bilinear)."""
    from PIL import Image

    with Image.open(sample.image) as image:
        image = image.convert("RGB")
        if image_size is not None:
            image = image.resize((image_size, image_size), Image.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _normalize(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 0.5) / 0.5  # [0, 1] -> [-1, 1]


def load_batch(samples, image_size: int, *, flip: torch.Tensor | None = None, augmentation: DetectionAugmentation | None = None,
               generator: torch.Generator | None = None):
    """Images (N, 3, S, S) and targets with boxes in the resized frame; ``flip`` (N,) bool mirrors both.
    ``augmentation``: each sample drawn through :func:`augment_detection` with ``generator`` instead."""
    images, targets = [], []
    for index, sample in enumerate(samples):
        if augmentation is not None:
            drawn = augment_detection(_pixels(sample), sample.boxes, sample.labels, image_size, augmentation,
                                      generator if generator is not None else torch.Generator().manual_seed(index))
            images.append(_normalize(drawn.image))
            targets.append({"boxes": drawn.boxes, "labels": drawn.labels})
            continue
        image = _normalize(_pixels(sample, image_size))  # (3, S, S) in [-1, 1]
        scale = torch.tensor([image_size / sample.width, image_size / sample.height] * 2)
        boxes = sample.boxes * scale
        if flip is not None and flip[index]:
            image = image.flip(-1)
            boxes = torch.stack((image_size - boxes[:, 2], boxes[:, 1], image_size - boxes[:, 0], boxes[:, 3]), dim=1)
        images.append(image)
        targets.append({"boxes": boxes, "labels": sample.labels})
    return torch.stack(images), targets


def _stream(seed: int, kind: int, index: int) -> torch.Generator:
    """A generator for one (seed, kind, index): kind 0 the batch order of epoch ``index``, 1 the augmentation of step ``index``."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index) * 2 + kind)


def cosine_lr(lr: float, step: int, total_steps: int) -> float:
    """The learning rate of ``step``: cosine decay from ``lr`` to 0 over ``total_steps``."""
    return lr * 0.5 * (1 + math.cos(math.pi * min(step / max(total_steps, 1), 1.0)))


def train_detector(model, train_set: DetectionSet, *, epochs: int, batch_size: int = 16, lr: float = 3e-3,
                   image_size: int = 320, seed: int = 0, log=print, augmentation: DetectionAugmentation | None = SSD_AUGMENTATION,
                   start_epoch: int = 0, optimizer_state: dict | None = None, losses: Sequence[float] = (),
                   on_epoch: Callable[[dict], None] | None = None) -> dict:
    """Train in place from ``start_epoch`` (with ``optimizer_state`` and the earlier epochs' ``losses``) to ``epochs``.

    ``augmentation=None`` trains on the plain evaluation resize. ``on_epoch(state)`` is called after every
    epoch with ``epoch`` (done), ``step``, ``losses`` (every epoch's mean loss so far), ``lr`` (of the last
    step) and ``optimizer`` (its state dict): what a resumed run needs. Returns ``losses``, ``train_seconds``,
    ``steps`` and ``optimizer``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=4e-5)
    if optimizer_state:
        optimizer.load_state_dict(optimizer_state)
    steps_per_epoch = math.ceil(len(train_set.samples) / batch_size)
    total_steps = epochs * steps_per_epoch
    model.set_input_size(image_size)
    history, start = list(losses)[:start_epoch], time.perf_counter()
    step = start_epoch * steps_per_epoch
    rate = cosine_lr(lr, step, total_steps)
    for epoch in range(start_epoch, epochs):
        model.train()
        order = torch.randperm(len(train_set.samples), generator=_stream(seed, 0, epoch)).tolist()
        total = 0.0
        for first in range(0, len(order), batch_size):
            batch = [train_set.samples[i] for i in order[first: first + batch_size]]
            images, targets = load_batch(batch, image_size, augmentation=augmentation, generator=_stream(seed, 1, step))
            loss = model.loss(model(images), targets)["loss"]
            if not math.isfinite(loss.item()):
                raise ValueError(f"the detection loss became {loss.item()} at epoch {epoch + 1}; lower --lr")
            rate = cosine_lr(lr, step, total_steps)
            for group in optimizer.param_groups:
                group["lr"] = rate
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total += loss.item() * len(batch)
        history.append(total / len(order))
        log(f"epoch {epoch + 1}/{epochs}: loss {history[-1]:.4f}")
        if on_epoch is not None:
            on_epoch({"epoch": epoch + 1, "step": step, "losses": list(history), "lr": rate, "optimizer": optimizer.state_dict()})
    return {"losses": history, "train_seconds": time.perf_counter() - start, "steps": step, "optimizer": optimizer.state_dict()}


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
