"""Are the latency predictor's 80% intervals calibrated? Nominal vs empirical coverage on the STORED tables (issue 13).

No timing: reads ``benchmarks/results/lut/<runtime>/`` (lut.sqlite, networks.jsonl, validation.json)
as `make bench-lut` left them, and for each runtime reports

1. the corrected sum's ± uncertainty on the unseen test networks, both measurement passes: as stored
   (1.28 x the correction's in-sample residual σ) and as ``lut validate`` computes it now (conformal
   quantile of the correction's leave-one-out errors on the same training networks);
2. the block regressor's 80% interval, 5-fold cross-validated over every table entry (each entry
   predicted by a regressor fitted and calibrated on the other folds; folds by key hash as in
   ``lut validate``), per calibration: ``split`` (one 25% calibration split, the default), ``none``
   (the raw 10th/90th percentile trees) and ``cross`` (scores out of fold over every row).

Resumable: every finished figure is kept in ``lut-calibration.json`` beside the report and not
recomputed (the block rows fit 15-90 boosted-tree models each: minutes on 2 cores).

    python benchmarks/lut_calibration.py                       # both runtimes, every row (resumable; est. ~10 min on 2 idle cores)
    python benchmarks/lut_calibration.py --calibrations split  # the default calibration only
    python benchmarks/lut_calibration.py --quick               # one runtime, network rows only (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
LABELS = {
    "split": "block regressor, split-conformal (25%), the default",
    "none": "block regressor, raw quantile trees",
    "cross": "block regressor, cross-conformal (5-fold)",
}


def _row(label: str, coverage: dict, extra: str = "") -> str:
    low, high = coverage["ci95_pct"]
    return f"| {label} | {coverage['nominal_pct']:.0f}% | {coverage['empirical_pct']:.1f}% | {low:.0f}-{high:.0f}% | {coverage['count']} | {extra} |"


def network_coverage(source: Path, validation: dict) -> dict:
    """Stored and recomputed coverage of the corrected sum ± uncertainty on the test networks (table sums only: no regressor needed)."""
    from edgevision.lut import LatencyPredictor, LatencyTable, MeasurementSetting, get_space
    from edgevision.lut.validate import coverage_summary
    from edgevision.resolve import resolve

    rows = validation["rows"]
    measured = {}
    for line in (source / "networks.jsonl").read_text().splitlines():
        row = json.loads(line)
        measured[(row["network"], row["run"])] = row["median_ms"]
    setting = MeasurementSetting(**validation["setting"])
    train_count, test_count = validation["train_networks"], validation["test_networks"]
    networks = [resolve(spec) for spec in get_space(validation["space"]).sample_many(train_count + test_count, 0)]
    train, test = networks[:train_count], networks[train_count:]
    if [n.spec.name for n in test] != [r["network"] for r in rows]:
        raise SystemExit(f"{source}: the search space no longer samples the stored networks; rerun make bench-lut")
    with LatencyTable(source / "lut.sqlite") as table:
        predictor = LatencyPredictor(table, setting)
        correction = predictor.fit_correction(train, [measured[(n.spec.name, 1)] for n in train])
        predictions = [predictor.predict(n) for n in test]
    out = {"relative_half_width_80": correction.relative_half_width_80, "gaussian_relative_half_width": 1.2815515655446004 * correction.relative_residual_std}
    for run in (1, 2):
        if all((r["network"], run) in measured for r in rows):
            stored = [abs(r["corrected_ms"] - measured[(r["network"], run)]) <= r["uncertainty_ms"] for r in rows]
            now = [abs(p.latency_ms - measured[(p.network, run)]) <= p.uncertainty_ms for p in predictions]
            out[f"stored_pass_{run}"], out[f"conformal_pass_{run}"] = coverage_summary(stored), coverage_summary(now)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtimes", nargs="+", default=["ort", "eager"])
    parser.add_argument("--calibrations", nargs="+", default=["split", "none", "cross"], choices=sorted(LABELS))
    parser.add_argument("--results", default=str(RESULTS / "lut"), help="folder with <runtime>/lut.sqlite, networks.jsonl, validation.json")
    parser.add_argument("--out", default=str(RESULTS / "lut-calibration.md"))
    parser.add_argument("--quick", action="store_true", help="first runtime, network rows only (a smoke test, seconds)")
    args = parser.parse_args(argv)

    from edgevision.atomic import atomic_write_text
    from edgevision.lut import LatencyTable, MeasurementSetting
    from edgevision.lut.validate import _holdout_check

    runtimes = args.runtimes[:1] if args.quick else args.runtimes
    calibrations = [] if args.quick else args.calibrations
    store = Path(args.out).with_suffix(".json")
    done = json.loads(store.read_text()) if store.exists() else {}

    def keep(key: str, value: dict) -> None:
        done[key] = value
        atomic_write_text(store, json.dumps(done, indent=1) + "\n")

    validations = {rt: json.loads((Path(args.results) / rt / "validation.json").read_text()) for rt in runtimes}
    for runtime in runtimes:  # the cheap rows first, then the block rows runtime by runtime
        if f"{runtime}/networks" not in done:
            keep(f"{runtime}/networks", network_coverage(Path(args.results) / runtime, validations[runtime]))
    for calibration in calibrations:
        for runtime in runtimes:
            key = f"{runtime}/blocks/{calibration}"
            if key in done:
                continue
            begin = time.perf_counter()
            with LatencyTable(Path(args.results) / runtime / "lut.sqlite") as table:
                check = _holdout_check(table, MeasurementSetting(**validations[runtime]["setting"]), {"calibration": calibration})
            keep(key, {**check, "seconds": time.perf_counter() - begin})
            print(f"{key}: {check['interval_coverage']}", file=sys.stderr, flush=True)

    lines = [
        "# Latency predictor intervals: nominal vs empirical coverage (issue 13)",
        "",
        "From the stored `make bench-lut` results (benchmarks/results/lut/<runtime>/, as the last run left them), no timing. "
        "Network rows: the corrected sum ± its uncertainty on the 100 unseen test networks, against both measurement "
        "passes, as stored and as `lut validate` now computes the interval (same networks, same correction). Block rows: "
        "5-fold cross-validation over every table entry (folds by key hash, as `lut validate`); each entry's 80% "
        "interval comes from a regressor fitted and calibrated on the other four folds.",
        "",
    ]
    for runtime in runtimes:
        lines += [f"## {runtime}", "", "| interval | nominal | empirical | 95% CI | over | notes |", "|---|---:|---:|---|---:|---|"]
        networks = done[f"{runtime}/networks"]
        for run in (1, 2):
            if f"stored_pass_{run}" in networks:
                lines.append(_row(f"network, as stored (1.28 x in-sample σ), pass {run}", networks[f"stored_pass_{run}"],
                                  f"half-width {networks['gaussian_relative_half_width'] * 100:.1f}% of the prediction"))  # fmt: skip
                lines.append(_row(f"network, leave-one-out conformal, pass {run}", networks[f"conformal_pass_{run}"],
                                  f"half-width {networks['relative_half_width_80'] * 100:.1f}% of the prediction"))  # fmt: skip
        for calibration in args.calibrations:
            check = done.get(f"{runtime}/blocks/{calibration}")
            if check:
                lines.append(_row(LABELS[calibration], check["interval_coverage"], f"MAPE of the median {check['mape_pct']:.1f}%, {check['seconds'] / 60:.1f} min to fit and check"))
            else:
                lines.append(f"| {LABELS[calibration]} | 80% | not computed | | | `python benchmarks/lut_calibration.py` |")
        lines.append("")
    lines.append("Command: `python benchmarks/lut_calibration.py` (resumable; figures kept in lut-calibration.json).")
    atomic_write_text(args.out, "\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
