"""Detection benchmark: params vs published, ORT fp32 latency of the deployed graph (NMS inside),
and COCO mAP on the embedded scenes after a fixed small training budget.

    python benchmarks/bench_dense_det.py            # full: 320 px, 256/64 scenes, 10 epochs (lead, idle machine)
    python benchmarks/bench_dense_det.py --quick    # smoke test: 64 px, 8/4 scenes, 1 epoch, 3 latency runs
    python benchmarks/bench_dense_det.py --accuracy-only --models ssdlite320_mobilenetv3_large \
        --size 160 --train-images 128 --epochs 40     # mAP only (no timing: fine on a busy machine)
Writes benchmarks/results/dense_detection.md (and .json beside it); ``--accuracy-only`` writes
benchmarks/results/dense_detection_accuracy.md (and .json) instead, with the mAP on the training
scenes beside the validation mAP (fit vs generalization).
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
from edgevision.detection.metrics import detection_calibration
from edgevision.detection.training import detector_corruption_map, evaluate_detector, predict_detections, train_detector

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
    parser.add_argument("--accuracy-only", action="store_true", help="skip export and latency; also report mAP on the training scenes")
    parser.add_argument("--models", nargs="+", default=None, help="detectors to run (default: every registered one)")
    parser.add_argument("--size", type=int, default=None, help="input and scene resolution (default 320; --quick 64)")
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--val-images", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--robustness", action="store_true",
                        help="--accuracy-only: also mAP under the 5 corruptions x 5 severities and the ECE of scores >= 0.3 on the val scenes")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default=None, help="default benchmarks/results/dense_detection.md (--accuracy-only: dense_detection_accuracy.md)")
    args = parser.parse_args(argv)
    size, train_n, val_n, epochs, runs = (64, 8, 4, 1, 3) if args.quick else (320, 256, 64, 10, 50)
    size, train_n, val_n, epochs = (args.size or size, args.train_images or train_n, args.val_images or val_n, args.epochs or epochs)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out = args.out or f"benchmarks/results/dense_detection{'_accuracy' if args.accuracy_only else ''}.md"
    rows = []
    with tempfile.TemporaryDirectory() as work:
        train_file = generate_scenes(work, split="train", num_images=train_n, image_size=size, seed=0)
        val_file = generate_scenes(work, split="val", num_images=val_n, image_size=size, seed=0)
        train_set, val_set = load_coco_detection(train_file), load_coco_detection(val_file)
        for name in args.models or ev.list_models(task="detection"):
            torch.manual_seed(0)
            with torch.device("meta"):
                params = sum(p.numel() for p in ev.create_model(name).parameters())
            model = ev.create_model(name, num_classes=len(train_set.class_names))
            latency = None
            if not args.accuracy_only:
                onnx_path = Path(work) / f"{name}.onnx"
                export_detector_onnx(model.eval(), onnx_path, image_size=size)
                latency = _latency_ms(onnx_path, size, runs)
            result = train_detector(model, train_set, epochs=epochs, batch_size=args.batch_size, lr=args.lr, image_size=size, seed=0,
                                    log=lambda line: print(f"{name} {line}", file=sys.stderr, flush=True))
            metrics = evaluate_detector(model, val_set, val_file, image_size=size)
            row = {"model": name, "params": params, "published_params": PUBLISHED_PARAMS.get(name), "resolution": size,
                   "ort_fp32_ms": latency, "epochs": epochs, "steps": epochs * -(-train_n // args.batch_size),
                   "train_seconds": result["train_seconds"], "final_loss": result["losses"][-1], **metrics}
            if args.accuracy_only:
                row["train_set"] = evaluate_detector(model, train_set, train_file, image_size=size)
            if args.accuracy_only and args.robustness:
                detections = predict_detections(model, val_set, image_size=size)
                row["calibration"] = detection_calibration(val_file, [s.image_id for s in val_set.samples], detections).to_dict()
                row["corruptions"] = detector_corruption_map(model, val_set, val_file, image_size=size)
            rows.append(row)
            print(f"{name}: {params:,} params, mAP {metrics['mAP']:.3f}", file=sys.stderr)
    if args.accuracy_only:
        return _write_accuracy(args, rows, size, train_n, val_n, epochs)
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


def _write_accuracy(args, rows, size, train_n, val_n, epochs) -> int:
    lines = [f"# Detection accuracy{' (--quick: not a result)' if args.quick else ''}", "",
             f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__} "
             f"(no timing here). Scenes {train_n} train / {val_n} val at {size} px, {epochs} epochs, batch {args.batch_size}, "
             f"AdamW lr {args.lr:g} cosine, from scratch.", "",
             "| model | steps | final loss | val mAP | AP50 | AP75 | APs | APm | APl | train mAP | train AP50 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['steps']} | {r['final_loss']:.3f} | "
                     + " | ".join(f"{r[k]:.3f}" for k in ("mAP", "AP50", "AP75", "APs", "APm", "APl"))
                     + f" | {r['train_set']['mAP']:.3f} | {r['train_set']['AP50']:.3f} |")
    for r in rows:
        if "corruptions" in r:
            c = r["corruptions"]
            lines += ["", f"## {r['model']}: robustness and calibration (val scenes)", "",
                      f"Clean mAP {c['clean_mAP']:.3f}; mean corruption mAP {c['mean_corruption_mAP']:.3f} "
                      f"({c['relative_mean_corruption_mAP']:.2f} of clean). ECE of detections scoring >= 0.3, matched at IoU 0.5: "
                      f"{r['calibration']['ece']:.3f} over {r['calibration']['detections']} detections.", "",
                      "| corruption | " + " | ".join(f"mAP s{s}" for s in c["severities"]) + " |", "|---|" + "---|" * len(c["severities"])]
            lines += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |" for name, values in c["mAP"].items()]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    atomic_write_text(out.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
