"""Benchmark: how well do block latency tables predict unseen networks on this machine? (issue 6)

For each runtime (ONNX Runtime and PyTorch eager, 2 threads, batch 1, deploy form): sample
``--train`` + ``--test`` networks from the "mobile" search space (128 x 128 input), build the
block table for all their blocks, measure every network end to end (test networks twice: the
run-to-run noise floor), fit the sum correction on the training networks and report, for the
unseen test networks, MAPE, RMSE, share within ±5%/±10%, Spearman ρ and Kendall τ of the pure sum
and of the corrected sum against the issue's targets. Writes ``benchmarks/results/lut.md`` and,
per runtime, ``benchmarks/results/lut/<runtime>/`` (lut.sqlite, networks.jsonl, validation.json,
predictor.json, scatter.png).

Resumable: blocks are committed to the SQLite table and networks appended to networks.jsonl as
they finish; a re-run skips them (``--fresh`` starts over). The defaults fit in about 25 minutes
for both runtimes on 2 idle cores. ``--quick`` is a smoke test (a few networks, tiny budgets,
written to a temporary directory unless ``--out`` is given).

    python benchmarks/bench_lut.py [--runtimes ort eager] [--train 50] [--test 100] [--quick] [--fresh]
"""

from __future__ import annotations

import argparse
import datetime
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtimes", nargs="+", default=["ort", "eager"], metavar="NAME", help="runtimes (default: ort eager)")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="intra-op threads (default 2)")
    parser.add_argument("--space", default="mobile", metavar="NAME", help="search space (default mobile, 128x128)")
    parser.add_argument("--train", type=int, default=50, metavar="N", help="networks to fit the correction on (default 50)")
    parser.add_argument("--test", type=int, default=100, metavar="N", help="unseen networks to validate on (default 100)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed (default 0)")
    parser.add_argument("--block-budget", type=float, default=0.8, metavar="S", help="seconds per block, warm-up included (default 0.8)")
    parser.add_argument("--network-budget", type=float, default=1.5, metavar="S", help="seconds per network measurement (default 1.5)")
    parser.add_argument("--out", default=None, metavar="DIR", help="results directory (default benchmarks/results; --quick: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 8 + 4 networks, tiny budgets")
    parser.add_argument("--fresh", action="store_true", help="delete earlier tables and network measurements first")
    parser.add_argument("--no-measure", action="store_true", help="recompute the report from the stored tables and networks.jsonl only (no timing)")
    args = parser.parse_args(argv)
    if args.quick:
        args.train, args.test, args.block_budget, args.network_budget = 8, 4, 0.2, 0.3
    return args


def main(argv: list[str] | None = None) -> int:
    from edgevision.atomic import atomic_write_text
    from edgevision.latency import available_runtimes
    from edgevision.lut import MeasurementSetting, get_space, validate
    from edgevision.lut.validate import NETWORK_PLAN
    from edgevision.machine import machine_info

    args = parse_args(argv)
    if args.no_measure and args.fresh:
        print("bench_lut: --no-measure recomputes from the stored measurements; --fresh would delete them", file=sys.stderr)
        return 2
    root = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="edgevision-lut-quick-")) if args.quick else RESULTS)
    missing = [name for name in args.runtimes if name not in available_runtimes()]
    if missing:
        print(f"bench_lut: runtimes not available here: {', '.join(missing)}", file=sys.stderr)
        return 2
    space = get_space(args.space)
    machine = machine_info()
    plan = replace(NETWORK_PLAN, time_budget_s=args.network_budget)
    sections, elapsed = [], {}
    started = time.perf_counter()
    for runtime in args.runtimes:
        out = root / "lut" / runtime
        if args.fresh and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        begin = time.perf_counter()
        print(f"== {runtime}: {args.train} training + {args.test} test networks from space {space.name!r} -> {out}", flush=True)
        report = validate(
            space,
            out / "lut.sqlite",
            out,
            MeasurementSetting(runtime=runtime, threads=args.threads),
            train=args.train,
            test=args.test,
            seed=args.seed,
            block_budget_s=args.block_budget,
            network_plan=plan,
            progress=lambda message: print(message, flush=True),
            stored_only=args.no_measure,
        )
        elapsed[runtime] = time.perf_counter() - begin
        print(report.to_markdown(), flush=True)
        sections.append(report.to_markdown() + f"\n![{runtime} predicted vs measured](lut/{runtime}/scatter.png)\n")

    command = "python benchmarks/bench_lut.py " + " ".join(argv if argv is not None else sys.argv[1:])
    timing = ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in elapsed.items())
    text = "\n".join(
        [
            "# Latency lookup tables: predicted vs measured on unseen networks",
            "",
            f"Generated by `{command.strip()}` on {datetime.date.today().isoformat()} (wall time: {timing}; "
            f"total {(time.perf_counter() - started) / 60:.1f} min). Written by benchmarks/bench_lut.py; see docs/lut.md.",
            "",
            f"Machine: {machine.short}, {machine.logical_cpus} logical CPUs, {machine.system}, Python {machine.python}, "
            f"torch {machine.torch}, fingerprint `{machine.fingerprint}`.",
            "",
            f"Search space `{space.name}` ({space.input_size}×{space.input_size} input, five stages, block kinds "
            f"{', '.join(space.stages[0].block_kinds)}); {args.train} training networks fit the sum correction, "
            f"{args.test} *other* networks (never used for fitting) are the test set. Every block of every network is in "
            f"the table (measured alone, deploy form, {args.block_budget:g} s budget); networks measured end to end "
            f"({args.network_budget:g} s budget, 95% CI of the median within 1% or the budget), the test networks twice in "
            f"two separate passes: pass 2 vs pass 1 is the machine's run-to-run noise.",
            "",
            "Targets (issue 6): ≥ 95% of unseen networks within ±10%, Spearman ρ ≥ 0.95, prediction MAPE ≤ 2 × the noise MAPE.",
            "",
            *sections,
        ]
    )
    atomic_write_text(root / ("lut.md"), text)
    print(f"wrote {root / 'lut.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
