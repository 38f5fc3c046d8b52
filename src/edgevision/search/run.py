"""``run(space, strategy=...)``: one entry point for every search strategy, and what a search ships.

Every strategy gets a :class:`SearchContext` (space, latency budget, latency model, accuracy
estimator, trial and time budgets, storage, executor) and returns evaluated :class:`Candidate` s.
``run`` then takes the Pareto front within the budget, measures each front network for real on
the target runtime (predicted vs measured), picks the most accurate as ``best`` and, given ``out``,
writes ``pareto.json``, ``best.safetensors``, ``report.md``, ``report.html`` and the plot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..lut.key import MeasurementSetting
from ..lut.table import LatencyTable
from ..network import NetworkSpec
from .latency import LatencyModel
from .result import Candidate, SearchError, SearchResult, pareto_front
from .space import Space, fastest_network, load_space, with_classes

__all__ = ["STRATEGIES", "SearchContext", "run", "measure_network"]


def _strategies() -> dict[str, Callable]:
    from .repnas import run_repnas
    from .sampling import run_blocks, run_evolution, run_random
    from .supernet import run_dnas, run_proxyless

    return {"random": run_random, "evolution": run_evolution, "dnas": run_dnas, "proxyless": run_proxyless, "blocks": run_blocks, "repnas": run_repnas}


#: how sampling strategies estimate accuracy: short training of each network, or weights inherited from one supernet
ACCURACY_ESTIMATES = ("train", "supernet")

#: strategy names, in the order the CLI lists them
STRATEGIES = ("random", "evolution", "dnas", "proxyless", "blocks", "repnas")


@dataclass
class SearchContext:
    """What a strategy needs; strategies add what they learned to ``details``."""

    space: Space
    budget_ms: float
    latency: LatencyModel
    estimator: Callable[[NetworkSpec], float]
    trials: int
    data: str | None
    resolution: int
    storage: str | None
    seed: int
    executor: Any
    time_budget_s: float | None = None
    epochs_supernet: int = 4
    steps_per_epoch: int | None = None
    progress: Callable[[str], None] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def setting_key(self) -> dict:
        return self.latency.setting.to_dict()

    def splits(self):
        from .accuracy import _data

        if self.data is None:
            raise SearchError("this strategy trains a supernet and needs data (data='default' for the embedded MNIST)")
        return _data(self.data)

    def optimize_options(self, source: str, share: float = 1.0) -> dict:
        return {
            "budget_ms": self.budget_ms,
            "latency": self.latency,
            "estimator": self.estimator,
            "trials": self.trials,
            "time_budget_s": None if self.time_budget_s is None else self.time_budget_s * share,
            "executor": self.executor,
            "source": source,
            "progress": self.progress,
        }

    def record(self, study_run) -> None:
        runs = self.details.setdefault("study_runs", [])
        runs.append(dataclasses.asdict(study_run))


def measure_network(spec: NetworkSpec, runtime: str = "ort", threads: int = 2, time_budget_s: float = 3.0) -> float:
    """Median latency (ms) of ``spec``'s deploy form at its input size, batch 1, measured here."""
    from ..builder import build
    from ..latency import measure

    model = build(spec).eval()
    result = measure(model, (1, spec.in_channels, spec.input_size, spec.input_size), runtime=runtime, threads=threads, deploy=True, time_budget_s=time_budget_s)
    return result.median_ms


def _load_predictor(path, table: LatencyTable, setting: MeasurementSetting):
    """The fitted predictor at ``path`` for ``setting`` (None: the plain table sum)."""
    if path is None:
        return None
    from ..lut.predictor import LatencyPredictor

    loaded = LatencyPredictor.load(path, table)  # LutError names a damaged file or another machine's table
    if loaded.setting != setting:
        raise SearchError(f"predictor {path} was fitted for {loaded.setting.to_dict()}, not {setting.to_dict()}; pass matching --runtime/--threads")
    if loaded.correction is None:
        raise SearchError(f"predictor {path} has no fitted correction; write it with `edgevision lut validate`")
    return loaded


#: the calibration a search fitted, kept with its study so a resumed search prices networks as before
CALIBRATION_FILE = "calibration.json"

#: networks measured end to end to calibrate the table sum when ``run(calibrate=None)`` measures for real
DEFAULT_CALIBRATION_NETWORKS = 3


