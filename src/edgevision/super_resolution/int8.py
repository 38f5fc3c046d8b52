"""INT8 SR through the deploy package's static quantization, accepted against a PSNR budget instead of top-1.

:class:`SREvaluator` is this task's :class:`~edgevision.deploy.tasks.TaskEvaluator`: centre LR crops
of a fixed side for calibration, and the mean Y-channel PSNR of any runnable (PyTorch, ONNX Runtime,
OpenVINO) on held-out LR/HR crops. ``edgevision deploy`` uses it through :func:`deploy_evaluator`.
``quantize_sr`` writes a QDQ ONNX graph (ORT ``quantize_static`` via
:func:`edgevision.deploy.quantize.quantize`) calibrated on LR crops, runs fp32 and INT8 on the same
crops; it tries min/max, then percentile, then entropy calibration and keeps the first within
``max_drop_db`` of fp32 (``accepted`` False with the best one when none is), through the shared
:func:`~edgevision.deploy.tasks.quantize_within_budget`.

The graph has a fixed input size by default. With ``dynamic_hw=True`` height and width stay free: static
quantization fixes one scale per tensor, not per pixel, so a graph calibrated on 64-pixel crops runs at
any size, and :func:`size_checks` measures its PSNR drop at other sizes (a non-square crop and the
held-out images whole) before it is accepted. That graph is what tiled inference
(:func:`~edgevision.super_resolution.tiling.super_resolve` takes any runnable) and ``edgevision upscale
--onnx`` run.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..deploy.tasks import TaskMetric, quantize_within_budget
from .data import SRPair
from .metrics import psnr_y

__all__ = ["METRIC", "PSNR", "SREvaluator", "crop_pairs", "mean_psnr", "deploy_evaluator", "quantize_sr", "size_checks", "DYNAMIC_CHECK_SIZES"]

PSNR = TaskMetric(name="psnr", label="PSNR (Y)", higher_is_better=True, budget_option="--max-drop-db", unit="dB", scale=1.0, default_budget=0.3)
METRIC = PSNR  # read by edgevision.deploy.tasks.task_metric before any data is loaded
DYNAMIC_SIZE = True  # size_checks(): deploy --dynamic-size ships a graph with a free height and width


def crop_pairs(pairs: list[SRPair], size: int | tuple[int, int], scale: int) -> list[SRPair]:
    """Centre LR crops of ``size`` (a side, or (height, width)) and their HR from the pairs large enough for one."""
    height, width = (size, size) if isinstance(size, int) else size
    out = []
    for pair in pairs:
        h, w = pair.lr.shape[-2:]
        if h < height or w < width:
            continue
        top, left = (h - height) // 2, (w - width) // 2
        out.append(SRPair(pair.name, pair.lr[:, top: top + height, left: left + width],
                          pair.hr[:, top * scale: (top + height) * scale, left * scale: (left + width) * scale]))
    return out


def mean_psnr(forward, pairs: list[SRPair], scale: int) -> float:
    """Mean Y PSNR (border = scale) of a runnable ``[1, C, h, w] -> [1, C, h*s, w*s]`` over ``pairs`` (any sizes)."""
    values = []
    for pair in pairs:
        sr = forward(pair.lr[None].float())
        sr = (sr[0] if isinstance(sr, tuple) else sr)[0]
        values.append(psnr_y(sr.float().clamp(0, 1), pair.hr, scale))
    return float(np.mean(values))


class SREvaluator:
    """Mean Y PSNR (border = scale) on ``size``-pixel LR crops of ``evaluation``; calibration crops of ``calibration``."""

    task = "super-resolution"
    metric = PSNR

    def __init__(self, calibration: list[SRPair], evaluation: list[SRPair], *, size: int, scale: int, in_channels: int = 3,
                 data: str = "") -> None:
        self.calibration, self.held_out = crop_pairs(calibration, size, scale), crop_pairs(evaluation, size, scale)
        if not self.calibration or not self.held_out:
            raise ValueError(f"no image has a {size}x{size} LR crop for calibration/evaluation; lower the size")
        self.evaluation_pairs = list(evaluation)
        self.scale, self.input_shape = scale, (in_channels, size, size)
        self.data = data or f"{len(self.calibration)} calibration / {len(self.held_out)} held-out {size}-px LR crops"

    def calibration_images(self) -> torch.Tensor:
        return torch.stack([p.lr for p in self.calibration])

    def verification_images(self) -> torch.Tensor:
        return torch.stack([p.lr for p in self.held_out[:8]])

    def evaluate(self, forward, pairs: list[SRPair] | None = None) -> dict:
        """Mean Y PSNR on the held-out crops, or on ``pairs`` (any sizes)."""
        pairs = self.held_out if pairs is None else pairs
        return {"psnr": mean_psnr(forward, pairs, self.scale), "images": len(pairs)}

    def size_checks(self, whole_images: int = 8) -> list:
        """``deploy --dynamic-size``'s checks (:class:`~edgevision.deploy.tasks.SizeCheck`), as ``quantize_sr``'s: centre crops
        of a non-square size (3/4 x 5/4 of the side: 48x80 at 64) and the first ``whole_images`` held-out LR images whole."""
        from ..deploy.tasks import SizeCheck

        side = self.input_shape[1]
        other = (max(1, side * 3 // 4), max(1, side * 5 // 4))
        checks = []
        crops = crop_pairs(self.evaluation_pairs, other, self.scale)[:8]
        if crops:
            checks.append(SizeCheck(f"{other[0]}x{other[1]} crops", [torch.stack([p.lr for p in crops])], partial(self.evaluate, pairs=crops)))
        whole = self.evaluation_pairs[:whole_images]
        checks.append(SizeCheck("whole images", [p.lr[None] for p in whole], partial(self.evaluate, pairs=whole)))
        return checks


def deploy_evaluator(model, metadata: dict, data: str | None, *, calibration: int = 32, verification: int = 32, input_size=None,
                     work_dir: Path | None = None) -> SREvaluator:
    """``edgevision deploy``'s evaluator: ``default`` data = the bundled JPEGs (calibration) and PNGs (held out), else a
    dataset folder's train/valid pairs; LR crops of ``input_size`` (default 64, like ``eval --int8-size``)."""
    from .data import bundled_images, bundled_pairs, load_folder_pairs, make_pair

    scale = model.spec.scale
    data = data or ("default" if str(metadata.get("dataset", "default")).startswith("bundled") else metadata.get("dataset")) or "default"
    if data == "default":
        train = [make_pair(name, hr, scale) for name, hr in bundled_images("train")]
        held_out = bundled_pairs(scale)
    else:
        folder = data.split(":", 1)[1] if data.startswith("folder:") else data
        train, held_out = load_folder_pairs(folder, scale, split="train"), load_folder_pairs(folder, scale, split="valid")
    size = int(input_size or 64)
    return SREvaluator(train[:calibration], held_out[:verification], size=size, scale=scale, in_channels=model.spec.in_channels,
                       data=f"{data} (x{scale}, {size}-px LR crops)")


