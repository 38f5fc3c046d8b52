"""Measure a set of models on a set of runtimes, resumably: cost model once per model, latency per runtime.

For each model (deploy form): parameters, MACs, FLOPs, bytes moved, peak activation memory and the
roofline-bound time from :func:`edgevision.analyze`, then :func:`edgevision.measure` on every
runtime. Each finished measurement becomes one line of ``results.jsonl`` (:mod:`.store`) before
the next starts; measurements already in the file are skipped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..results import ResultStore, row_key

__all__ = ["BenchConfig", "Failure", "check_out_dir", "run_bench", "DEFAULT_RUNTIMES", "DEFAULT_TIME_BUDGET_S"]

#: the best available CPU runtime plus PyTorch eager for comparison
DEFAULT_RUNTIMES = ("ort", "eager")
#: seconds per measurement, warm-up included: 35 models x 2 runtimes fit in 10 minutes on 2 cores
DEFAULT_TIME_BUDGET_S = 3.0


@dataclass(frozen=True)
class BenchConfig:
    models: tuple[str, ...]
    runtimes: tuple[str, ...] = DEFAULT_RUNTIMES
    threads: int = 2
    batch: int = 1
    resolution: int = 224
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    allow_mixed: bool = False
    second_pass: bool = False  # measure everything once more, after the first pass: the machine's repeatability

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, self.resolution, self.resolution)


@dataclass(frozen=True)
class Failure:
    model: str
    runtime: str
    message: str


@dataclass
class BenchRun:
    """What :func:`run_bench` returns: the rows of this configuration (old and new) and what failed."""

    rows: list[dict]
    measured: int
    skipped: int
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # repairs made on the way (damaged lines moved aside, a stale lock taken over)
    second_pass: list[dict] = field(default_factory=list)  # rows of the repeat pass (second_pass.jsonl)


def model_costs(name: str, input_shape: Sequence[int], peaks="measure") -> dict:
    """Cost-model figures of ``name`` in deploy form at ``input_shape`` (plain JSON data)."""
    from ..analysis import analyze
    from ..registry import create_model
    from ..reparam import reparameterize

    deployed = reparameterize(create_model(name))
    from ..analysis.kernels import FUSION_RULES

    report = analyze(deployed, input_shape=tuple(input_shape), peaks=peaks)
    total = report.total
    by_runtime = {runtime: report.runtime_bound_seconds(runtime) for runtime in FUSION_RULES}
    return {
        "params": total.params,
        "macs": total.macs,
        "flops": total.flops,
        "bytes": total.bytes,
        "peak_activation_bytes": report.peak_activation_bytes,
        "bound_ms": None if total.bound_seconds is None else total.bound_seconds * 1e3,
        "bound_by": total.bound_by,  # None without peaks
        # per runtime: the bound of the kernels it fuses (analysis.kernels); what the report checks
        "bound_ms_by_runtime": {r: None if b is None else b * 1e3 for r, b in by_runtime.items()},
        # the machine state of the peaks (reference network ms at probe, analysis.roofline): the report scales
        # each bound to the state its measurement was taken in
        "peaks_reference_ms": report.peaks.reference_ms if report.peaks else None,
        "peaks_threads": report.peaks.threads if report.peaks else None,
    }


def published_figures(name: str) -> dict:
    from ..published import published

    record = published(name)
    return {
        "top1": record.top1 if record else None,
        "citation": record.citation if record else "",
    }


def check_out_dir(out: str | Path) -> list[str]:
    """Before any work: refuse an ``out`` another run holds, or whose results.jsonl has a line that is not a
    result row (:class:`~.store.ResultsFileError`); move torn lines aside. Returns what was repaired."""
    from ..locking import exclusive_lock

    out = Path(out)
    if not out.is_dir():
        return []
    with exclusive_lock(out / ".lock", f"bench output directory {str(out)!r}", remove_on_error=not (out / ".lock").exists()):
        store = ResultStore(out / "results.jsonl")  # a refused (damaged) file: the lock made for reading it goes again
    return [f"moved {len(store.moved_aside)} damaged line(s) of {store.path} to {store.damaged_path}"] if store.moved_aside else []


def run_bench(config: BenchConfig, out: str | Path, **options) -> BenchRun:
    """Measure every (model, runtime) of ``config`` not yet in ``out/results.jsonl`` (see :func:`_run_bench`).

    One run per ``out`` at a time: a second is refused with :class:`~edgevision.locking.LockHeldError`
    naming the first. Temporaries left by a killed run's report writing are removed first.
    """
    from ..atomic import sweep_stale_temporaries
    from ..locking import exclusive_lock

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out / ".lock", f"bench output directory {str(out)!r}") as stale:
        notes = [f"took over the lock of a run that was killed (pid {stale.get('pid')}, started {stale.get('started')})"] if stale else []
        removed = sweep_stale_temporaries(out)
        if removed:
            notes.append(f"removed {len(removed)} temporary file(s) a killed run left in {out}")
        bench = _run_bench(config, out, **options)
    bench.notes[:0] = notes
    return bench


def _run_bench(
    config: BenchConfig,
    out: str | Path,
    *,
    peaks="measure",
    clock: Callable[[], float] = time.perf_counter,
    on_start: Callable[[str, str, int, int], None] | None = None,
    on_done: Callable[[str, str, dict | None], None] | None = None,
) -> BenchRun:
    """Measure every (model, runtime) of ``config`` not yet in ``out/results.jsonl``.

    Raises :class:`~.store.MixedResultsError` before measuring anything if the file holds results
    from another machine or runtime version (unless ``config.allow_mixed``, when they are reused).
    ``on_start(model, runtime, index, total)`` and ``on_done(model, runtime, row)`` report progress
    (``row`` is None when the measurement failed). ``peaks=None`` skips the roofline bound.
    """
    from ..latency import MeasurementError, MeasurementPlan, get_runtime, measure
    from ..machine import machine_info

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore(out / "results.jsonl")
    notes = [f"moved {len(store.moved_aside)} damaged line(s) of {store.path} (line {', '.join(map(str, store.moved_aside[:5]))}) to {store.damaged_path}"] if store.moved_aside else []
    if not config.allow_mixed:
        versions = {runtime: get_runtime(runtime)(config.threads).versions() for runtime in config.runtimes}
        store.check_compatible(machine_info().fingerprint, versions)

    def key(model: str, runtime: str) -> tuple:
        return (model, runtime, "deploy", config.threads, config.input_shape)

    done = store.keys()
    todo = [(m, r) for m in config.models for r in config.runtimes if key(m, r) not in done]
    costs = {row["model"]: row["costs"] for row in store.rows if tuple(row["result"]["context"]["input_shape"]) == config.input_shape}
    plan = MeasurementPlan(time_budget_s=config.time_budget_s)
    failures = []
    for index, (model, runtime) in enumerate(todo):
        if on_start:
            on_start(model, runtime, index, len(todo))
        try:
            if model not in costs:
                costs[model] = model_costs(model, config.input_shape, peaks)
            result = measure(
                model, config.input_shape, runtime=runtime, threads=config.threads, deploy=True, plan=plan, clock=clock
            )
        except MeasurementError as error:  # one model failing on one runtime does not stop the run
            failures.append(Failure(model, runtime, str(error)))
            if on_done:
                on_done(model, runtime, None)
            continue
        row = {"model": model, "costs": costs[model], **published_figures(model), "time_budget_s": config.time_budget_s, "result": result.to_dict()}
        store.append(row)
        if on_done:
            on_done(model, runtime, row)
    wanted = {key(m, r) for m in config.models for r in config.runtimes}
    latest = {row_key(row): row for row in store.rows if row_key(row) in wanted}  # a re-measured key: the last wins
    rows = list(latest.values())
    repeats = _second_pass(config, out, latest, key, plan, clock) if config.second_pass else []
    return BenchRun(rows=rows, measured=len(todo) - len(failures), skipped=len(wanted) - len(todo), failures=failures, notes=notes,
                    second_pass=repeats)


def _second_pass(config: BenchConfig, out: Path, first: dict, key, plan, clock) -> list[dict]:
    """Every (model, runtime) of the first pass measured once more, round robin, into ``second_pass.jsonl`` (resumable)."""
    from ..latency import MeasurementError, measure

    store = ResultStore(out / "second_pass.jsonl")
    done = store.keys()
    for model in config.models:
        for runtime in config.runtimes:
            if key(model, runtime) not in first or key(model, runtime) in done:
                continue
            try:
                result = measure(model, config.input_shape, runtime=runtime, threads=config.threads, deploy=True, plan=plan, clock=clock)
            except MeasurementError:
                continue
            store.append({"model": model, "costs": first[key(model, runtime)]["costs"], "result": result.to_dict()})
    return [row for row in store.rows if row_key(row) in first]
