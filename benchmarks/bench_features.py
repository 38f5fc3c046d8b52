"""Benchmark of dense backbones (issue 12, part 4): what output_stride 16 / 8 costs.

For a few zoo backbones (``features_only=True``, deploy form) at 512x512, the parameter count,
MACs and ONNX Runtime latency at output_stride 32, 16 and 8 (DeepLabv3 runs at 16 or 8, LR-ASPP at
16). Parameters are equal by construction (dilation changes no weight); MACs grow with the
larger late maps. Rows go to benchmarks/results/features.jsonl as they are measured (a killed run
resumes where it stopped) and the table to benchmarks/results/features.md. Two passes over all
networks (round robin, not one network twice in a row) give the run-to-run repeatability that the
report states next to the latencies.

    python benchmarks/bench_features.py            # full: 6 models x 3 output strides x 2 passes, ~8 min on 2 cores
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


def _row(name: str, output_stride: int, size: int, threads: int, budget: float, pass_index: int) -> dict:
    model = ev.create_model(name, features_only=True, output_stride=output_stride).eval()
    result = ev.measure(model, (3, size, size), runtime="ort", threads=threads, deploy=True, time_budget_s=budget)
    return {
        "pass": pass_index,
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
    parser.add_argument("--passes", type=int, default=2, help="passes over all networks (>= 2 reports repeatability)")
    args = parser.parse_args(argv)
    models, size, budget = (MODELS[:1], 128, 2.0) if args.quick else (MODELS, 512, 20.0)
    stem = "features_quick" if args.quick else "features"
    rows_path = RESULTS / f"{stem}.jsonl"
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
    done = {(r.get("pass", 0), r["model"], r["output_stride"], r["input"]) for r in rows}
    for pass_index in range(args.passes):
        for name in models:
            for output_stride in OUTPUT_STRIDES:
                if (pass_index, name, output_stride, size) in done:
                    continue
                rows.append(_row(name, output_stride, size, args.threads, budget, pass_index))
                atomic_write_text(rows_path, "".join(json.dumps(r) + "\n" for r in rows))  # resumable after kill -9
                print(
                    f"pass {pass_index} {name} OS{output_stride}: {rows[-1]['median_ms']:.2f} ms, "
                    f"{rows[-1]['macs'] / 1e9:.2f} GMACs",
                    flush=True,
                )
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
    by_pass: dict[int, dict[tuple, dict]] = {}
    for r in rows:
        if r["input"] == size:
            by_pass.setdefault(r.get("pass", 0), {})[(r["model"], r["output_stride"])] = r
    for r in by_pass.get(0, {}).values():
        noisy = " (noisy)" if r["noisy"] else ""
        lines.append(
            f"| {r['model']} | {r['output_stride']} | {r['params'] / 1e6:.2f}M | {r['macs'] / 1e9:.2f} | "
            f"{r['median_ms']:.2f} ({r['ci_low_ms']:.2f}-{r['ci_high_ms']:.2f}){noisy} | {r['channels']} |"
        )
    lines += _repeatability(by_pass)
    atomic_write_text(RESULTS / f"{stem}.md", "\n".join(lines) + "\n")
    return 0


def _repeatability(by_pass: dict[int, dict[tuple, dict]]) -> list[str]:
    """Pass 1 / pass 0 latency per network: the machine's run-to-run repeatability for this table."""
    if 1 not in by_pass:
        return ["", "One pass only: no repeatability figure (run with --passes 2)."]
    ratios = {key: by_pass[1][key]["median_ms"] / row["median_ms"] for key, row in by_pass[0].items() if key in by_pass[1]}
    deviations = sorted(abs(r - 1) for r in ratios.values())
    within = sum(d <= 0.05 for d in deviations)
    lines = [
        "",
        "## Repeatability (same networks, second pass after all the others)",
        "",
        f"{within}/{len(ratios)} within ±5%; median |pass 1 / pass 0 − 1| = {100 * deviations[len(deviations) // 2]:.1f}%, "
        f"largest {100 * deviations[-1]:.1f}%. Each row's 95% CI is from one pass only and does not include this drift.",
        "",
        "| model | output stride | pass 0 ms | pass 1 ms | pass 1 / pass 0 |",
        "|---|---|---|---|---|",
    ]
    for (model, stride), ratio in ratios.items():
        lines.append(
            f"| {model} | {stride} | {by_pass[0][(model, stride)]['median_ms']:.2f} | "
            f"{by_pass[1][(model, stride)]['median_ms']:.2f} | {ratio:.2f} |"
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
