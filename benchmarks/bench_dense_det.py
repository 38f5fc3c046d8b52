"""Detection benchmark: params vs published, ORT fp32 latency of the deployed graph (NMS inside),
and COCO mAP on the embedded scenes after a fixed small training budget.

    python benchmarks/bench_dense_det.py            # full: 320 px, 256/64 scenes, 10 epochs (lead, idle machine)
    python benchmarks/bench_dense_det.py --quick    # smoke test: 64 px, 8/4 scenes, 1 epoch, 3 latency runs
Writes benchmarks/results/dense_detection.md (and .json beside it).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import edgevision as ev
from edgevision.atomic import atomic_write_text
from edgevision.datasets.scenes import generate_scenes
from edgevision.detection.data import load_coco_detection
from edgevision.detection.export import export_detector_onnx
from edgevision.detection.training import evaluate_detector, train_detector

#: published parameter counts (torchvision's model table; MobileNetV2 paper Table 6)
PUBLISHED_PARAMS = {"ssdlite320_mobilenetv3_large": 3_440_060, "ssdlite320_mobilenetv2": 4_300_000,
                    "picodet_s_320": 990_000}  # PaddleDetection's 2021.10 PicoDet table: 0.99M


def _latency_ms(path: Path, size: int, runs: int) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(1, 3, size, size).numpy()
    for _ in range(max(2, runs // 5)):
        session.run(None, {"images": images})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"images": images})
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/dense_detection.md")
    args = parser.parse_args(argv)
    size, train_n, val_n, epochs, runs = (64, 8, 4, 1, 3) if args.quick else (320, 256, 64, 10, 50)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        train_file = generate_scenes(work, split="train", num_images=train_n, image_size=size, seed=0)
        val_file = generate_scenes(work, split="val", num_images=val_n, image_size=size, seed=0)
        train_set, val_set = load_coco_detection(train_file), load_coco_detection(val_file)
        for name in ev.list_models(task="detection"):
            torch.manual_seed(0)
            published = ev.create_model(name)
            params = sum(p.numel() for p in published.parameters())
            model = ev.create_model(name, num_classes=len(train_set.class_names))
            onnx_path = Path(work) / f"{name}.onnx"
            export_detector_onnx(model.eval(), onnx_path, image_size=size)
            latency = _latency_ms(onnx_path, size, runs)
            result = train_detector(model, train_set, epochs=epochs, batch_size=16, image_size=size, seed=0, log=lambda _: None)
            metrics = evaluate_detector(model, val_set, val_file, image_size=size)
            rows.append({"model": name, "params": params, "published_params": PUBLISHED_PARAMS.get(name), "resolution": size,
                         "ort_fp32_ms": latency, "epochs": epochs, "train_seconds": result["train_seconds"], **metrics})
            print(f"{name}: {params:,} params, {latency:.1f} ms, mAP {metrics['mAP']:.3f}", file=sys.stderr)
    lines = [f"# Detection benchmark{' (--quick: not a result)' if args.quick else ''}", "",
             f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
             f"scenes {train_n} train / {val_n} val at {size} px, {epochs} epochs, batch 16. Latency: ORT fp32, batch 1, "
             f"median of {runs}, deployed graph with NonMaxSuppression. MACs: not measured here (see `edgevision measure`).", "",
             "| model | params | published | ORT fp32 ms | mAP | AP50 | AP75 | APs | APm | APl |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        published = f"{r['published_params']:,}" if r["published_params"] else "-"
        lines.append(f"| {r['model']} | {r['params']:,} | {published} | {r['ort_fp32_ms']:.1f} | "
                     + " | ".join(f"{r[k]:.3f}" for k in ("mAP", "AP50", "AP75", "APs", "APm", "APl")) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
