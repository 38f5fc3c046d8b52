"""Benchmark of the segmentation models (issue 17, segmentation half).

Per registered segmentation model: parameters and MACs at its published resolution vs the published
figures (torchvision's model cards; Sandler et al. 2018, Table 7), ONNX Runtime fp32 latency of the
deploy form at that resolution, and val mIoU / pixel accuracy on the embedded procedural scenes
after a fixed small training budget (same seed, same scenes, same recipe for every model).
Rows go to benchmarks/results/dense_segmentation.jsonl as they finish (a killed run resumes) and the
table to benchmarks/results/dense_segmentation.md.

    python benchmarks/bench_dense_seg.py            # full: 6 models, 520/513/512 px, 96 scenes x 12 epochs at 160 px; ~40 min on 2 idle cores
    python benchmarks/bench_dense_seg.py --quick    # 2 models at 128 px, 16 scenes x 1 epoch at 64 px (checks the script end to end)
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import torch

import edgevision as ev
from edgevision.atomic import atomic_write_text
from edgevision.machine import machine_info
from edgevision.segmentation.data import load_segmentation_data
from edgevision.segmentation.training import SegmentationRecipe, train_segmentation

RESULTS = Path(__file__).parent / "results"
# (params, GMACs, resolution, source); torchvision lists "GFLOPS" that are multiply-accumulates (fvcore convention)
PUBLISHED = {
    "lraspp_mobilenet_v3_large": (3_221_538, 2.09, 520, "torchvision model card"),
    "deeplabv3_mobilenet_v3_large": (11_029_328, 10.45, 520, "torchvision model card (params with aux head)"),
    "deeplabv3_mobilenet_v2": (2_110_000, 2.75, 513, "Sandler et al. 2018, Table 7 (OS 16, no ASPP)"),
}


def _row(name: str, quick: bool, threads: int, budget: float, scenes_dir: Path) -> dict:
    model = ev.create_model(name)
    size = 128 if quick else model.spec.input_size
    row = {"model": name, "input": size, "params": ev.count_params(model), "macs": ev.count_macs(model, size)}
    latency = ev.measure(model.eval(), (3, size, size), runtime="ort", threads=threads, deploy=True, time_budget_s=budget)
    row.update(median_ms=latency.median_ms, ci_low_ms=latency.ci_low_ms, ci_high_ms=latency.ci_high_ms, noisy=latency.noisy)
    scenes, epochs, crop = ((16, 16), 1, 64) if quick else ((96, 32), 12, 160)
    train_set, val_set = load_segmentation_data("default", cache_dir=scenes_dir, scene_images=scenes, scene_size=160, seed=0)
    torch.manual_seed(0)
    student = ev.create_model(name, num_classes=train_set.num_classes)
    recipe = SegmentationRecipe(epochs=epochs, batch_size=8, crop_size=crop)
    result = train_segmentation(student, train_set, val_set, recipe, seed=0)
    row.update(miou=result.final["miou"], pixel_accuracy=result.final["pixel_accuracy"], train_seconds=result.train_seconds,
               budget=f"{scenes[0]} scenes x {epochs} epochs at {crop} px, AdamW 1e-3, from scratch")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two models at 128 px, one short epoch")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    names = ev.list_models(task="segmentation")
    models, budget = ((["lraspp_mobilenet_v3_small", "deeplabv3_mobilenet_v2"], 2.0) if args.quick else (names, 20.0))
    stem = "dense_segmentation_quick" if args.quick else "dense_segmentation"
    rows_path = RESULTS / f"{stem}.jsonl"
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
    done = {r["model"] for r in rows}
    scenes_dir = Path(tempfile.gettempdir()) / "edgevision-bench-seg"
    for name in models:
        if name in done:
            continue
        rows.append(_row(name, args.quick, args.threads, budget, scenes_dir))
        atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in rows))  # resumable after kill -9
        print(f"{name}: {rows[-1]['median_ms']:.1f} ms, {rows[-1]['macs'] / 1e9:.2f} GMACs, mIoU {rows[-1]['miou']:.3f}", flush=True)
    machine = machine_info()
    lines = [
        f"# Segmentation models: cost vs published, latency, mIoU on the embedded scenes ({datetime.date.today()})",
        "",
        f"`python benchmarks/bench_dense_seg.py{' --quick' if args.quick else ''}`; deploy form, ONNX Runtime fp32, {args.threads} threads, "
        f"batch 1. Machine: {machine.cpu_model} ({machine.fingerprint}), torch {torch.__version__}."
        + (" QUICK MODE: 128 px and one epoch; the numbers only show that the script runs." if args.quick else ""),
        "",
        "| model | input | params | published params | GMACs | published GMACs | ORT ms (95% CI) | scenes mIoU | pixel acc | training budget |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        published = PUBLISHED.get(r["model"])
        pub_params = f"{published[0] / 1e6:.2f}M ({published[3]})" if published else "-"
        pub_macs = f"{published[1]:.2f} at {published[2]}" if published else "-"
        noisy = " (noisy)" if r["noisy"] else ""
        lines.append(
            f"| {r['model']} | {r['input']} | {r['params'] / 1e6:.3f}M | {pub_params} | {r['macs'] / 1e9:.2f} | {pub_macs} | "
            f"{r['median_ms']:.1f} ({r['ci_low_ms']:.1f}-{r['ci_high_ms']:.1f}){noisy} | {r['miou']:.3f} | {r['pixel_accuracy']:.3f} | {r['budget']} |"
        )
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
