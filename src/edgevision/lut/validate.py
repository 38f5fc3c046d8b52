"""Validation harness: how well does the table predict unseen networks on *this* machine?

Samples networks from a search space, builds the table for their blocks, measures a training set
end to end (to fit the sum correction) and a disjoint test set twice (two independent passes; the first pass
alternates training and test networks, so the correction is fitted under the drift the test networks see), and
reports for the test set: MAPE, RMSE, share within ±5% / ±10%, Spearman ρ and Kendall τ, for the
pure sum of the table and for the corrected sum — and the same figures for measurement pass 2
against pass 1, the machine's own run-to-run noise, which no predictor can beat.

Network measurements go to ``networks.jsonl`` through :class:`edgevision.results.ResultStore`
(fsynced appends), blocks to the SQLite table, so an interrupted validation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..latency import MeasurementPlan
from ..resolve import ResolvedNetwork, resolve
from .build import BlockMeasure, build
from .features import block_features
from .key import MeasurementSetting, block_from_key, block_key
from .predictor import BlockRegressor, LatencyPredictor
from .space import SearchSpace
from .table import LatencyTable, LutError

__all__ = [
    "AccuracyMetrics",
    "NETWORK_PLAN",
    "TARGETS",
    "ValidationReport",
    "accuracy",
    "block_cross_validation",
    "coverage_summary",
    "interleaved",
    "measure_network_latency",
    "plot_scatter",
    "validate",
]

#: default protocol for one network end to end (a few ms per call at 128 x 128)
NETWORK_PLAN = MeasurementPlan(time_budget_s=2.0, target_precision=0.01, min_runs=20)

#: the issue's targets: share within ±10% (%), Spearman ρ, error (MAPE) / noise (MAPE)
TARGETS = {"within_10_pct": 95.0, "spearman": 0.95, "error_over_noise": 2.0}

#: (network, setting, pass) -> end-to-end latency in ms, or a LatencyResult
NetworkMeasure = Callable[[ResolvedNetwork, MeasurementSetting, int], object]


@dataclass(frozen=True)
class AccuracyMetrics:
    """Predicted vs measured over a set of networks. Percentages are 0-100."""

    count: int
    mape_pct: float  # mean |predicted - measured| / measured
    rmse_ms: float
    within_5_pct: float  # share of networks with |relative error| <= 5%
    within_10_pct: float
    spearman: float  # rank correlation of predicted vs measured
    kendall: float
    max_error_pct: float
    mean_error_pct: float  # signed: > 0 when predictions run high

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def accuracy(predicted: Sequence[float], measured: Sequence[float]) -> AccuracyMetrics:
    """Accuracy statistics of ``predicted`` against ``measured`` (same order, measured > 0)."""
    from scipy import stats

    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape or p.ndim != 1 or len(p) < 2:
        raise ValueError(f"accuracy() needs two equally long sequences of >= 2 latencies, got {p.shape} and {m.shape}")
    if np.any(m <= 0):
        raise ValueError("accuracy() needs positive measured latencies")
    relative = (p - m) / m * 100
    return AccuracyMetrics(
        count=len(p),
        mape_pct=float(np.mean(np.abs(relative))),
        rmse_ms=float(np.sqrt(np.mean((p - m) ** 2))),
        within_5_pct=float(np.mean(np.abs(relative) <= 5) * 100),
        within_10_pct=float(np.mean(np.abs(relative) <= 10) * 100),
        spearman=float(stats.spearmanr(p, m).statistic),
        kendall=float(stats.kendalltau(p, m).statistic),
        max_error_pct=float(np.max(np.abs(relative))),
        mean_error_pct=float(np.mean(relative)),
    )


def measure_network_latency(
    network: ResolvedNetwork,
    setting: MeasurementSetting,
    run: int = 1,
    *,
    plan: MeasurementPlan = NETWORK_PLAN,
    clock: Callable[[], float] = time.perf_counter,
):
    """Measure one whole network end to end (deploy form unless the setting says train); a LatencyResult."""
    from ..builder import build as build_module
    from ..latency import measure

    height, width = network.input_size
    return measure(
        build_module(network),
        (setting.batch, network.spec.in_channels, height, width),
        runtime=setting.runtime,
        threads=setting.threads,
        deploy=setting.model_form == "deploy",
        plan=plan,
        clock=clock,
        seed=run,
    )


@dataclass
class ValidationReport:
    space: str
    setting: dict
    machine: dict
    train_networks: int
    test_networks: int
    table_entries: int
    sum_metrics: AccuracyMetrics
    corrected_metrics: AccuracyMetrics
    noise_metrics: AccuracyMetrics | None  # pass 2 vs pass 1 on the test networks
    correction: dict
    block_holdout: dict | None  # the block regressor on table entries it never saw
    rows: list[dict] = field(default_factory=list, repr=False)  # one per test network
    date: str = ""
    # the corrected sum's ±uncertainty (80% nominal) on the test networks: pass 1 and pass 2
    network_interval: dict | None = None

    def targets(self) -> dict[str, dict]:
        """Each target: the figure for the sum and the corrected predictor, the goal, and whether it is met."""
        out = {}
        for name, metrics in (("sum", self.sum_metrics), ("corrected", self.corrected_metrics)):
            ratio = metrics.mape_pct / self.noise_metrics.mape_pct if self.noise_metrics and self.noise_metrics.mape_pct > 0 else math.nan
            out[name] = {
                "within_10_pct": (metrics.within_10_pct, metrics.within_10_pct >= TARGETS["within_10_pct"]),
                "spearman": (metrics.spearman, metrics.spearman >= TARGETS["spearman"]),
                "error_over_noise": (ratio, ratio <= TARGETS["error_over_noise"]),
            }
        return out

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["targets"] = {k: {m: {"value": v, "met": ok} for m, (v, ok) in t.items()} for k, t in self.targets().items()}
        return data

    def to_markdown(self) -> str:
        s = self.setting
        lines = [
            f"### {s['runtime']}, {s['threads']} threads, batch {s['batch']}, {s['model_form']} form",
            "",
            f"{self.test_networks} unseen test networks, correction fitted on {self.train_networks} other networks, "
            f"table of {self.table_entries} blocks.",
            "",
            "| predictor | MAPE | RMSE ms | within ±5% | within ±10% | Spearman ρ | Kendall τ | max error | mean signed error |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows = [("sum of table", self.sum_metrics), ("corrected sum", self.corrected_metrics)]
        if self.noise_metrics is not None:
            rows.append(("run-to-run noise (pass 2 vs pass 1)", self.noise_metrics))
        for label, m in rows:
            lines.append(
                f"| {label} | {m.mape_pct:.2f}% | {m.rmse_ms:.3f} | {m.within_5_pct:.0f}% | {m.within_10_pct:.0f}% | "
                f"{m.spearman:.3f} | {m.kendall:.3f} | {m.max_error_pct:.1f}% | {m.mean_error_pct:+.2f}% |"
            )
        lines += ["", "| target | goal | sum of table | corrected sum |", "|---|---|---|---|"]
        targets = self.targets()
        goals = {"within_10_pct": "≥ 95% within ±10%", "spearman": "Spearman ρ ≥ 0.95", "error_over_noise": "MAPE ≤ 2 × noise MAPE"}
        for name, goal in goals.items():
            cells = []
            for predictor in ("sum", "corrected"):
                value, met = targets[predictor][name]
                text = "n/a" if math.isnan(value) else (f"{value:.1f}%" if name == "within_10_pct" else f"{value:.3f}" if name == "spearman" else f"{value:.2f}×")
                cells.append(f"{text} {'✅' if met else '❌'}")
            lines.append(f"| {name} | {goal} | {cells[0]} | {cells[1]} |")
        c = self.correction
        lines += [
            "",
            "Correction: measured ≈ "
            + " + ".join(f"{coef:.4g}·{name}" for coef, name in zip(c["coefficients"], c["features"]))
            + f" (relative residual σ on the training set {c['relative_residual_std'] * 100:.2f}%).",
        ]
        lines += ["", *self.coverage_lines()]
        return "\n".join(lines) + "\n"

    def coverage_lines(self) -> list[str]:
        """The block regressor's and the network predictor's intervals: nominal vs empirical coverage (markdown)."""
        lines = ["| interval | nominal | empirical coverage | 95% CI | over |", "|---|---:|---:|---|---|"]

        def row(label: str, coverage: dict, over: str) -> str:
            low, high = coverage["ci95_pct"]
            return f"| {label} | {coverage['nominal_pct']:.0f}% | {coverage['empirical_pct']:.1f}% | {low:.0f}-{high:.0f}% | {coverage['count']} {over} |"

        b = self.block_holdout
        if b and b.get("interval_coverage"):
            lines.append(row(f"block regressor ({b.get('calibration', 'split')}-conformal)", b["interval_coverage"], f"table entries, {b['folds']}-fold cross-validated"))
        elif b:  # a report written before cross-validation: one split, no CI
            lines.append(f"| block regressor | 80% | {b['interval_coverage_pct']:.1f}% | - | {b['test_blocks']} held-out table entries |")
        for name, label in (("pass_1", "corrected sum ± uncertainty, pass 1"), ("pass_2", "corrected sum ± uncertainty, pass 2")):
            if self.network_interval and self.network_interval.get(name):
                lines.append(row(label, self.network_interval[name], "unseen test networks"))
        if b:
            lines += [
                "",
                f"Block regressor cross-validated over the table ({b['test_blocks']} entries, each predicted by a regressor fitted on "
                f"~{b['train_blocks']} others): MAPE {b['mape_pct']:.1f}%, within ±10% {b['within_10_pct']:.0f}%, Spearman ρ {b['spearman']:.3f}.",
            ]
        return lines


def plot_scatter(report: ValidationReport, path: str | os.PathLike) -> None:
    """Predicted vs measured (pass 1) for the sum and the corrected sum, with y = x and a ±10% band."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    measured = np.array([r["measured_ms"] for r in report.rows])
    shown = [r[name] for r in report.rows for name in ("measured_ms", "measured_2_ms", "sum_ms", "corrected_ms") if r[name]]
    low, high = min(v for v in shown if v > 0) * 0.8, max(shown) * 1.2  # every point on the plot, however far off
    figure, axis = plt.subplots(figsize=(5.5, 5), dpi=110)
    line = np.array([low, high])
    axis.fill_between(line, line * 0.9, line * 1.1, color="0.9", label="±10%")
    axis.plot(line, line, color="0.4", linewidth=0.8)
    axis.scatter(measured, [r["sum_ms"] for r in report.rows], s=10, alpha=0.7, label=f"sum of table (MAPE {report.sum_metrics.mape_pct:.1f}%)")
    axis.scatter(
        measured, [r["corrected_ms"] for r in report.rows], s=10, alpha=0.7, label=f"corrected (MAPE {report.corrected_metrics.mape_pct:.1f}%)"
    )
    if report.noise_metrics is not None:
        axis.scatter(measured, [r["measured_2_ms"] for r in report.rows], s=8, marker="x", alpha=0.6, label="pass 2 (noise)")
    axis.set(xscale="log", yscale="log", xlim=(low, high), ylim=(low, high), xlabel="measured ms (pass 1)", ylabel="predicted ms")
    for scale in (axis.xaxis, axis.yaxis):  # minor-tick labels of a log axis overlap; major ones suffice
        scale.set_minor_formatter(matplotlib.ticker.NullFormatter())
    s = report.setting
    axis.set_title(f"{report.space}: {report.test_networks} unseen networks, {s['runtime']}, {s['threads']} threads", fontsize=9)
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
    plt.close(figure)