def _calibrated(latency: LatencyModel, space: Space, fastest: NetworkSpec, count: int, measurer, out: Path | None, seed: int, progress) -> LatencyModel:
    """``latency`` with a :class:`Calibration`: read from ``OUT/calibration.json`` on resume, else fitted on the
    space's fastest network and ``count - 1`` uniform draws, each measured end to end, and saved there."""
    import random

    from ..atomic import atomic_write_text
    from .latency import Calibration, calibrate
    from .space import decide

    path = None if out is None else out / CALIBRATION_FILE
    if path is not None and path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            calibration = Calibration.from_dict(data)
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise SearchError(f"{path} cannot be read ({type(error).__name__}: {str(error)[:120]}); delete it to calibrate again") from None
        asked = {"space": space.name, "setting": latency.setting.to_dict()}
        stored = {"space": data.get("space"), "setting": calibration.setting}
        if stored != asked:
            raise SearchError(f"{path} calibrates space {stored['space']!r} on {stored['setting']}, not {space.name!r} on {asked['setting']}; use another --out")
        if progress is not None:
            progress(f"latency calibration reused from {path}: scale {calibration.scale:.3f}, call overhead {calibration.call_overhead_ms * 1000:.1f} us")
        return latency.with_calibration(calibration)
    rng = random.Random(seed)
    networks = {fastest.name: fastest}
    for _ in range(10 * count):  # the space may hold fewer distinct networks than asked
        if len(networks) >= count:
            break
        network = decide(space, lambda name, options: rng.choice(list(options)))
        networks.setdefault(network.name, network)
    calibration = calibrate(latency, list(networks.values()), measurer)
    if path is not None:
        atomic_write_text(path, json.dumps({"format": "edgevision-search-calibration", "space": space.name, **calibration.to_dict()}, indent=1) + "\n")
    if progress is not None:
        progress(f"latency calibration on {len(networks)} networks measured end to end: scale {calibration.scale:.3f}, call overhead {calibration.call_overhead_ms * 1000:.1f} us")
    return latency.with_calibration(calibration)


def _drift(latency: LatencyModel, measurer) -> dict:
    """The calibration networks measured again after the search: how far the machine moved meanwhile."""
    from ..spec import Spec

    rows = [dict(row) for row in latency.calibration.networks]
    for row in rows:
        row["remeasured_ms"] = float(measurer(Spec.from_json(row.pop("spec"))))
    drift = statistics.median(row["remeasured_ms"] / row["measured_ms"] for row in rows)  # as calibrate() takes its scale
    return {**latency.calibration.to_dict(), "networks": rows, "drift": drift}


def _default_storage(out: Path | None) -> str | None:
    return None if out is None else f"sqlite:///{(out / 'study.sqlite').resolve()}"


