"""Are the latency predictor's 80% intervals calibrated? Nominal vs empirical coverage on the STORED tables (issue 13).

No timing: reads ``benchmarks/results/lut/<runtime>/`` (lut.sqlite, networks.jsonl, validation.json)
as `make bench-lut` left them, and for each runtime reports

1. the block regressor's 80% interval, 5-fold cross-validated over every table entry (each entry
   predicted by a regressor fitted and calibrated on the other folds; folds by key hash as in
   ``lut validate``), for each calibration: ``none`` (the raw 10th/90th percentile trees), ``split``
   (conformalized quantile regression, scores on one 25% split) and ``cross`` (scores out of fold
   over every row, the default);
2. the corrected sum's ± uncertainty on the 100 unseen test networks, both measurement passes: as
   stored (1.28 x the correction's in-sample residual σ) and recomputed by ``lut validate
   --no-measure`` (conformal quantile of the correction's leave-one-out errors).

    python benchmarks/lut_calibration.py            # both runtimes, ~5 min on 2 idle cores
    python benchmarks/lut_calibration.py --quick    # one runtime, the none/split rows only
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def _row(label: str, coverage: dict, extra: str = "") -> str:
    low, high = coverage["ci95_pct"]
    return f"| {label} | {coverage['nominal_pct']:.0f}% | {coverage['empirical_pct']:.1f}% | {low:.0f}-{high:.0f}% | {coverage['count']} | {extra} |"


def stored_network_coverage(validation: dict) -> dict[str, dict]:
    """Coverage of the stored corrected sum ± uncertainty (the interval as it was when the table was validated)."""
    from edgevision.lut.validate import coverage_summary

    rows = validation["rows"]
    out = {"pass_1": coverage_summary([abs(r["corrected_ms"] - r["measured_ms"]) <= r["uncertainty_ms"] for r in rows])}
    if all(r.get("measured_2_ms") for r in rows):
        out["pass_2"] = coverage_summary([abs(r["corrected_ms"] - r["measured_2_ms"]) <= r["uncertainty_ms"] for r in rows])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtimes", nargs="+", default=["ort", "eager"])
    parser.add_argument("--results", default=str(RESULTS / "lut"), help="folder with <runtime>/lut.sqlite, networks.jsonl, validation.json")
    parser.add_argument("--out", default=str(RESULTS / "lut-calibration.md"))
    parser.add_argument("--quick", action="store_true", help="first runtime only, no cross calibration and no revalidation (a smoke test)")
    args = parser.parse_args(argv)

    from edgevision.atomic import atomic_write_text
    from edgevision.lut import LatencyTable, MeasurementSetting, get_space, validate
    from edgevision.lut.validate import _holdout_check

    runtimes = args.runtimes[:1] if args.quick else args.runtimes
    calibrations = ("none", "split") if args.quick else ("none", "split", "cross")
    started = time.perf_counter()
    lines = [
        "# Latency predictor intervals: nominal vs empirical coverage (issue 13)",
        "",
        "From the stored `make bench-lut` results (benchmarks/results/lut/<runtime>/), no timing. Block rows: 5-fold "
        "cross-validation over every table entry (folds by key hash); each entry's 80% interval comes from a regressor "
        "fitted and calibrated on the other four folds. Network rows: the corrected sum ± its uncertainty on the 100 "
        "unseen test networks of `lut validate`, against both measurement passes.",
        "",
    ]
    for runtime in runtimes:
        source = Path(args.results) / runtime
        validation = json.loads((source / "validation.json").read_text())
        setting = MeasurementSetting(**validation["setting"])
        lines += [f"## {runtime}", "", "| interval | nominal | empirical | 95% CI | over | notes |", "|---|---:|---:|---|---:|---|"]
        with tempfile.TemporaryDirectory(prefix="edgevision-lut-calibration-") as scratch:
            work = Path(scratch)  # a copy: validate writes predictor.json / validation.json beside the measurements
            for name in ("lut.sqlite", "networks.jsonl"):
                shutil.copy(source / name, work / name)
            with LatencyTable(work / "lut.sqlite") as table:
                for calibration in calibrations:
                    begin = time.perf_counter()
                    check = _holdout_check(table, setting, {"calibration": calibration})
                    label = {"none": "block regressor, raw quantile trees", "split": "block regressor, split-conformal (25%)",
                             "cross": "block regressor, cross-conformal (5-fold), default"}[calibration]  # fmt: skip
                    lines.append(_row(label, check["interval_coverage"], f"MAPE {check['mape_pct']:.1f}%, {time.perf_counter() - begin:.0f} s"))
                    print(f"{runtime} {calibration}: {check['interval_coverage']}", file=sys.stderr, flush=True)
            for name, coverage in stored_network_coverage(validation).items():
                lines.append(_row(f"network, as stored (1.28 x in-sample σ), {name.replace('_', ' ')}", coverage, validation.get("date", "")))
            if not args.quick:
                report = validate(
                    get_space(validation["space"]), work / "lut.sqlite", work, setting,
                    train=validation["train_networks"], test=validation["test_networks"], stored_only=True,
                )  # fmt: skip
                width = report.correction.get("relative_half_width_80")
                for name, coverage in report.network_interval.items():
                    lines.append(_row(f"network, leave-one-out conformal, {name.replace('_', ' ')}", coverage, f"half-width {width * 100:.1f}% of the prediction"))
                lines.append("")
                lines.append(f"Recomputed by `lut validate --no-measure`: corrected-sum MAPE {report.corrected_metrics.mape_pct:.2f}% "
                             f"(stored {validation['corrected_metrics']['mape_pct']:.2f}%; the same measurements and correction).")  # fmt: skip
        lines.append("")
    lines.append(f"Command: `python benchmarks/lut_calibration.py{' --quick' if args.quick else ''}` ({(time.perf_counter() - started) / 60:.1f} min).")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