def coverage_summary(covered: Sequence[bool], nominal: float = 0.8) -> dict:
    """Nominal vs empirical coverage of intervals, with a 95% Wilson interval on the empirical share (percent)."""
    hits, count = int(np.sum(covered)), len(covered)
    if count == 0:
        return {"nominal_pct": nominal * 100, "empirical_pct": math.nan, "count": 0, "ci95_pct": [math.nan, math.nan]}
    z, share = 1.959963984540054, hits / count
    centre = (share + z * z / (2 * count)) / (1 + z * z / count)
    spread = z * math.sqrt(share * (1 - share) / count + z * z / (4 * count * count)) / (1 + z * z / count)
    return {"nominal_pct": nominal * 100, "empirical_pct": share * 100, "count": count, "ci95_pct": [(centre - spread) * 100, (centre + spread) * 100]}


def block_cross_validation(
    features: Sequence[dict], latencies_ms: Sequence[float], fold_of: Sequence[int], folds: int, hyperparameters: dict
) -> dict | None:
    """Every row predicted by a :class:`BlockRegressor` fitted (and calibrated) on the other folds' rows.

    Returns accuracy of the medians and coverage of the 80% intervals over all rows; None when a fold
    leaves fewer than 10 rows to fit or the table has fewer than 2 rows per fold.
    """
    measured = np.asarray(latencies_ms, dtype=float)
    folds_of = np.asarray(fold_of)
    predicted = np.full((len(measured), 3), math.nan)
    for fold in range(folds):
        test = np.flatnonzero(folds_of == fold)
        train = np.flatnonzero(folds_of != fold)
        if len(train) < 10 or len(test) < 1:
            return None
        regressor = BlockRegressor(**hyperparameters).fit([features[i] for i in train], measured[train])
        predicted[test] = regressor.predict([features[i] for i in test])
    if len(measured) < 2:
        return None
    metrics = accuracy(predicted[:, 1], measured)
    covered = (predicted[:, 0] <= measured) & (measured <= predicted[:, 2])
    coverage = coverage_summary(covered)
    return {
        "folds": folds,
        "train_blocks": int(round(len(measured) * (folds - 1) / folds)),  # per fold, about
        "test_blocks": len(measured),  # every entry, each by a regressor that never saw it
        "mape_pct": metrics.mape_pct,
        "within_10_pct": metrics.within_10_pct,
        "spearman": metrics.spearman,
        "interval_coverage_pct": coverage["empirical_pct"],
        "interval_coverage": coverage,
        "calibration": BlockRegressor(**hyperparameters).calibration,
    }


