"""Benchmark of dense backbones (issue 12, part 4): what output_stride 16 / 8 costs.

For a few zoo backbones (``features_only=True``, deploy form) at 512x512, the parameter count,
MACs and ONNX Runtime latency at output_stride 32, 16 and 8 (DeepLabv3 runs at 16 or 8, LR-ASPP at
16). Parameters are equal by construction (dilation changes no weight); MACs grow with the
larger late maps. Rows go to benchmarks/results/features.jsonl as they are measured (a killed run
resumes where it stopped) and the table to benchmarks/results/features.md.

    python benchmarks/bench_features.py            # full: 6 models x 3 output strides, ~15 min on 2 cores
    python benchmarks/bench_features.py --quick    # 1 model at 128 px, seconds (checks the script end to end)
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

import edgevision as ev
from edgevision.atomic import atomic_write_text
from edgevision.machine import machine_info

RESULTS = Path(__file__).parent / "results"
MODELS = ("mobilenetv3_large_100", "mobilenetv2_100", "shufflenet_v2_x1_0", "ghostnet_100", "repvgg_a0", "resnet50")
OUTPUT_STRIDES = (32, 16, 8)


def _row(name: str, output_stride: int, size: int, threads: int, budget: float) -> dict:
    model = ev.create_model(name, features_only=True, output_stride=output_stride).eval()
    result = ev.measure(model, (3, size, size), runtime="ort", threads=threads, deploy=True, time_budget_s=budget)
    return {
        "model": name,
        "output_stride": output_stride,
        "input": size,
        "params": ev.count_params(model),
        "macs": ev.count_macs(model, size),
        "channels": model.feature_info.channels(),
        "median_ms": result.median_ms,
        "ci_low_ms": result.ci_low_ms,
        "ci_high_ms": result.ci_high_ms,
        "noisy": result.noisy,
        "threads": threads,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model at 128 px with a short time budget")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    models, size, budget = (MODELS[:1], 128, 2.0) if args.quick else (MODELS, 512, 20.0)
    stem = "features_quick" if args.quick else "features"
    rows_path = RESULTS / f"{stem}.jsonl"
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
    done = {(r["model"], r["output_stride"], r["input"]) for r in rows}
    for name in models:
        for output_stride in OUTPUT_STRIDES:
            if (name, output_stride, size) in done:
                continue
            rows.append(_row(name, output_stride, size, args.threads, budget))
            atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in rows))  # resumable after kill -9
            print(f"{name} OS{output_stride}: {rows[-1]['median_ms']:.2f} ms, {rows[-1]['macs'] / 1e9:.2f} GMACs", flush=True)
    machine = machine_info()
    lines = [
        f"# Dense backbones: the cost of output_stride ({datetime.date.today()})",
        "",
        f"`python benchmarks/bench_features.py{' --quick' if args.quick else ''}`; features_only backbones, deploy form, "
        f"ONNX Runtime, {args.threads} threads, batch 1, {size}x{size}. Machine: {machine.cpu_model} ({machine.fingerprint}), torch {torch.__version__}.",
        "",
        "| model | output stride | params | GMACs | latency ms (95% CI) | level channels |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["input"] != size:
            continue
        noisy = " (noisy)" if r["noisy"] else ""
        lines.append(
            f"| {r['model']} | {r['output_stride']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.2f} | "
            f"{r['median_ms']:.2f} ({r['ci_low_ms']:.2f}-{r['ci_high_ms']:.2f}){noisy} | {r['channels']} |"
        )
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