def run(
    space: Space | str,
    strategy: str = "random",
    *,
    latency_ms: float,
    runtime: str = "ort",
    threads: int = 2,
    table: str | os.PathLike | LatencyTable | LatencyModel = "lut.sqlite",
    predictor: str | os.PathLike | None = None,
    estimator: Callable[[NetworkSpec], float] | None = None,
    accuracy: str = "train",
    data: str | None = "default",
    epochs: int = 1,
    resolution: int = 32,
    trials: int = 20,
    time_budget_s: float | None = None,
    storage: str | None = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    workers: int | None = None,
    ray_address: str | None = None,
    measure: bool | Callable[[NetworkSpec], float] = True,
    build_missing: bool = True,
    block_budget_s: float = 0.5,
    zoo_file: str | os.PathLike | None = None,
    supernet_epochs: int | None = None,
    steps_per_epoch: int | None = None,
    progress: Callable[[str], None] | None = None,
    options: dict[str, Any] | None = None,
    calibrate: int | None = None,
) -> SearchResult:
    """Search ``space`` with ``strategy`` for networks within ``latency_ms`` on ``runtime``; see docs/search.md.

    ``estimator``: ``callable(NetworkSpec) -> accuracy``; default :class:`ShortTraining` (``epochs``
    of the Bag of Tricks recipe on ``data`` at ``resolution`` px). ``accuracy="supernet"`` (random and
    evolution): train the space's supernet once (SPOS) and score each sampled path with the weights
    it inherits (:class:`~edgevision.search.sharing.SharedWeights`); the search then runs over the supernet's paths. ``trials``: networks trained
    (sampling strategies) or architectures derived (supernet strategies). ``storage``: an Optuna
    storage URL (default ``sqlite:///OUT/study.sqlite``; resumable). ``workers``/``ray_address``:
    evaluate trials on Ray. ``measure``: measure shipped networks (True), skip (False) or a function.
    ``predictor``: a ``predictor.json`` from ``edgevision lut validate``; its fitted correction of the
    table sum then prices every network (budget, objectives, front) and ``table_sum_ms`` keeps the plain sum.
    ``supernet_epochs`` (default 4 x ``epochs``) and ``steps_per_epoch`` size the supernet training of
    ``dnas``/``proxyless``/``repnas``; ``options`` go to the strategy (e.g. ``population_size``).
    ``calibrate``: measure that many networks of the space end to end first and price every network
    with the :class:`~edgevision.search.latency.Calibration` of the table sum fitted on them (call
    overhead subtracted, then scaled); default 3 when ``measure`` is True and no predictor is given,
    else 0 (the plain sum). Kept in ``OUT/calibration.json``; the calibration networks are measured
    again after the search (``details["calibration"]["drift"]``: how far the machine moved).
    """
    if strategy not in STRATEGIES:
        raise SearchError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not (latency_ms > 0):
        raise SearchError(f"the latency budget must be a positive number of ms, got {latency_ms!r}")
    if trials < 1:
        raise SearchError(f"trials must be >= 1, got {trials}")
    if accuracy not in ACCURACY_ESTIMATES:
        raise SearchError(f"unknown accuracy estimate {accuracy!r}; choose one of {', '.join(ACCURACY_ESTIMATES)}")
    if accuracy == "supernet" and (strategy not in ("random", "evolution") or estimator is not None or data is None):
        raise SearchError("accuracy='supernet' (weight sharing) needs data and the random or evolution strategy, and replaces the estimator; dnas/proxyless train their own supernet")
    try:
        space = load_space(space)
    except ValueError as error:
        raise SearchError(str(error)) from None
    started = time.perf_counter()
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    storage = storage or _default_storage(out_dir)
    if storage is not None:
        from .study import check_storage

        check_storage(storage)  # a corrupt database fails now, before any training
    if ray_address is not None:
        from .executor import check_ray_address

        check_ray_address(ray_address)  # seconds, not Ray's minute of retries
    if estimator is None and accuracy == "train":
        from .accuracy import ShortTraining

        if data is None:
            raise SearchError("the default accuracy estimator trains on data; give data='default' or an estimator")
        estimator = ShortTraining(data=data, epochs=epochs, resolution=resolution, seed=seed, threads=1 if (workers or ray_address) else None)
    if data is not None:
        from .accuracy import _data

        space = with_classes(space, _data(data).num_classes)

    owned_table = None
    if isinstance(table, LatencyModel):
        latency = table
    else:
        lut = table if isinstance(table, LatencyTable) else LatencyTable(table)
        owned_table = None if isinstance(table, LatencyTable) else lut
        def block_progress(done: int, total: int, block) -> None:
            if progress is not None:
                progress(f"measuring missing block {done}/{total} into {lut.path}: {block.spec.kind} {block.in_channels}->{block.out_channels} at {block.input_size[0]} px")

        setting = MeasurementSetting(runtime=runtime, threads=threads)
        latency = LatencyModel(
            lut, setting, predictor=_load_predictor(predictor, lut, setting), build_missing=build_missing, block_budget_s=block_budget_s, progress=block_progress
        )
    executor = None
    held = contextlib.ExitStack()
    try:
        if build_missing and not isinstance(table, LatencyModel):
            # it may measure missing blocks into the table: one such writer at a time (as `lut build` and `prune --table`),
            # else two searches time blocks under each other's load and store the slowed medians
            from ..locking import LockHeldError
            from ..lut.build import table_lock

            try:
                held.enter_context(table_lock(latency.table.path))
            except LockHeldError as error:
                raise SearchError(f"{error}; or give another --table, or --no-build to price from the table as it is") from None
        fastest, fastest_ms = fastest_network(space, latency)
        measurer = measure if callable(measure) else (lambda spec: measure_network(spec, latency.setting.runtime, latency.setting.threads))
        if calibrate is None:
            calibrate = DEFAULT_CALIBRATION_NETWORKS if measure is True and not latency.corrected else 0
        if calibrate:
            if not measure:
                raise SearchError("calibrating the latency table measures networks end to end; it cannot run with measure=False (--no-measure)")
            if latency.corrected:
                raise SearchError("a fitted predictor already corrects the table sum; calibrate or give --predictor, not both")
            raw_fastest_ms = fastest_ms

            def measure_first(spec: NetworkSpec) -> float:  # the fastest network is measured first: a budget below it fails at once
                ms = float(measurer(spec))
                if spec.name == fastest.name and ms > latency_ms:
                    raise SearchError(
                        f"latency budget {latency_ms:g} ms is below the fastest network of space {space.name!r}: {fastest.name} predicts "
                        f"{raw_fastest_ms:.3f} ms (table sum) and measures {ms:.3f} ms on {latency.setting.runtime}; raise --latency-ms to at least {ms:.3f}"
                    )
                return ms

            latency = _calibrated(latency, space, fastest, calibrate, measure_first, out_dir, seed, progress)
            fastest_ms = latency.network_ms(fastest)
        if latency_ms < fastest_ms:
            raise SearchError(
                f"latency budget {latency_ms:g} ms is below the fastest network of space {space.name!r}: {fastest.name} "
                f"predicts {fastest_ms:.3f} ms on {latency.setting.runtime}; raise --latency-ms to at least {fastest_ms:.3f}"
            )
        if accuracy == "supernet":
            from .accuracy import _data
            from .sharing import SUPERNET_FILE, SharedWeights
            from .space import as_supernet

            space = as_supernet(space)  # paths of the supernet: what the shared weights can score
            estimator = SharedWeights.trained(
                space, _data(data), resolution, supernet_epochs or max(2, 4 * epochs), steps_per_epoch=steps_per_epoch, seed=seed, progress=progress,
                path=None if out_dir is None else out_dir / SUPERNET_FILE, data_name=data,  # saved with the study: a resumed search reuses it
            )
        if workers or ray_address:
            from .executor import RayExecutor

            executor = RayExecutor(address=ray_address, slots=workers)
        else:
            from .executor import SerialExecutor

            executor = SerialExecutor()
        context = SearchContext(
            space=space,
            budget_ms=latency_ms,
            latency=latency,
            estimator=estimator,
            trials=trials,
            data=data,
            resolution=resolution,
            storage=storage,
            seed=seed,
            executor=executor,
            # one wall clock from the start of run(): calibration and a weight-sharing supernet's training count against it
            time_budget_s=None if time_budget_s is None else max(0.0, time_budget_s - (time.perf_counter() - started)),
            epochs_supernet=supernet_epochs or max(2, 4 * epochs),
            steps_per_epoch=steps_per_epoch,
            progress=progress,
        )
        candidates = _strategies()[strategy](context, **(options or {}))
        if latency.corrected:  # report both: the prediction the search used and the table sum it corrects
            for candidate in candidates:
                candidate.table_sum_ms = latency.table_sum_ms(candidate.spec)
        front = pareto_front(candidates, latency_ms)
        if measure:
            for candidate in front:
                candidate.measured_ms = float(measurer(candidate.spec))
            if latency.calibration is not None:
                context.details["calibration"] = _drift(latency, measurer)
        context.details["measured_on_demand_blocks"] = latency.measured_on_demand
        result = SearchResult(
            strategy=strategy,
            space=space.name,
            budget_ms=latency_ms,
            runtime=latency.setting.runtime,
            candidates=candidates,
            front=front,
            best=front[-1] if front else None,
            wall_seconds=time.perf_counter() - started,
            fastest=(fastest.name, fastest_ms),
            latency_model=_latency_model_name(latency, predictor),
            details=context.details,
        )
        if out_dir is not None:
            from .report import write_outputs

            write_outputs(result, out_dir, estimator, zoo_file)
        return result
    finally:
        if executor is not None:
            executor.close()
        if owned_table is not None:
            owned_table.close()
        held.close()


def _latency_model_name(latency: LatencyModel, predictor) -> str:
    if latency.calibration is not None:
        calibration = latency.calibration
        return (f"calibrated table sum: {calibration.scale:.3f} x (sum - (blocks - 1) x {calibration.call_overhead_ms * 1000:.1f} us call overhead), "
                f"fitted on {len(calibration.networks)} networks measured end to end")
    if latency.predictor.correction is not None:
        return f"predictor {predictor or '(fitted correction)'}"
    return "table sum"


def load_result(path: str | os.PathLike) -> dict:
    """A ``pareto.json`` as a dict (specs still JSON)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))