def _holdout_check(table: LatencyTable, setting: MeasurementSetting, hyperparameters: dict, folds: int = 5) -> dict | None:
    """The block regressor cross-validated over the table's entries (folds by key hash, so a rerun splits alike)."""
    features, latencies, fold_of = [], [], []
    for key, latency in table.items():
        block, entry_setting = block_from_key(key)
        if entry_setting != setting:
            continue
        features.append(block_features(block, setting))
        latencies.append(latency.median_ms)
        fold_of.append(int(hashlib.sha256(key.encode()).hexdigest(), 16) % folds)
    return block_cross_validation(features, latencies, fold_of, folds, hyperparameters)


def interleaved(first: Sequence, second: Sequence) -> list:
    """``first`` and ``second`` alternated in proportion (every element once, each list's order kept): 50 training and
    100 test networks become t, T, T, t, T, T, ... so each stretch of time holds both kinds in the same ratio."""
    if not first or not second:
        return [*first, *second]
    # element i of a list of n sits at position (i + 0.5) / n of the run; merge by that position (first wins ties)
    keyed = [((i + 0.5) / len(first), 0, i, x) for i, x in enumerate(first)] + [((j + 0.5) / len(second), 1, j, y) for j, y in enumerate(second)]
    return [item for *_, item in sorted(keyed, key=lambda k: k[:3])]


