"""Monocular depth benchmark (issue 18): FCRN parameter counts vs Laina et al. 2016, ONNX Runtime fp32
latency at the task resolution (228 x 304, batch 1), and the Eigen depth metrics on the procedural
test scenes and on the real Middlebury motorcycle scene after a fixed small training budget on the
procedural training scenes, next to a constant predictor (the training set's mean depth).

    python benchmarks/bench_depth.py            # full: ~35-45 min on an idle 2-core machine
    python benchmarks/bench_depth.py --quick    # end-to-end check: ~3-5 min

Writes benchmarks/results/depth.md (and depth.json beside it). Training results are resumable
(per-epoch state in the run folders under --work).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PAPER_PARAMS = {"fcrn_resnet50": 63.6e6}  # Laina et al. 2016, Sec. 3.1


def _constant_metrics(train_pairs, test_pairs, min_depth, max_depth):
    import numpy as np
    import torch

    from edgevision.depth.metrics import DepthMetricAccumulator

    values = np.concatenate([d[(d > min_depth) & (d <= max_depth)].ravel() for _, d in train_pairs])
    mean = float(values.mean())
    accumulator = DepthMetricAccumulator(min_depth, max_depth)
    for _, depth in test_pairs:
        target = torch.from_numpy(depth)[None, None]
        accumulator.update(torch.full_like(target, mean), target)
    return accumulator.compute()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny budget: check the script end to end")
    parser.add_argument("--models", nargs="+", default=None, help="depth models to train (default: fcrn_mobilenetv2_100, and fcrn_resnet50 in full mode)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 30; quick 1)")
    parser.add_argument("--scenes", type=int, default=None, help="procedural training scenes (default 96; quick 8)")
    parser.add_argument("--budget", type=float, default=None, help="ORT latency time budget per model, seconds (default 20; quick 2)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_depth")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "depth.md")
    args = parser.parse_args(argv)

    import torch

    import edgevision as ev
    from edgevision.atomic import atomic_write_text
    from edgevision.depth.data import PROCEDURAL_SIZE, ProceduralDepthScenes, motorcycle_scene
    from edgevision.depth.training import IMAGENET_MEAN, IMAGENET_STD, evaluate_depth, train_depth
    from edgevision.latency import measure
    from edgevision.machine import machine_info

    quick = args.quick
    epochs = args.epochs or (1 if quick else 30)
    scenes = args.scenes or (8 if quick else 96)
    budget = args.budget or (2.0 if quick else 20.0)
    models = args.models or (["fcrn_mobilenetv2_100"] if quick else ["fcrn_mobilenetv2_100", "fcrn_resnet50"])
    crop = (64, 85) if quick else (96, 128)
    torch.set_num_threads(args.threads)
    min_depth, max_depth = 1e-3, 10.0

    machine = machine_info()
    report: dict = {"machine": machine.to_dict(), "machine_summary": machine.short,
                    "quick": quick, "epochs": epochs, "train_scenes": scenes, "crop": list(crop), "threads": args.threads, "models": {}}
    started = time.perf_counter()
    # 1. parameters vs the paper (meta device: no memory) and ORT fp32 latency at 228 x 304
    for name in ev.list_models(task="depth"):
        spec = ev.get_spec(name)
        with torch.device("meta"):
            params = sum(p.numel() for p in spec.build().parameters())
        entry = {"params": params, "paper_params": PAPER_PARAMS.get(name), "input": list(spec.input_size), "output": list(spec.output_size())}
        result = measure(name, (3, *spec.input_size), runtime="ort", threads=args.threads, deploy=True, time_budget_s=budget)
        entry.update(ort_fp32_ms=result.median_ms, ort_ci_ms=[result.ci_low_ms, result.ci_high_ms], ort_noisy=result.noisy, ort_runs=result.runs)
        report["models"][name] = entry
        print(f"{name}: {params / 1e6:.2f}M params, ORT fp32 {result.summary()}", flush=True)

    # 2. a fixed small training budget on procedural scenes, metrics on held-out scenes and the motorcycle
    train_pairs = ProceduralDepthScenes(scenes, *PROCEDURAL_SIZE, seed=0)
    test_pairs = ProceduralDepthScenes(4 if quick else 16, *PROCEDURAL_SIZE, seed=1)
    image, depth, calibration = motorcycle_scene()
    if quick:  # the full 500 x 741 frame is costly on the CPU; quick mode halves it (depth unchanged by resizing)
        image, depth = image[::2, ::2], depth[::2, ::2]
    motorcycle = [(image, depth)]
    report["baseline_constant"] = {"procedural": _constant_metrics(train_pairs, test_pairs, min_depth, max_depth),
                                   "motorcycle": _constant_metrics(train_pairs, motorcycle, min_depth, max_depth)}
    for name in models:
        torch.manual_seed(0)
        model = ev.create_model(name)
        result = train_depth(model, train_pairs, test_pairs[:2] if quick else test_pairs, epochs=epochs, batch_size=8, lr=1e-3, crop=crop,
                             min_depth=min_depth, max_depth=max_depth, max_scale=1.0 if quick else 1.2, seed=0,
                             out_dir=args.work / f"{name}-e{epochs}-n{scenes}{'-quick' if quick else ''}", progress=True)
        evaluation = {
            "procedural": evaluate_depth(result.model, test_pairs, mean=IMAGENET_MEAN, std=IMAGENET_STD, min_depth=min_depth, max_depth=max_depth),
            "motorcycle": evaluate_depth(result.model, motorcycle, mean=IMAGENET_MEAN, std=IMAGENET_STD, min_depth=min_depth, max_depth=max_depth),
            "train_seconds": result.train_seconds,
        }
        report["models"].setdefault(name, {})["trained"] = evaluation
        print(f"{name}: procedural abs rel {evaluation['procedural']['abs_rel']:.3f}, motorcycle abs rel {evaluation['motorcycle']['abs_rel']:.3f}", flush=True)
    report["wall_seconds"] = time.perf_counter() - started

    lines = [
        "# Monocular depth (FCRN, Laina et al. 2016)" + (" — QUICK MODE (not the result)" if quick else ""),
        "",
        f"Produced by `python benchmarks/bench_depth.py{' --quick' if quick else ''}` in {report['wall_seconds'] / 60:.1f} min. "
        f"Machine: {report['machine_summary']}; "
        f"{args.threads} threads.",
        "",
        "## Parameters and ONNX Runtime fp32 latency (batch 1, 228 x 304 input, deploy form)",
        "",
        "| model | params | paper | output | ORT fp32 ms (95% CI) |",
        "|---|---:|---:|---|---:|",
    ]
    for name, entry in report["models"].items():
        if "params" not in entry:
            continue
        paper = f"{entry['paper_params'] / 1e6:.1f}M" if entry["paper_params"] else "—"
        noisy = " (noisy)" if entry["ort_noisy"] else ""
        lines.append(f"| {name} | {entry['params'] / 1e6:.2f}M | {paper} | {entry['output'][0]}x{entry['output'][1]} | "
                     f"{entry['ort_fp32_ms']:.1f} ({entry['ort_ci_ms'][0]:.1f}-{entry['ort_ci_ms'][1]:.1f}){noisy} |")
    lines += [
        "",
        f"## Depth metrics after {epochs} epochs on {scenes} procedural scenes (crop {crop[0]}x{crop[1]}, AdamW 1e-3, batch 8, berHu)",
        "",
        "Procedural: held-out seeded scenes at 120x160 (exact z-depth). Motorcycle: Middlebury 2014 via "
        "skimage.data.stereo_motorcycle, depth = f B / (d + doffs) with f = 994.978 px, B = 193.001 mm, doffs = 31.086 px "
        "(a real photo; the training scenes are synthetic, so this measures transfer, not fit). "
        "Constant = the training set's mean depth everywhere.",
        "",
        "| model | scene | abs rel | sq rel | RMSE | RMSE log | log10 | δ1 | δ2 | δ3 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def row(label, scene, m):
        return (f"| {label} | {scene} | {m['abs_rel']:.3f} | {m['sq_rel']:.3f} | {m['rmse']:.3f} | {m['rmse_log']:.3f} | {m['log10']:.3f} | "
                f"{m['delta1']:.3f} | {m['delta2']:.3f} | {m['delta3']:.3f} |")

    for scene in ("procedural", "motorcycle"):
        lines.append(row("constant (mean depth)", scene, report["baseline_constant"][scene]))
        for name in models:
            lines.append(row(name, scene, report["models"][name]["trained"][scene]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
