"""The depth task's deploy evaluator: the Eigen metrics of a runnable at the deploy crop, judged on abs-rel.

Calibration crops come from the training split, the held-out metrics from the test split, both
centre-cropped to the checkpoint's training crop (the graph has a fixed H x W) and normalised with
its mean/std; the metric code is :func:`~edgevision.depth.training.evaluate_depth`'s. abs-rel is
lower-is-better, so the budget is an *increase* (``edgevision deploy --max-abs-rel-increase``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch

from ..deploy.tasks import ForwardModule, TaskMetric

__all__ = ["METRIC", "ABS_REL", "DepthEvaluator", "deploy_evaluator"]

ABS_REL = TaskMetric(name="abs_rel", label="abs rel", higher_is_better=False, budget_option="--max-abs-rel-increase", unit="abs-rel",
                     scale=1.0, default_budget=0.01)
METRIC = ABS_REL  # read by edgevision.deploy.tasks.task_metric before any data is loaded
DYNAMIC_SIZE = True  # size_checks(): deploy --dynamic-size ships a graph with a free height and width


def _centre_crop(pairs, crop: tuple[int, int]):
    height, width = crop
    out = []
    for image, depth in pairs:
        if image.shape[0] < height or image.shape[1] < width:
            continue
        top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
        out.append((image[top:top + height, left:left + width], depth[top:top + height, left:left + width]))
    return out


class DepthEvaluator:
    task = "depth"
    metric = ABS_REL

    def __init__(self, train_pairs, test_pairs, *, crop: tuple[int, int], mean, std, min_depth: float, max_depth: float,
                 in_channels: int = 3, data: str = "") -> None:
        self.train, self.test = _centre_crop(train_pairs, crop), _centre_crop(test_pairs, crop)
        self.test_frames = list(test_pairs)  # whole, for size_checks()
        if not self.train or not self.test:
            raise ValueError(f"no image is large enough for the {crop[0]}x{crop[1]} deploy crop; lower --input-size")
        self.mean, self.std, self.min_depth, self.max_depth = list(mean), list(std), min_depth, max_depth
        self.input_shape = (in_channels, int(crop[0]), int(crop[1]))
        self.data = data or f"{len(self.train)} calibration / {len(self.test)} test crops"

    def _images(self, pairs) -> torch.Tensor:
        from .data import DepthSamples

        samples = DepthSamples(pairs, self.mean, self.std)
        return torch.stack([samples[i][0] for i in range(len(samples))])

    def calibration_images(self) -> torch.Tensor:
        return self._images(self.train)

    def verification_images(self) -> torch.Tensor:
        return self._images(self.test[:8])

    def evaluate(self, forward, pairs=None) -> dict:
        """The metrics on the test crops, or on ``pairs`` one at a time (whole frames may differ in size; the metrics are
        means over images either way)."""
        from .training import evaluate_depth

        return evaluate_depth(ForwardModule(forward), self.test if pairs is None else pairs, mean=self.mean, std=self.std,
                              min_depth=self.min_depth, max_depth=self.max_depth, batch_size=8 if pairs is None else 1)

    def size_checks(self, whole_frames: int = 8) -> list:
        """``deploy --dynamic-size``'s checks (:class:`~edgevision.deploy.tasks.SizeCheck`): centre crops of another size
        (3/4 of the height, 5/4 of the width, within the smallest test frame; like FCRN's own 304x228, not a multiple of
        the encoder's stride) and the first ``whole_frames`` test frames whole (the prediction is resized to each depth map)."""
        from ..deploy.tasks import SizeCheck

        height, width = self.input_shape[1:]
        smallest = (min(image.shape[0] for image, _ in self.test_frames), min(image.shape[1] for image, _ in self.test_frames))
        other = (max(8, min(height * 3 // 4, smallest[0])), max(8, min(width * 5 // 4, smallest[1])))
        checks = []
        crops = _centre_crop(self.test_frames, other)[:8]
        if crops and other != (height, width):
            checks.append(SizeCheck(f"{other[0]}x{other[1]} crops", [self._images(crops)], partial(self.evaluate, pairs=crops)))
        whole = self.test_frames[:whole_frames]
        checks.append(SizeCheck("whole frames", [self._images([pair]) for pair in whole], partial(self.evaluate, pairs=whole)))
        return checks


def deploy_evaluator(model, metadata: dict, data: str | None, *, calibration: int = 32, verification: int = 32, input_size=None,
                     work_dir: Path | None = None) -> DepthEvaluator:
    """``data`` as ``train --task depth`` takes it (default: the checkpoint's, else procedural scenes); crop = the checkpoint's
    training crop, or ``input_size`` x 4/3 of it, or the model's input size."""
    from .data import checkpoint_downsample, depth_pairs
    from .training import IMAGENET_MEAN, IMAGENET_STD

    preprocess = metadata.get("preprocess", {})
    source = data or metadata.get("dataset") or "procedural"
    if input_size:
        crop = (int(input_size), int(input_size) * 4 // 3)
    elif preprocess.get("crop"):
        crop = tuple(int(v) for v in preprocess["crop"])
    else:
        crop = (96, 128) if source.split(":")[0] in ("default", "procedural") else tuple(model.spec.input_size)
    scale = float(metadata.get("depth_scale", 1000.0))
    downsample = checkpoint_downsample(source, metadata)  # the frames it was trained on
    _, train_pairs = depth_pairs(source, "train", scenes=calibration, depth_scale=scale, downsample=downsample)
    _, test_pairs = depth_pairs(source, "test", depth_scale=scale, downsample=downsample)
    return DepthEvaluator(list(train_pairs)[:calibration], list(test_pairs)[:verification], crop=crop,
                          mean=preprocess.get("mean", IMAGENET_MEAN), std=preprocess.get("std", IMAGENET_STD),
                          min_depth=float(metadata.get("min_depth", model.spec.min_depth)),
                          max_depth=float(metadata.get("max_depth", model.spec.max_depth)), in_channels=model.spec.in_channels,
                          data=f"{source} ({crop[0]}x{crop[1]} centre crops)")