def validate(
    space: SearchSpace,
    table: str | os.PathLike,
    out_dir: str | os.PathLike,
    setting: MeasurementSetting = MeasurementSetting(),
    *,
    train: int = 50,
    test: int = 100,
    seed: int = 0,
    noise: bool = True,
    block_budget_s: float | None = None,
    network_plan: MeasurementPlan = NETWORK_PLAN,
    regressor_hyperparameters: dict | None = None,
    measure_block: BlockMeasure | None = None,
    measure_network: NetworkMeasure | None = None,
    allow_other_machine: bool = False,
    progress: Callable[[str], None] | None = None,
    stored_only: bool = False,
) -> ValidationReport:
    """Run the whole validation (resumable) and write ``validation.json``, ``predictor.json`` and
    ``scatter.png`` to ``out_dir``; returns the report.

    ``regressor_hyperparameters`` go to :class:`BlockRegressor` (checked on held-out table entries,
    then fitted on the whole table for ``predictor.json``). ``stored_only``: recompute every figure
    from the table and ``networks.jsonl`` already there, refusing (LutError) before timing anything
    a block or network they lack (a new predictor on old measurements, no machine time).
    """
    from ..results import ResultStore

    number = (int, float)
    NETWORK_ROW_SCHEMA = {  # what resuming and check_compatible read from a networks.jsonl row
        "network": str, "run": int, "setting": dict, "median_ms": number,
        "result": {"context": {"fingerprint": str, "runtime": str, "runtime_versions": dict, "cpu_model": str}},
    }
    from ..latency import get_runtime
    from ..machine import machine_info

    say = progress or (lambda message: None)
    if train < 8 or test < 2:
        raise ValueError(f"validate() needs train >= 8 (to fit the correction) and test >= 2 networks, got train={train}, test={test}")
    out = Path(out_dir)
    if not out.is_dir():
        raise ValueError(f"output directory {str(out)!r} does not exist; create it first")
    machine = machine_info()
    specs = space.sample_many(train + test, seed)
    networks = [resolve(spec) for spec in specs]
    train_networks, test_networks = networks[:train], networks[train:]

    started = time.perf_counter()
    if stored_only:
        if not Path(table).exists():
            raise LutError(f"stored_only: no table at {str(table)!r}")
        with LatencyTable(table, allow_other_machine=allow_other_machine) as lut:
            missing = {block_key(b, setting) for n in networks for b in n if lut.get(block_key(b, setting)) is None}
        if missing:
            raise LutError(f"stored_only: {len(missing)} block(s) of the sampled networks are not in {table}; drop --no-measure to time them")

    def block_progress(done: int, total: int, block) -> None:
        if done == 1 or done % 25 == 0 or done == total:
            say(f"[{setting.runtime}] blocks {done}/{total} measured ({time.perf_counter() - started:.0f} s)")

    report = build(
        networks,
        setting.runtime,
        setting.threads,
        table,
        batch=setting.batch,
        model_form=setting.model_form,
        time_budget_s=block_budget_s,
        measure_block=measure_block,
        allow_other_machine=allow_other_machine,
        progress=block_progress,
    )
    say(f"[{setting.runtime}] table: {report.distinct_blocks} distinct blocks, {report.measured} measured now, {report.already_present} already there")

    if measure_network is None:
        runtime_versions = get_runtime(setting.runtime)(setting.threads).versions()

        def measure_network(network, setting, run):
            return measure_network_latency(network, setting, run, plan=network_plan)
    else:
        runtime_versions = {"measure_network": getattr(measure_network, "__qualname__", "custom")}
    store = ResultStore(out / "networks.jsonl", schema=NETWORK_ROW_SCHEMA)
    store.check_compatible(machine.fingerprint, {setting.runtime: runtime_versions})
    done = {(row["network"], row["run"], json.dumps(row["setting"], sort_keys=True)): row["median_ms"] for row in store.rows}
    setting_text = json.dumps(setting.to_dict(), sort_keys=True)
    # pass 1 alternates training and test networks (issue 13: both see the same drift, so the correction fitted on the
    # training networks applies to the test networks measured beside them, not minutes later); pass 2 repeats the test set
    passes = [(1, interleaved(train_networks, test_networks))] + ([(2, test_networks)] if noise else [])
    total = sum(len(group) for _, group in passes)
    count = 0
    for run, group in passes:
        for network in group:
            count += 1
            if (network.spec.name, run, setting_text) in done:
                continue
            if stored_only:
                raise LutError(f"stored_only: {network.spec.name} (pass {run}) is not in {out / 'networks.jsonl'}; drop --no-measure to time it")
            result = measure_network(network, setting, run)
            median = float(getattr(result, "median_ms", result))
            context = result.to_dict()["context"] if hasattr(result, "to_dict") else {
                "fingerprint": machine.fingerprint,
                "cpu_model": machine.cpu_model,
                "runtime": setting.runtime,
                "runtime_versions": runtime_versions,
                "model_form": setting.model_form,
                "threads": setting.threads,
                "input_shape": [setting.batch, network.spec.in_channels, *network.input_size],
            }
            row = {
                "model": f"{network.spec.name}#pass{run}",
                "network": network.spec.name,
                "run": run,
                "setting": setting.to_dict(),
                "median_ms": median,
                "result": {**(result.to_dict() if hasattr(result, "to_dict") else {}), "context": context},
            }
            store.append(row)
            done[(network.spec.name, run, setting_text)] = median
            if count == 1 or count % 10 == 0 or count == total:
                say(f"[{setting.runtime}] networks {count}/{total} measured ({time.perf_counter() - started:.0f} s)")

    def measured(network: ResolvedNetwork, run: int) -> float:
        return done[(network.spec.name, run, setting_text)]

    with LatencyTable(table, allow_other_machine=allow_other_machine) as lut:
        hyperparameters = regressor_hyperparameters or {}
        holdout = _holdout_check(lut, setting, hyperparameters)
        regressor = BlockRegressor(**hyperparameters).fit_table(lut, setting) if len(lut) >= 10 else None
        predictor = LatencyPredictor(lut, setting, regressor=regressor)
        sums = [predictor.predict(n) for n in test_networks]
        correction = predictor.fit_correction(train_networks, [measured(n, 1) for n in train_networks])
        corrected = [predictor.predict(n) for n in test_networks]
        predictor.save(out / "predictor.json")
        entries = len(lut)
    first = [measured(n, 1) for n in test_networks]
    network_interval = {
        f"pass_{run}": coverage_summary([abs(p.latency_ms - measured(n, run)) <= p.uncertainty_ms for p, n in zip(corrected, test_networks)])
        for run in ((1, 2) if noise else (1,))
    }
    rows = [
        {
            "network": n.spec.name,
            "measured_ms": first[i],
            "measured_2_ms": measured(n, 2) if noise else None,
            "sum_ms": sums[i].latency_ms,
            "corrected_ms": corrected[i].latency_ms,
            "uncertainty_ms": corrected[i].uncertainty_ms,
            "blocks": corrected[i].blocks,
            "megabytes": corrected[i].megabytes,
            "spec": n.spec.to_dict(),
        }
        for i, n in enumerate(test_networks)
    ]
    result = ValidationReport(
        space=space.name,
        setting=setting.to_dict(),
        machine=machine.to_dict(),
        train_networks=train,
        test_networks=test,
        table_entries=entries,
        sum_metrics=accuracy([p.latency_ms for p in sums], first),
        corrected_metrics=accuracy([p.latency_ms for p in corrected], first),
        noise_metrics=accuracy([measured(n, 2) for n in test_networks], first) if noise else None,
        correction=correction.to_dict(),
        block_holdout=holdout,
        rows=rows,
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        network_interval=network_interval,
    )
    from ..atomic import atomic_write_text

    atomic_write_text(out / "validation.json", json.dumps(result.to_dict(), indent=1) + "\n")
    plot_scatter(result, out / "scatter.png")
    return result