#: the sizes a dynamic-size INT8 graph is checked at besides its calibration size: a non-square crop, and None = the
#: held-out LR images whole (each its own size, what `upscale` and tiled inference feed it)
DYNAMIC_CHECK_SIZES: tuple = ((48, 80), None)


def size_checks(fp32_path: str | Path, int8_path: str | Path, evaluation: list[SRPair], scale: int, sizes, max_drop_db: float,
                threads: int = 1) -> list[dict]:
    """fp32 vs INT8 PSNR of two dynamic-size graphs at each LR size in ``sizes`` ((h, w) or a side: centre crops of
    ``evaluation``; None: its images whole); sizes no image is large enough for are left out."""
    from ..deploy.tasks import onnx_forward

    fp32, int8 = onnx_forward(fp32_path, threads), onnx_forward(int8_path, threads)
    rows = []
    for size in sizes:
        pairs = list(evaluation) if size is None else crop_pairs(evaluation, size, scale)
        if not pairs:
            continue
        fp32_psnr, int8_psnr = mean_psnr(fp32, pairs, scale), mean_psnr(int8, pairs, scale)
        label = "whole images" if size is None else "x".join(map(str, (size, size) if isinstance(size, int) else size))
        rows.append({"lr_size": label, "lr_shapes": sorted({"x".join(map(str, p.lr.shape[-2:])) for p in pairs}), "images": len(pairs),
                     "fp32_psnr": fp32_psnr, "int8_psnr": int8_psnr, "drop_db": fp32_psnr - int8_psnr,
                     "within": fp32_psnr - int8_psnr <= max_drop_db})
    return rows


