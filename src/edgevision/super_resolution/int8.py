"""INT8 SR through the deploy package's static quantization, accepted against a PSNR budget instead of top-1.

:class:`SREvaluator` is this task's :class:`~edgevision.deploy.tasks.TaskEvaluator`: centre LR crops
of a fixed side (the INT8 graph has a fixed input size) for calibration, and the mean Y-channel PSNR
of any runnable (PyTorch, ONNX Runtime, OpenVINO) on held-out LR/HR crops. ``edgevision deploy``
uses it through :func:`deploy_evaluator`. ``quantize_sr`` writes a fixed-size QDQ ONNX graph (ORT
``quantize_static`` via :func:`edgevision.deploy.quantize.quantize`) calibrated on LR crops, runs fp32
and INT8 on the same crops; it tries min/max, then percentile, then entropy calibration and keeps the
first within ``max_drop_db`` of fp32 (``accepted`` False with the best one when none is), through the
shared :func:`~edgevision.deploy.tasks.quantize_within_budget`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..deploy.tasks import TaskMetric, quantize_within_budget
from .data import SRPair
from .metrics import psnr_y

__all__ = ["METRIC", "PSNR", "SREvaluator", "crop_pairs", "deploy_evaluator", "quantize_sr"]

PSNR = TaskMetric(name="psnr", label="PSNR (Y)", higher_is_better=True, budget_option="--max-drop-db", unit="dB", scale=1.0, default_budget=0.3)
METRIC = PSNR  # read by edgevision.deploy.tasks.task_metric before any data is loaded


def crop_pairs(pairs: list[SRPair], size: int, scale: int) -> list[SRPair]:
    """Centre LR crops of ``size`` (and their HR) from the pairs large enough for one."""
    out = []
    for pair in pairs:
        h, w = pair.lr.shape[-2:]
        if min(h, w) < size:
            continue
        top, left = (h - size) // 2, (w - size) // 2
        out.append(SRPair(pair.name, pair.lr[:, top: top + size, left: left + size],
                          pair.hr[:, top * scale: (top + size) * scale, left * scale: (left + size) * scale]))
    return out


class SREvaluator:
    """Mean Y PSNR (border = scale) on ``size``-pixel LR crops of ``evaluation``; calibration crops of ``calibration``."""

    task = "super-resolution"
    metric = PSNR

    def __init__(self, calibration: list[SRPair], evaluation: list[SRPair], *, size: int, scale: int, in_channels: int = 3,
                 data: str = "") -> None:
        self.calibration, self.held_out = crop_pairs(calibration, size, scale), crop_pairs(evaluation, size, scale)
        if not self.calibration or not self.held_out:
            raise ValueError(f"no image has a {size}x{size} LR crop for calibration/evaluation; lower the size")
        self.scale, self.input_shape = scale, (in_channels, size, size)
        self.data = data or f"{len(self.calibration)} calibration / {len(self.held_out)} held-out {size}-px LR crops"

    def calibration_images(self) -> torch.Tensor:
        return torch.stack([p.lr for p in self.calibration])

    def verification_images(self) -> torch.Tensor:
        return torch.stack([p.lr for p in self.held_out[:8]])

    def evaluate(self, forward) -> dict:
        values = []
        for pair in self.held_out:
            sr = forward(pair.lr[None].float())
            sr = (sr[0] if isinstance(sr, tuple) else sr)[0]
            values.append(psnr_y(sr.float().clamp(0, 1), pair.hr, self.scale))
        return {"psnr": float(np.mean(values)), "images": len(values)}


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


def quantize_sr(model: nn.Module, calibration: list[SRPair], evaluation: list[SRPair], output: str | Path,
                size: int = 64, max_drop_db: float = 0.3) -> dict:
    """INT8 graph of ``model`` for ``size`` x ``size`` LR inputs at ``output``, with fp32/INT8 PSNR on ``evaluation`` crops."""
    from ..export import export_onnx

    evaluator = SREvaluator(calibration, evaluation, size=size, scale=model.spec.scale, in_channels=model.spec.in_channels)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    float_path = output.with_suffix(".fp32.onnx")
    export_onnx(model, float_path, (1, *evaluator.input_shape))
    result = quantize_within_budget(float_path, evaluator, output, max_drop_db, methods=("minmax", "percentile", "entropy"))
    tried = [{"method": t["method"], "psnr": t["metrics"]["psnr"], "drop_db": t["change"]} for t in result["tried"]]
    return {"fp32_psnr": result["float"]["psnr"], "int8_psnr": result["int8"]["psnr"], "drop_db": result["judgement"]["change"],
            "method": result["method"], "max_drop_db": max_drop_db, "accepted": result["accepted"], "tried": tried,
            "path": str(output), "fp32_path": str(float_path), "lr_size": size, "images": len(evaluator.held_out)}
