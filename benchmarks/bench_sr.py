"""Super-resolution benchmark (issue 18): counts vs the papers, PSNR/SSIM vs bicubic after a fixed
training budget, fp32 latency as fps -> benchmarks/results/sr.md (+ sr.json).

    make bench-sr                                   # full: 2000 steps a model, ~1.5-2.5 h on an idle 2-core machine (estimate)
    python benchmarks/bench_sr.py --fast            # the same at 500 steps a model: ~50-60 min idle (44.5 measured with two inputs)
    python benchmarks/bench_sr.py --quick           # smoke run: carn_m, 5 steps, small crops (~6 min on a busy machine)

Training time (CPU seconds a step at batch 16, 24-px LR patches, x4, one thread, measured on the busy machine):
CARN 1.8, GhostSR-CARN 1.6, GhostSR-CARN-M 1.2, CARN-M 1.0, EFDN 0.5: 6.2 s for one step of all five.
Trained models are kept under --work (runs/bench_sr), so a run killed mid-way resumes at the model it was training.

Accuracy: each model is trained with L1 / Adam on random patches of the bundled JPEG photos (scikit-image +
scikit-learn) for ``--steps`` steps from scratch, then evaluated on the bundled PNG photos (HR centre crops
of ``--val-size``) on Y with a scale-pixel border crop, next to MATLAB bicubic. With a few hundred steps on
5 images this shows the ranking and that training works, not the papers' DIV2K numbers.
Latency: ONNX Runtime (and eager) fp32 at batch 1 at x4 for a 64x64 LR input (256x256 output), a 256x256 LR input
(1024x1024 output: the issue's "256^2 input") and a 1280x720 output (320x180 LR), reported as fps; INT8: one dynamic-size ONNX graph per trained model
(``quantize_sr(..., dynamic_hw=True)``), its PSNR drop at three sizes and its fps at each input beside
its fp32 graph's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: Table 2 of Ahn et al. 2018 (CARN), the EFDN paper/release (x4 only); GhostSR has no count for this exact variant
PAPER = {
    "carn": {"params_k": 1592, "gmacs": {2: 222.8, 3: 118.8, 4: 90.9}},
    "carn_m": {"params_k": 412, "gmacs": {2: 91.2, 3: 46.1, 4: 32.5}},
    "efdn": {"params_k": 276, "gmacs": {}},
    "ghostsr_carn": {"params_k": None, "gmacs": {}},
    "ghostsr_carn_m": {"params_k": None, "gmacs": {}},
}
#: counted only (params and mult-adds beside the release's README figures), not trained or timed: DRN works at the HR size
#: from its first layer (685G mult-adds for a 720p output at x4), an hour a model at this benchmark's training budget
COUNTED_ONLY = {
    "drn_s": {"params_k": 4800, "gmacs": {}},
    "drn_l": {"params_k": 9800, "gmacs": {}},
}


def counts(names) -> list[dict]:
    import edgevision as ev
    from edgevision.counting import count_params
    from edgevision.reparam import reparameterize
    from edgevision.super_resolution import sr_mult_adds

    rows = []
    for name in names:
        spec = ev.registry.get_spec(name)
        model = spec.build()
        row = {"model": name, "params": count_params(model), "deploy_params": count_params(reparameterize(model)), "gmacs_720p": {}}
        for scale in spec.scales:
            row["gmacs_720p"][scale] = sr_mult_adds(reparameterize(spec.with_scale(scale).build()), (720, 1280)) / 1e9  # deploy form
        rows.append(row)
        print(row, flush=True)
    return rows


TRAINED: dict = {}  # name -> the model trained by accuracy(), reused for INT8


def accuracy(names, scale, steps, val_size, seed, batch_size=16, work: Path | None = None) -> list[dict]:
    """Train each model ``steps`` steps from scratch, then PSNR/SSIM on the bundled PNGs beside bicubic.

    With ``work``, each trained model is kept there (``<name>-x<scale>-<steps>x<batch>-s<seed>.safetensors``) and reused on the
    next run: a killed benchmark restarts at the model it was training, not at the first."""
    import torch

    import edgevision as ev
    from edgevision.checkpoint import load, read_metadata, save
    from edgevision.super_resolution.data import bundled_images, bundled_pairs, make_pair
    from edgevision.super_resolution.engine import SRTrainConfig, evaluate_sr, train_sr

    train_pairs = [make_pair(n, hr, scale) for n, hr in bundled_images("train")]
    val_pairs = bundled_pairs(scale, max_side=val_size)
    rows = []
    for name in names:
        kept = work / f"{name}-x{scale}-{steps}x{batch_size}-s{seed}.safetensors" if work is not None else None
        reused = kept is not None and kept.is_file()
        if reused:
            model, seconds = load(kept).eval(), float(read_metadata(kept)["train_seconds"])
            print(f"{name}: reusing {kept}", flush=True)
        else:
            torch.manual_seed(seed)
            model = ev.registry.get_spec(name).with_scale(scale).build()
            config = SRTrainConfig(steps=steps, batch_size=batch_size, patch_size=24, lr=1e-3, seed=seed)
            seconds = train_sr(model, train_pairs, scale, config)["seconds"]
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                save(model, kept, {"task": "super-resolution", "scale": scale, "steps": steps, "train_seconds": seconds})
        report = evaluate_sr(model, val_pairs, scale)
        report.pop("per_image")
        TRAINED[name] = model
        rows.append({"model": name, "steps": steps, "train_seconds": seconds, "reused": reused, **report})
        print(f"{name}: PSNR {report['psnr']:.2f} (bicubic {report['bicubic_psnr']:.2f})", flush=True)
    return rows


#: the latency inputs at x4: label -> LR (C, H, W); the issue asks for "a 256^2 input at x4 and a 720p output"
INPUTS = {"256": ("256x256 output (64x64 LR)", (3, 64, 64)), "256in": ("1024x1024 output (256x256 LR input)", (3, 256, 256)),
          "720p": ("1280x720 output (320x180 LR)", (3, 180, 320))}


def latency(names, budget, runtimes, sizes=("256", "720p")) -> list[dict]:
    from edgevision.latency import measure

    import edgevision as ev

    rows = []
    for name in names:
        model = ev.registry.get_spec(name).with_scale(4).build().eval()
        for label, shape in (INPUTS[size] for size in sizes):
            for runtime in runtimes:
                try:
                    result = measure(model, shape, runtime=runtime, deploy=True, time_budget_s=budget)
                    rows.append({"model": name, "input": label, "runtime": runtime, "median_ms": result.median_ms,
                                 "fps": 1e3 / result.median_ms, "noisy": result.noisy, "contended": result.contended})
                except Exception as error:  # one failing runtime must not lose the rest of the table
                    rows.append({"model": name, "input": label, "runtime": runtime, "error": f"{type(error).__name__}: {error}"[:200]})
                print(rows[-1], flush=True)
    return rows


def int8(names, scale, budget, work: Path, sizes=("256",)) -> list[dict]:
    """The trained models' dynamic-size INT8 graph (ORT static QDQ, calibrated on 64x64 LR crops of the bundled JPEGs):
    PSNR drop on bundled-PNG 64x64 crops, a 48x80 crop and the whole images, and fp32 vs INT8 ORT fps at each of ``sizes``
    (keys of :data:`INPUTS`) from the same two graphs."""
    from edgevision.latency import measure
    from edgevision.super_resolution.data import bundled_images, bundled_pairs, make_pair
    from edgevision.super_resolution.int8 import quantize_sr

    calibration = [make_pair(n, hr, scale) for n, hr in bundled_images("train")]
    evaluation = bundled_pairs(scale)
    rows = []
    for name in names:
        model = TRAINED.get(name)
        if model is None:
            continue
        try:
            result = quantize_sr(model, calibration, evaluation, work / f"{name}.int8.onnx", size=64, max_drop_db=0.3, dynamic_hw=True)
            row = {"model": name, **{k: result[k] for k in ("fp32_psnr", "int8_psnr", "drop_db", "method", "accepted", "images", "sizes")}, "fps": {}}
            for size in sizes:
                label, shape = INPUTS[size]
                fp32 = measure(result["fp32_path"], shape, runtime="ort", time_budget_s=budget)
                quantized = measure(result["path"], shape, runtime="ort", time_budget_s=budget)
                row["fps"][label] = {"fp32": 1e3 / fp32.median_ms, "int8": 1e3 / quantized.median_ms,
                                     "flags": sorted({f for r in (fp32, quantized) for f, on in (("noisy", r.noisy), ("contended", r.contended)) if on})}
            rows.append(row)
        except Exception as error:  # report, keep the rest
            rows.append({"model": name, "error": f"{type(error).__name__}: {error}"[:200]})
        print(rows[-1], flush=True)
    return rows


def latency_table(rows) -> list[str]:
    """Markdown lines of the fp32 latency section (rows from :func:`latency`)."""
    if not rows:
        return []
    lines = ["", "## fp32 latency at x4, batch 1 (deploy form)", "", "| model | output | runtime | median ms | fps | flags |", "|---|---|---|---:|---:|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['input']} | {row['runtime']} | - | - | {row['error']} |")
        else:
            flags = ", ".join(f for f in ("noisy" if row["noisy"] else "", "contended" if row["contended"] else "") if f)
            lines.append(f"| {row['model']} | {row['input']} | {row['runtime']} | {row['median_ms']:.1f} | {row['fps']:.2f} | {flags} |")
    return lines


def int8_table(rows) -> list[str]:
    """Markdown lines of the INT8 section (rows from :func:`int8`): accuracy, then fp32 vs INT8 fps per input."""
    if not rows:
        return []
    lines = ["", "## INT8 (ONNX Runtime static QDQ, one dynamic-size graph per model, calibrated on bundled-JPEG 64x64 LR crops), x4, budget 0.3 dB", "",
             "PSNR drop measured on 64x64 LR crops of the bundled PNGs (the judged size), a 48x80 crop and the whole images; "
             "fps of the fp32 and INT8 ONNX graphs at batch 1.", "",
             "| model | fp32 PSNR | INT8 PSNR | drop dB (64 / 48x80 / whole) | calibration | within budget |", "|---|---:|---:|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['error']} | | | | |")
            continue
        drops = " / ".join(f"{d:.3f}" for d in [row["drop_db"], *(r["drop_db"] for r in row.get("sizes", []))])
        lines.append(f"| {row['model']} | {row['fp32_psnr']:.2f} | {row['int8_psnr']:.2f} | {drops} | {row['method']} | {'yes' if row['accepted'] else 'no'} |")
    timed = [row for row in rows if row.get("fps")]
    if timed:
        lines += ["", "| model | output | fp32 fps | INT8 fps | INT8 speed-up | flags |", "|---|---|---:|---:|---:|---|"]
        for row in timed:
            for label, fps in row["fps"].items():
                lines.append(f"| {row['model']} | {label} | {fps['fp32']:.2f} | {fps['int8']:.2f} | {fps['int8'] / fps['fp32']:.2f}x | {', '.join(fps['flags'])} |")
    return lines


def markdown_lines(count_rows, accuracy_rows, latency_rows, int8_rows, *, quick: bool, batch_size: int, val_size: int) -> list[str]:
    """sr.md's lines after its title and machine line (also read by bench_sr_depth.py for the issue's summary)."""
    lines = [
        "## Parameters and mult-adds (1280x720 SR output, the CARN paper's convention)", "",
        *([f"{', '.join(r['model'] for r in count_rows if r['model'] in COUNTED_ONLY)}: counted beside the DRN release's README (params in M "
           "there), not trained or timed here.", ""] if any(r["model"] in COUNTED_ONLY for r in count_rows) else []),
        "| model | params | deploy params | paper params | GMACs x2 | x3 | x4 | paper x2 / x3 / x4 |", "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in count_rows:
        paper = {**PAPER, **COUNTED_ONLY}.get(row["model"], {})
        g = {int(k): v for k, v in row["gmacs_720p"].items()}  # int keys, also when read back from sr.json
        cell = lambda s: f"{g[s]:.1f}" if s in g else "-"  # noqa: E731
        paper_g = " / ".join(f"{paper['gmacs'][s]:.1f}" for s in (2, 3, 4) if s in paper.get("gmacs", {})) or "-"
        lines.append(f"| {row['model']} | {row['params'] / 1e3:.1f}K | {row['deploy_params'] / 1e3:.1f}K | "
                     f"{str(paper['params_k']) + 'K' if paper.get('params_k') else '-'} | {cell(2)} | {cell(3)} | {cell(4)} | {paper_g} |")
    if accuracy_rows:
        r0 = accuracy_rows[0]
        lines += ["", f"## PSNR / SSIM on the bundled PNG photos (x{r0['scale']}, {r0['images']} images, HR centre crops of {val_size} px; "
                  f"{r0['metric']}) after {r0['steps']} training steps (batch {batch_size}, 24-px LR patches, L1, Adam 1e-3) on the bundled JPEGs", "",
                  "| model | PSNR | SSIM | bicubic PSNR | bicubic SSIM | PSNR gain dB | train s |", "|---|---:|---:|---:|---:|---:|---:|"]
        for row in accuracy_rows:
            lines.append(f"| {row['model']} | {row['psnr']:.2f} | {row['ssim']:.4f} | {row['bicubic_psnr']:.2f} | {row['bicubic_ssim']:.4f} | "
                         f"{row['psnr'] - row['bicubic_psnr']:+.2f} | {row['train_seconds']:.0f} |")
        reused = [row["model"] for row in accuracy_rows if row.get("reused")]
        if reused:
            lines += ["", f"Trained weights of {', '.join(reused)} reused from an earlier run of this benchmark (`--work`, same steps, batch and seed; "
                          "train s is that run's): only their evaluation ran now."]
    lines += latency_table(latency_rows) + int8_table(int8_rows)
    if quick:
        lines += ["", "_Quick mode: a smoke run (tiny budget, busy machine); timings and accuracy here are not results._"]
    return lines


def write_markdown(path: Path, count_rows, accuracy_rows, latency_rows, args, int8_rows=()) -> None:
    from edgevision.atomic import atomic_write_text
    from edgevision.machine import machine_info

    machine = machine_info()
    lines = [
        "# Super-resolution (issue 18)", "",
        f"Machine: {machine.short}; {machine.logical_cpus} logical CPUs; fingerprint `{machine.fingerprint}`. "
        f"Generated by `benchmarks/bench_sr.py{' --quick' if args.quick else ' --fast' if args.fast else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
        *markdown_lines(count_rows, accuracy_rows, latency_rows, int8_rows, quick=args.quick, batch_size=args.batch_size, val_size=args.val_size),
    ]
    atomic_write_text(path, "\n".join(lines) + "\n")


#: --fast: the same models, inputs and timings as the full run on a quarter of its training steps (~50-60 min idle instead of ~1.5-2.5 h)
FAST_STEPS = 500


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: carn_m only, 5 steps of batch 4, 96-px crops, 1 s timing of the 256x256 case")
    parser.add_argument("--fast", action="store_true", help=f"full-size run on {FAST_STEPS} training steps a model (every model, input and timing as the full run)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--val-size", type=int, default=256)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timing per model, input and runtime")
    parser.add_argument("--runtimes", default="ort,eager")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_sr", help="trained models kept here: a rerun after a kill reuses them")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/sr.md"))
    args = parser.parse_args(argv)
    names = list(PAPER)
    timed = names
    sizes = ("256", "256in", "720p")
    if args.fast:
        args.steps = FAST_STEPS
    if args.quick:
        args.steps, args.val_size, args.budget, args.batch_size = 5, 96, 1.0, 4
        timed = accuracy_names = ["carn_m"]
        sizes = ("256",)
    else:
        accuracy_names = names
    started = time.perf_counter()
    count_rows = counts(names + ([] if args.quick else list(COUNTED_ONLY)))
    accuracy_rows = accuracy(accuracy_names, args.scale, args.steps, args.val_size, args.seed, args.batch_size, work=None if args.quick else args.work)
    latency_rows = latency(timed, args.budget, args.runtimes.split(",") if not args.quick else ["ort"], sizes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        int8_rows = int8(timed, args.scale, args.budget, Path(work), sizes)
    write_markdown(out, count_rows, accuracy_rows, latency_rows, args, int8_rows)
    from edgevision.atomic import atomic_write_text

    report = {"quick": args.quick, "steps": args.steps, "batch_size": args.batch_size, "scale": args.scale, "val_size": args.val_size,
              "wall_seconds": time.perf_counter() - started, "counts": count_rows, "accuracy": accuracy_rows, "latency": latency_rows, "int8": int8_rows}
    atomic_write_text(out.with_suffix(".json"), json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