#: calibration methods in the order they are tried (the first within the budget is kept)
METHODS = ("minmax", "percentile", "entropy")


def quantize_sr(model: nn.Module, calibration: list[SRPair], evaluation: list[SRPair], output: str | Path,
                size: int = 64, max_drop_db: float = 0.3, dynamic_hw: bool = False, check_sizes=DYNAMIC_CHECK_SIZES) -> dict:
    """INT8 graph of ``model`` at ``output``, with fp32/INT8 PSNR on ``evaluation`` crops of ``size`` LR pixels.

    The graph takes ``size`` x ``size`` LR inputs; with ``dynamic_hw`` any height and width (what tiled inference and
    ``upscale --onnx`` need): it is still calibrated on ``size`` crops, and each calibration method's graph is judged on
    its *worst* drop over the ``size`` crops and every one of ``check_sizes`` (see :data:`DYNAMIC_CHECK_SIZES`): the
    next method is tried while that is over ``max_drop_db``, and ``accepted`` means every size is within it."""
    from ..export import export_onnx

    evaluator = SREvaluator(calibration, evaluation, size=size, scale=model.spec.scale, in_channels=model.spec.in_channels)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    float_path = output.with_suffix(".fp32.onnx")
    export_onnx(model, float_path, (1, *evaluator.input_shape), dynamic_hw=dynamic_hw)
    if not dynamic_hw:
        result = quantize_within_budget(float_path, evaluator, output, max_drop_db, methods=METHODS)
        sizes, worst = None, result["judgement"]["change"]
        tried = [{"method": t["method"], "psnr": t["metrics"]["psnr"], "drop_db": t["change"]} for t in result["tried"]]
    else:
        candidates, tried, float_metrics = [], [], None
        for method in METHODS:  # one at a time: the budget is judged on every size, not on the calibration size alone
            path = output.with_suffix(f".{method}-candidate.onnx")
            result = quantize_within_budget(float_path, evaluator, path, max_drop_db, float_metrics=float_metrics, methods=(method,))
            float_metrics = result["float"]
            sizes = size_checks(float_path, path, evaluation, model.spec.scale, check_sizes, max_drop_db)
            worst = max([result["judgement"]["change"], *(row["drop_db"] for row in sizes)])
            candidates.append((worst, result, sizes, path))
            tried.append({"method": method, "psnr": result["int8"]["psnr"], "drop_db": result["judgement"]["change"], "worst_drop_db": worst})
            if worst <= max_drop_db:
                break
        worst, result, sizes, best = min(candidates, key=lambda c: c[0])
        best.replace(output)
        for _, _, _, path in candidates:
            path.unlink(missing_ok=True)
    report = {"fp32_psnr": result["float"]["psnr"], "int8_psnr": result["int8"]["psnr"], "drop_db": result["judgement"]["change"],
              "method": result["method"], "max_drop_db": max_drop_db, "accepted": worst <= max_drop_db, "tried": tried,
              "path": str(output), "fp32_path": str(float_path), "lr_size": size, "images": len(evaluator.held_out),
              "dynamic_hw": dynamic_hw}
    if dynamic_hw:
        report.update(sizes=sizes, worst_drop_db=worst)
    return report
