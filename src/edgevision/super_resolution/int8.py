"""INT8 SR through the deploy package's static quantization, accepted against a PSNR budget instead of top-1.

``quantize_sr`` writes a fixed-size QDQ ONNX graph (ORT ``quantize_static`` via
:func:`edgevision.deploy.quantize.quantize`) calibrated on LR crops, then runs fp32 and INT8 on the same
LR/HR crops and reports both PSNRs on Y; tries min/max, then percentile, then entropy calibration and
keeps the first within ``max_drop_db`` of fp32 (``accepted`` False with the best one when none is).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import SRPair
from .metrics import psnr_y

__all__ = ["quantize_sr", "crop_pairs"]


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


def _onnx_psnr(path: Path, pairs: list[SRPair], scale: int) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    values = []
    for pair in pairs:
        sr = session.run(None, {name: pair.lr[None].numpy().astype(np.float32)})[0][0]
        values.append(psnr_y(torch.from_numpy(sr).clamp(0, 1), pair.hr, scale))
    return float(np.mean(values))


def quantize_sr(model: nn.Module, calibration: list[SRPair], evaluation: list[SRPair], output: str | Path,
                size: int = 64, max_drop_db: float = 0.3) -> dict:
    """INT8 graph of ``model`` for ``size`` x ``size`` LR inputs at ``output``, with fp32/INT8 PSNR on ``evaluation`` crops."""
    from ..deploy.quantize import quantize
    from ..export import export_onnx

    scale = model.spec.scale
    calib = crop_pairs(calibration, size, scale)
    held_out = crop_pairs(evaluation, size, scale)
    if not calib or not held_out:
        raise ValueError(f"no image has a {size}x{size} LR crop for calibration/evaluation; lower the size")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    float_path = output.with_suffix(".fp32.onnx")
    export_onnx(model, float_path, (1, model.spec.in_channels, size, size))
    fp32 = _onnx_psnr(float_path, held_out, scale)
    images = torch.stack([p.lr for p in calib])
    tried = []
    for method in ("minmax", "percentile", "entropy"):
        candidate = output.with_suffix(f".{method}.onnx")
        quantize(float_path, images, candidate, method=method, calibration_count=len(images))
        int8 = _onnx_psnr(candidate, held_out, scale)
        tried.append({"method": method, "psnr": int8, "drop_db": fp32 - int8, "path": str(candidate)})
        if fp32 - int8 <= max_drop_db:
            break
    best = min(tried, key=lambda t: t["drop_db"])
    Path(best["path"]).replace(output)
    for other in tried:
        if other is not best:
            Path(other["path"]).unlink(missing_ok=True)
    return {"fp32_psnr": fp32, "int8_psnr": best["psnr"], "drop_db": best["drop_db"], "method": best["method"],
            "max_drop_db": max_drop_db, "accepted": best["drop_db"] <= max_drop_db, "tried": tried,
            "path": str(output), "fp32_path": str(float_path), "lr_size": size, "images": len(held_out)}
