"""Benchmark of the cost model (issue 3): how long analyze() takes, and the zoo's totals on this machine.

Writes benchmarks/results/analysis.md:
  1. resnet50 at 224x224: one eager forward vs one analyze() (warm), and their ratio (target <= 2x);
  2. every registered model, deploy form, 1x3x224x224: params, MACs, FLOPs, bytes moved, peak
     activation memory, roofline-bound time, the bound-limiting resource, and the time to analyze it.
Run with `make bench-analysis`.
"""

from __future__ import annotations

import datetime
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.benchmark import Timer

import edgevision as ev
from edgevision.atomic import atomic_write_text
from edgevision.machine import machine_info

RESULTS = Path(__file__).parent / "results" / "analysis.md"


def _median_seconds(function, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    threads = torch.get_num_threads()
    machine = machine_info()
    peaks = ev.device_peaks(threads=threads)
    lines = [
        "# Cost model benchmark (`make bench-analysis`)",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine.short}, fingerprint `{machine.fingerprint}`, {machine.system}",
        f"- software: Python {machine.python}, torch {machine.torch}, {threads} thread(s)",
        f"- roofline peaks (measured, `edgevision.device_peaks()`): {peaks.flops_per_second / 1e9:.1f} GFLOP/s fp32 GEMM, "
        f"{peaks.bytes_per_second / 1e9:.1f} GB/s copy bandwidth, ridge {peaks.ridge_intensity:.1f} FLOP/B",
        "- units: MACs = multiply-accumulates; FLOPs = 2 per MAC + bias adds + element-wise work; bytes = read + written per operator",
        "",
        "## analyze() speed: resnet50, 1x3x224x224",
        "",
    ]
    model = ev.create_model("resnet50").eval()
    example = torch.randn(1, 3, 224, 224)
    start = time.perf_counter()
    ev.analyze(model, (1, 3, 224, 224), peaks=peaks)
    first_call = time.perf_counter() - start
    with torch.no_grad():
        forward = Timer("model(x)", globals={"model": model, "x": example}, num_threads=threads).blocked_autorange(min_run_time=3).median
    analysis = _median_seconds(lambda: ev.analyze(model, (1, 3, 224, 224), peaks=peaks), repeats=7)
    lines += [
        "| measurement | seconds |",
        "|---|---:|",
        f"| one eager forward (median, torch.utils.benchmark) | {forward:.4f} |",
        f"| analyze() warm (median of 7) | {analysis:.4f} |",
        f"| analyze() first call in the process (one-time dispatch set-up) | {first_call:.4f} |",
        f"| **ratio analyze / forward (warm)** | **{analysis / forward:.2f}x** (target <= 2x) |",
        "",
        "## The zoo, deploy form, 1x3x224x224",
        "",
        "| model | params | MACs | FLOPs | bytes moved | peak act. mem | roofline bound | bound by | analyze s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    total_seconds = 0.0
    for name in ev.list_models():
        deployed = ev.reparameterize(ev.create_model(name))
        start = time.perf_counter()
        report = ev.analyze(deployed, (1, 3, 224, 224), peaks=peaks, name=name)
        seconds = time.perf_counter() - start
        total_seconds += seconds
        t = report.total
        lines.append(
            f"| {name} | {t.params / 1e6:.2f}M | {t.macs / 1e6:.1f}M | {t.flops / 1e6:.1f}M | {t.bytes / 1e6:.1f} MB "
            f"| {report.peak_activation_bytes / 1e6:.2f} MB | {t.bound_seconds * 1e3:.2f} ms | {t.bound_by} | {seconds:.2f} |"
        )
        print(f"{name}: {seconds:.2f} s", file=sys.stderr)
    lines += ["", f"Analyzing all {len(ev.list_models())} models took {total_seconds:.1f} s in total.", ""]
    atomic_write_text(RESULTS, "\n".join(lines))
    print(f"wrote {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
