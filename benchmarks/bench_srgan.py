"""Real-time SRGAN, distillation and DRN dual regression benchmark (issue 18) -> benchmarks/results/srgan.md (+ .json).

    make bench-srgan                                # full: 1000 steps a row, ~75 min on an idle 2-core machine (estimate)
    python benchmarks/bench_srgan.py --quick        # smoke run: 3 steps of batch 4, 64-px crops, 1 s timings

Same budget for every row (``--steps`` of batch 16, 24-px LR patches at x4, Adam 1e-3 halved at 50/75%) on the
bundled JPEG photos; PSNR/SSIM on the bundled PNG photos (Y, scale border crop) next to bicubic:

- the teacher ``realtime_srgan_large`` on L1; the student ``realtime_srgan`` on L1 alone, distilled from that
  teacher (output L1 + matched features), with DRN's dual loss (lambda 0.1), both, and with the relativistic GAN
  term (5e-3 after an L1 half: ESRGAN's warm-up; PSNR is expected to drop: the GAN trades fidelity for texture,
  and we have no perceptual metric to show the other side);
- INT8 (ONNX Runtime static QDQ, 64x64 LR, 0.3 dB budget) of the L1 and the distilled students;
- fp32 fps of both generators at x4 for a 256x256 and a 1280x720 output (``bench_sr.latency``).
On 5 training photos and a few thousand steps this ranks the options, it does not reproduce DIV2K numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

STUDENT, TEACHER = "realtime_srgan", "realtime_srgan_large"
#: row label -> (model, objective options); "teacher" marks rows distilled from the trained teacher
VARIANTS = {
    "teacher L1": (TEACHER, {}),
    "student L1": (STUDENT, {}),
    "student + distill": (STUDENT, {"teacher": True}),
    "student + dual (DRN, 0.1)": (STUDENT, {"dual_weight": 0.1}),
    "student + distill + dual": (STUDENT, {"teacher": True, "dual_weight": 0.1}),
    "student + GAN (RaGAN 5e-3, after 50% L1)": (STUDENT, {"gan_weight": 5e-3, "gan_start": 0.5}),
}


def train_variants(steps: int, batch_size: int, val_size: int, seed: int, scale: int = 4) -> tuple[list[dict], dict]:
    import torch

    import edgevision as ev
    from edgevision.counting import count_params
    from edgevision.super_resolution.data import bundled_images, bundled_pairs, make_pair
    from edgevision.super_resolution.engine import SRTrainConfig, evaluate_sr, train_sr
    from edgevision.super_resolution.objectives import SRObjectiveConfig, SRObjectives

    train_pairs = [make_pair(n, hr, scale) for n, hr in bundled_images("train")]
    val_pairs = bundled_pairs(scale, max_side=val_size)
    config = SRTrainConfig(steps=steps, batch_size=batch_size, patch_size=24, lr=1e-3, seed=seed)
    rows, trained = [], {}
    for label, (name, options) in VARIANTS.items():
        torch.manual_seed(seed)
        model = ev.registry.get_spec(name).with_scale(scale).build()
        options = dict(options)
        teacher = trained["teacher L1"] if options.pop("teacher", False) else None
        objectives = SRObjectives(model, scale, SRObjectiveConfig(**options), teacher=teacher) if options or teacher is not None else None
        result = train_sr(model, train_pairs, scale, config, objectives=objectives)
        report = evaluate_sr(model, val_pairs, scale)
        report.pop("per_image")
        trained[label] = model
        rows.append({"variant": label, "model": name, "params": count_params(model), "steps": steps, "train_seconds": result["seconds"],
                     "final_terms": result["terms"], **report})
        print(f"{label}: PSNR {report['psnr']:.2f} SSIM {report['ssim']:.4f} (bicubic {report['bicubic_psnr']:.2f})", flush=True)
    return rows, trained


def int8_rows(trained: dict, labels, budget: float, work: Path, scale: int = 4) -> list[dict]:
    from edgevision.latency import measure
    from edgevision.super_resolution.data import bundled_images, bundled_pairs, make_pair
    from edgevision.super_resolution.int8 import quantize_sr

    calibration = [make_pair(n, hr, scale) for n, hr in bundled_images("train")]
    evaluation = bundled_pairs(scale)
    rows = []
    for label in labels:
        try:
            result = quantize_sr(trained[label], calibration, evaluation, work / f"{len(rows)}.int8.onnx", size=64, max_drop_db=0.3)
            fp32 = measure(result["fp32_path"], runtime="ort", time_budget_s=budget)
            quantized = measure(result["path"], runtime="ort", time_budget_s=budget)
            rows.append({"variant": label, **{k: result[k] for k in ("fp32_psnr", "int8_psnr", "drop_db", "method", "accepted", "images")},
                         "fp32_fps": 1e3 / fp32.median_ms, "int8_fps": 1e3 / quantized.median_ms})
        except Exception as error:  # report, keep the rest
            rows.append({"variant": label, "error": f"{type(error).__name__}: {error}"[:200]})
        print(rows[-1], flush=True)
    return rows


def write_markdown(path: Path, accuracy, latency, quantized, args) -> None:
    from edgevision.atomic import atomic_write_text
    from edgevision.machine import machine_info

    machine = machine_info()
    r0 = accuracy[0]
    lines = ["# Real-time SRGAN, distillation, DRN dual regression (issue 18)", "",
             f"Machine: {machine.short}; {machine.logical_cpus} logical CPUs; fingerprint `{machine.fingerprint}`. "
             f"Generated by `benchmarks/bench_srgan.py{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             f"## PSNR / SSIM, x4, {r0['images']} bundled PNG photos (HR centre crops of {args.val_size} px; {r0['metric']}), "
             f"after {r0['steps']} steps of batch {args.batch_size} on the bundled JPEGs", "",
             "| variant | model | params | PSNR | SSIM | bicubic PSNR | bicubic SSIM | train s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in accuracy:
        lines.append(f"| {row['variant']} | {row['model']} | {row['params']:,} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['bicubic_psnr']:.2f} | "
                     f"{row['bicubic_ssim']:.4f} | {row['train_seconds']:.0f} |")
    if quantized:
        lines += ["", "## INT8 (ONNX Runtime static QDQ), 64x64 LR at x4, budget 0.3 dB", "",
                  "| variant | fp32 PSNR | INT8 PSNR | drop dB | calibration | within budget | fp32 fps | INT8 fps |", "|---|---:|---:|---:|---|---|---:|---:|"]
        for row in quantized:
            if "error" in row:
                lines.append(f"| {row['variant']} | {row['error']} | | | | | | |")
            else:
                lines.append(f"| {row['variant']} | {row['fp32_psnr']:.2f} | {row['int8_psnr']:.2f} | {row['drop_db']:.3f} | {row['method']} | "
                             f"{'yes' if row['accepted'] else 'no'} | {row['fp32_fps']:.2f} | {row['int8_fps']:.2f} |")
    if latency:
        lines += ["", "## fp32 latency at x4, batch 1", "", "| model | output | runtime | median ms | fps | flags |", "|---|---|---|---:|---:|---|"]
        for row in latency:
            if "error" in row:
                lines.append(f"| {row['model']} | {row['input']} | {row['runtime']} | - | - | {row['error']} |")
            else:
                flags = ", ".join(f for f in ("noisy" if row["noisy"] else "", "contended" if row["contended"] else "") if f)
                lines.append(f"| {row['model']} | {row['input']} | {row['runtime']} | {row['median_ms']:.1f} | {row['fps']:.2f} | {flags} |")
    if args.quick:
        lines += ["", "_Quick mode: a smoke run (tiny budget, busy machine); timings and accuracy here are not results._"]
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    from bench_sr import latency

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 steps of batch 4, 64-px crops, 1 s timings of the 256x256 case, ORT only")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timing per model, input and runtime")
    parser.add_argument("--runtimes", default="ort,eager")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/srgan.md"))
    args = parser.parse_args(argv)
    sizes, runtimes, quantized_labels = ("256", "720p"), args.runtimes.split(","), ["student L1", "student + distill"]
    if args.quick:
        args.steps, args.batch_size, args.val_size, args.budget = 3, 4, 64, 1.0
        sizes, runtimes, quantized_labels = ("256",), ["ort"], ["student L1"]
    accuracy, trained = train_variants(args.steps, args.batch_size, args.val_size, args.seed)
    with tempfile.TemporaryDirectory() as work:
        quantized = int8_rows(trained, quantized_labels, args.budget, Path(work))
    timings = latency([STUDENT, TEACHER], args.budget, runtimes, sizes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(out, accuracy, timings, quantized, args)
    from edgevision.atomic import atomic_write_text

    atomic_write_text(out.with_suffix(".json"), json.dumps({"accuracy": accuracy, "int8": quantized, "latency": timings}, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
