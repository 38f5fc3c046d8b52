"""Benchmark: is the roofline a lower bound on every zoo model, and how repeatable are the measurements? (issue 13)

For every registered model (deploy form, batch 1, 3x224x224) on PyTorch eager and ONNX Runtime:

1. **Roofline guarantee.** The cache-aware, fused-kernel bound (``edgevision.analyze``: CARM peaks
   of ``device_peaks``, kernels as each runtime fuses them) against the measured median; a violation
   is bound > measured (a cost-model defect). The old flat model (every byte at DRAM bandwidth, per
   aten operator) is reported beside it. Tightness = median of measured / bound per runtime.
2. **Repeatability.** Every (model, runtime) is measured in ``--passes`` round-robin passes over the
   whole list (not one network at a time), with the machine watched (``latency.contention``: other
   processes' CPU, steal, the reference network before and after). Reported: the share of networks
   whose two passes agree within ±5% and the median |difference|, raw, normalised by the reference
   network (latency x quiet reference / reference at that measurement) and without contended
   measurements — which of these measurably helps on this machine.

Resumable: each finished measurement is appended to ``benchmarks/results/roofline.jsonl``; the
report ``benchmarks/results/roofline.md`` is rebuilt from it at the end.

    python benchmarks/bench_roofline.py                 # full: 81 models x {eager, ort} x 2 passes (~35 min idle)
    python benchmarks/bench_roofline.py --quick         # 4 small models, 1 s budgets, ~2 min (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _costs(name: str, peaks) -> dict:
    """Per-runtime fused-kernel bounds (CARM) and the flat per-operator DRAM bound, in ms."""
    from dataclasses import replace

    import edgevision as ev

    report = ev.analyze(ev.reparameterize(ev.create_model(name)), (1, 3, 224, 224), peaks=peaks)
    flat = replace(peaks, levels=())
    flat_ms = sum(flat.bound_seconds(o.call.flops, o.bytes)[0] for o in report.operators if not o.call.is_view) * 1e3
    return {
        "bound_ms": {runtime: report.runtime_bound_seconds(runtime) * 1e3 for runtime in ("eager", "ort")},
        "per_operator_ms": report.total.bound_seconds * 1e3,
        "flat_ms": flat_ms,
        "macs": report.total.macs,
    }


def _load(path: Path) -> list[dict]:
    """The rows of a resumable JSONL file; a line torn by kill -9 is moved aside (that row runs again)."""
    from edgevision.results import ResultStore

    return ResultStore(path, schema=None).rows


def _append(path: Path, row: dict) -> None:
    import os

    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _within(a: float, b: float, tolerance: float = 0.05) -> bool:
    return abs(a / b - 1) <= tolerance


def _repeatability(pairs: list[tuple[float, float]]) -> str:
    if not pairs:
        return "- | -"
    within = sum(_within(a, b) for a, b in pairs) / len(pairs)
    spread = statistics.median(abs(a / b - 1) for a, b in pairs)
    return f"{within:.0%} of {len(pairs)} | {spread:.1%}"


def row_reference_ms(row: dict) -> float | None:
    """The machine state of a stored measurement: the fastest reference time recorded around it (bench's and measure()'s)."""
    from edgevision.analysis.roofline import measurement_reference_ms

    load = row.get("machine_load") or {}
    return measurement_reference_ms(row.get("reference_ms"), load.get("reference_before_ms"), load.get("reference_after_ms"))


def bound_check(rows: list[dict], bound_ms: float, peaks, corrected: bool) -> tuple[bool, float, dict]:
    """(violated, measured/bound, the tightest row) of one model on one runtime over its stored measurements.

    ``corrected``: each row's bound is scaled to the machine state it was measured in
    (``DevicePeaks.bound_factor``); otherwise every row is held to the probe's bound.
    """
    def ratio(row: dict) -> float:
        factor = peaks.bound_factor(row_reference_ms(row)) if corrected else 1.0
        return row["median_ms"] / (bound_ms * factor)

    tightest = min(rows, key=ratio)
    return ratio(tightest) < 1.0, ratio(tightest), tightest


def write_report(rows: list[dict], costs: dict[str, dict], peaks, path: Path, args) -> None:
    from edgevision.atomic import atomic_write_text
    from edgevision.machine import machine_info

    machine = machine_info()
    by_key: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        by_key.setdefault((row["model"], row["runtime"]), []).append(row)
    quiet_reference = min((r["reference_ms"] for r in rows if r.get("reference_ms")), default=None)
    lines = [
        "# Roofline guarantee and measurement repeatability (issue 13)",
        "",
        f"Machine: {machine.short}, fingerprint {machine.fingerprint}; {args.threads} threads; input 1x3x224x224 float32, deploy form.",
        f"Peaks (`device_peaks`, highest sustained over a working-set sweep): {peaks.flops_per_second / 1e9:.0f} GFLOP/s fp32; "
        + ", ".join(f"{lv.name} {lv.bytes_per_second / 1e9:.0f} GB/s" + ("" if lv.name == "DRAM" else f" ({lv.capacity_bytes / 2**20:.1f} MiB)") for lv in peaks.levels)
        + ".",
        f"Protocol: {args.passes} round-robin pass(es) over every model and runtime, <= {args.budget:g} s per measurement, "
        f"machine watched (other processes' CPU, steal, reference network); contended measurements re-measured after waiting <= {args.quiet_wait:g} s.",
        f"Command: `python benchmarks/bench_roofline.py{' --quick' if args.quick else ''}`.",
        "",
        "## Is the bound a lower bound?",
        "",
        "Violation: bound > a measured median. CARM = cache-aware bound on the kernels each runtime fuses; flat = the "
        "previous model (every operator's bytes at DRAM bandwidth). Tightness = median over models of the smallest "
        "measured/bound. *Machine-state corrected*: each measurement's bound x min(1, reference network at measurement / "
        "at probe) (`DevicePeaks.bound_factor`; the machine ran the reference faster than while probing, so its peaks were "
        "higher by that ratio; a slower machine never raises the bound).",
        "",
    ]
    references = sorted(r for r in (row_reference_ms(row) for row in rows) if r)
    if peaks.reference_ms is None:
        lines.append("The peaks record no reference time (probed before carm-v5): the corrected columns are n/a; re-probe with `--reprobe 1`.")
    else:
        samples = ", ".join(f"{v:.3f}" for v in peaks.reference_samples_ms) or "-"
        lines.append(f"Reference network at probe: {peaks.reference_ms:.3f} ms (samples {samples} ms).")
    if references:
        lines.append(f"Reference network at the measurements: {references[0]:.3f}-{references[-1]:.3f} ms (median {statistics.median(references):.3f}) over {len(references)}.")
    lines += [
        "",
        "| runtime | models | CARM violations | CARM tightness | corrected violations | corrected tightness | flat violations | flat tightness |",
        "|---|---|---|---|---|---|---|---|",
    ]
    detail = []
    has_reference = peaks.reference_ms is not None
    for runtime in args.runtimes:
        models = sorted(m for (m, rt) in by_key if rt == runtime and m in costs)
        checks = {
            kind: {m: bound_check(by_key[(m, runtime)], costs[m][key] if key == "flat_ms" else costs[m]["bound_ms"][runtime], peaks, corrected)
                   for m in models}
            for kind, key, corrected in (("carm", "bound_ms", False), ("corrected", "bound_ms", True), ("flat", "flat_ms", False))
        }  # fmt: skip

        def summary(kind: str, names: bool = True) -> str:
            bad = [m for m in models if checks[kind][m][0]]
            tight = statistics.median(checks[kind][m][1] for m in models) if models else float("nan")
            return f"{len(bad)} {', '.join(bad) if names else ''} | {tight:.2f}x"

        corrected_cells = summary("corrected") if has_reference else "n/a | n/a"
        lines.append(f"| {runtime} | {len(models)} | {summary('carm')} | {corrected_cells} | {summary('flat', names=False)} |")
        for model in models:
            _, ratio, fastest = checks["carm"][model]
            bound = costs[model]["bound_ms"][runtime]
            measured = fastest["median_ms"]
            reference = row_reference_ms(fastest)
            factor = peaks.bound_factor(reference)
            corrected = f"{bound * factor:.3f} | {measured / (bound * factor):.2f}x" if has_reference else "- | -"
            detail.append(
                f"| {model} | {runtime} | {measured:.2f} | {'-' if reference is None else f'{reference:.3f}'} | {bound:.3f} | {ratio:.2f}x | "
                f"{corrected} | {costs[model]['flat_ms']:.3f} |"
            )
    lines += ["", "## Repeatability: the same network in two passes", ""]
    lines += [
        "Share of (model, runtime) whose first two passes agree within ±5%, and the median |difference|.",
        "",
        "| runtime | raw: within ±5% | raw: median diff | reference-normalised: within ±5% | median diff | quiet only: within ±5% | median diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for runtime in args.runtimes:
        raw, normalised, quiet = [], [], []
        for (model, rt), rs in by_key.items():
            if rt != runtime or len(rs) < 2:
                continue
            first, second = sorted(rs, key=lambda r: r["pass"])[:2]
            raw.append((first["median_ms"], second["median_ms"]))
            if first.get("reference_ms") and second.get("reference_ms") and quiet_reference:
                scale = lambda r: r["median_ms"] * quiet_reference / r["reference_ms"]  # noqa: E731
                normalised.append((scale(first), scale(second)))
            if not first["contended"] and not second["contended"]:
                quiet.append((first["median_ms"], second["median_ms"]))
        lines.append(f"| {runtime} | {_repeatability(raw)} | {_repeatability(normalised)} | {_repeatability(quiet)} |")
    contended = sum(r["contended"] for r in rows)
    lines += ["", f"{contended} of {len(rows)} measurements were contended (after re-measuring)."]
    lines += [
        "",
        "## Every model",
        "",
        "| model | runtime | measured ms (fastest pass) | reference ms beside it | CARM bound ms | measured/bound | corrected bound ms | measured/corrected | flat bound ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += detail
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 small models, 1 s budgets, no waiting: a smoke test")
    parser.add_argument("--models", nargs="+", default=None, metavar="PATTERN")
    parser.add_argument("--runtimes", nargs="+", default=["eager", "ort"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement (default 2)")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="seconds to wait for a quiet machine before re-measuring")
    parser.add_argument("--out", default=None, help="report path (default benchmarks/results/roofline[-quick].md)")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier measurements in the JSONL")
    parser.add_argument("--peaks", default=None, metavar="JSON", help="DevicePeaks JSON to use instead of device_peaks() (e.g. a stored probe)")
    parser.add_argument("--no-measure", action="store_true", help="rebuild the report from the JSONL's measurements only (no timing)")
    parser.add_argument(
        "--reprobe", type=int, default=0, metavar="N",
        help="probe the peaks N more times (device_peaks(refresh=True); each keeps the higher rate in a common machine state, ~1 min each idle)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    import torch

    import edgevision as ev
    from edgevision.latency import MeasurementError
    from edgevision.latency.contention import reference_ms

    import os

    os.environ.setdefault("EDGEVISION_QUIET_WAIT_TOTAL_S", "1800")  # the full run may wait up to 30 min in all for quiet
    if args.quick:
        args.models = args.models or ["shufflenet_v2_x0_5", "mobilenetv2_050", "mobileone_s0", "ghostnet_050"]
        args.budget, args.quiet_wait = min(args.budget, 1.0), 0.0
    names = ev.list_models(args.models) if args.models else ev.list_models()
    stem = "roofline-quick" if args.quick else "roofline"
    jsonl, report = RESULTS / f"{stem}.jsonl", Path(args.out) if args.out else RESULTS / f"{stem}.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.fresh and jsonl.exists():
        jsonl.unlink()
    fingerprint = ev.machine.machine_info().fingerprint
    rows = [r for r in _load(jsonl) if r["fingerprint"] == fingerprint and r["threads"] == args.threads]
    torch.set_num_threads(args.threads)
    if args.peaks:
        from edgevision.analysis import DevicePeaks

        peaks = DevicePeaks.from_dict(json.loads(Path(args.peaks).read_text()))
    else:
        peaks = ev.device_peaks(threads=args.threads)
        for _ in range(args.reprobe):
            peaks = ev.device_peaks(threads=args.threads, refresh=True)
        print(f"peaks: {peaks.flops_per_second / 1e9:.0f} GFLOP/s ({peaks.flops_probe}), reference at probe {peaks.reference_ms} ms", file=sys.stderr)
    costs: dict[str, dict] = {}
    for name in names:
        costs[name] = _costs(name, peaks)
    done = {(r["model"], r["runtime"], r["pass"]) for r in rows}
    for pass_index in range(0 if args.no_measure else args.passes):  # round robin: every network once per pass
        for name in names:
            for runtime in args.runtimes:
                if (name, runtime, pass_index) in done:
                    continue
                try:
                    reference = reference_ms(args.threads)
                    result = ev.measure(
                        name, (1, 3, 224, 224), runtime=runtime, threads=args.threads, deploy=True,
                        time_budget_s=args.budget, quiet_wait_s=args.quiet_wait,
                    )  # fmt: skip
                except MeasurementError as error:
                    print(f"failed: {name} on {runtime}: {error}", file=sys.stderr)
                    continue
                row = {
                    "model": name, "runtime": runtime, "pass": pass_index, "threads": args.threads, "fingerprint": fingerprint,
                    "median_ms": result.median_ms, "noisy": result.noisy, "contended": result.contended,
                    "remeasured": result.remeasured, "reference_ms": reference, "machine_load": result.machine_load,
                }  # fmt: skip
                _append(jsonl, row)
                rows.append(row)
                bound = costs[name]["bound_ms"][runtime] * peaks.bound_factor(row_reference_ms(row))  # in this measurement's machine state
                flag = " VIOLATION" if bound > result.median_ms else ""
                print(f"pass {pass_index} {name:28s} {runtime:6s} {result.median_ms:8.2f} ms  bound {bound:7.3f} ms{flag}{' contended' if result.contended else ''}", file=sys.stderr)
    write_report(rows, costs, peaks, report, args)
    print(f"wrote {report}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
