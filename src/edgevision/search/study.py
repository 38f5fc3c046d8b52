"""Sampling strategies on an Optuna study: ask a network, price it, train it (here or on Ray), tell.

The study lives in an Optuna storage (SQLite file by default, any SQLAlchemy URL for a shared
database), one committed row per trial, so a search killed with ``kill -9`` resumes where it
stopped: trials left RUNNING by the dead process are marked FAIL and asked again with the same
architecture (``retry_of``). Networks over the latency budget are told at once without training
(accuracy 0, constraint violated), so a tight budget costs no training time. A network already
trained in this study (same architecture id) is not trained twice.

Objectives: (accuracy estimate: maximise, predicted latency: minimise); the latency budget is a
constraint (``constraints_func``: ``predicted_ms - budget <= 0``), which NSGA-II (Deb et al. 2002,
constrained domination, Sec. VI) honours and the random sampler ignores (it samples uniformly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..network import NetworkSpec
from ..spec import Spec
from .executor import SerialExecutor, WorkerDied
from .result import Candidate, SearchError
from .space import Space, decide

__all__ = ["StudyRun", "open_study", "optimize", "describe_network"]

CONSTRAINT_ATTR = "constraint"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__


def check_storage(storage: str) -> None:
    """Open ``storage`` once; a file that is not an Optuna database raises :class:`SearchError` (and is left untouched)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        optuna.storages.RDBStorage(storage).get_all_studies()
    except (SQLAlchemyError, RuntimeError, ValueError) as error:
        raise SearchError(f"cannot open the study database {storage} ({_first_line(error)}); it is corrupt or not an Optuna study: move it away or give another --out") from None


def open_study(storage: str, study_name: str, sampler, config: dict[str, Any]):
    """Create or resume ``study_name`` in ``storage``; refuse a database that is not a study or a different config."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, sampler=sampler, directions=["maximize", "minimize"], load_if_exists=True
        )
    except (SQLAlchemyError, RuntimeError, ValueError) as error:
        raise SearchError(f"cannot open the study database {storage} ({_first_line(error)}); it is corrupt or not an Optuna study: move it away or give another --out") from None
    stored = study.user_attrs.get("config")
    if stored is None:
        study.set_user_attr("config", config)
    else:
        different = {k: (stored.get(k), v) for k, v in config.items() if stored.get(k) != v}
        if different:
            listed = ", ".join(f"{k}: {a!r} stored, {b!r} asked" for k, (a, b) in different.items())
            raise SearchError(f"study {study_name!r} in {storage} was started with other settings ({listed}); use another --out to start afresh")
    return study


def describe_network(spec: NetworkSpec) -> tuple[int, int]:
    """(params, MACs at the spec's input size) of a plain network."""
    from ..builder import build
    from ..counting import count_macs, count_params

    model = build(spec)
    return count_params(model), count_macs(model, spec.input_size)


def _evaluate(estimator: Callable[[NetworkSpec], float], spec_json: str) -> float:
    """What a worker runs: rebuild the spec from JSON (plain data crosses process boundaries) and estimate."""
    return float(estimator(Spec.from_json(spec_json)))


@dataclass
class StudyRun:
    """What ``optimize`` did in this call (the study holds the rest)."""

    trained: int = 0
    over_budget: int = 0
    reused: int = 0
    retried_stale: int = 0
    worker_retries: int = 0
    failed: list[str] = field(default_factory=list)


def optimize(
    study,
    space: Space,
    *,
    budget_ms: float,
    latency,
    estimator: Callable[[NetworkSpec], float],
    trials: int,
    time_budget_s: float | None = None,
    executor=None,
    max_worker_retries: int = 2,
    source: str = "",
    progress: Callable[[str], None] | None = None,
) -> StudyRun:
    """Run trials until ``trials`` networks are trained in the study (or ``time_budget_s`` runs out)."""
    from optuna.trial import TrialState

    executor = executor or SerialExecutor()
    run = StudyRun()
    started = time.perf_counter()
    # a trial left RUNNING was cut off by a kill: fail it and ask its architecture again
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(stale.number, state=TrialState.FAIL)
        study.enqueue_trial(stale.params, user_attrs={"retry_of": stale.number})
        run.retried_stale += 1
    trained_ids = {
        t.user_attrs["record"]["network"]: t.values[0]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.user_attrs.get("record", {}).get("trained")
    }
    done = len(trained_ids)
    asks, max_asks = 0, max(50, trials * 50)
    pending: dict[Any, tuple[Any, dict, int]] = {}  # handle -> (trial, its record, attempts)

    def time_left() -> bool:
        return time_budget_s is None or time.perf_counter() - started < time_budget_s

    while True:
        while len(pending) < executor.slots and done + len(pending) < trials and asks < max_asks and time_left():
            trial = study.ask()
            asks += 1
            spec = decide(space, lambda name, options: trial.suggest_categorical(name, list(options)))
            predicted = latency.network_ms(spec)
            params, macs = describe_network(spec)
            # one attribute per trial (every set_user_attr is a database commit)
            record = {"network": spec.name, "spec": spec.to_json(), "predicted_ms": predicted, "params": params, "macs": macs, "source": source}
            record[CONSTRAINT_ATTR] = [predicted - budget_ms]
            if predicted > budget_ms:
                trial.set_user_attr("record", {**record, "trained": False})
                study.tell(trial, [0.0, predicted])
                run.over_budget += 1
            elif spec.name in trained_ids:
                trial.set_user_attr("record", {**record, "trained": False, "duplicate": True})
                study.tell(trial, [trained_ids[spec.name], predicted])
                run.reused += 1
            else:
                pending[executor.submit(_evaluate, estimator, spec.to_json())] = (trial, record, 1)
        if not pending:
            break
        for handle in executor.wait(list(pending)):
            trial, record, attempts = pending.pop(handle)
            try:
                accuracy = executor.result(handle)
            except WorkerDied as error:
                record = {**record, "worker_retries": attempts, "last_worker_error": str(error)[:300]}
                trial.set_user_attr("record", record)  # recorded on the trial whether or not the retry succeeds
                run.worker_retries += 1
                if attempts <= max_worker_retries:
                    pending[executor.submit(_evaluate, estimator, record["spec"])] = (trial, record, attempts + 1)
                else:
                    study.tell(trial, state=TrialState.FAIL)
                    run.failed.append(record["network"])
                continue
            trial.set_user_attr("record", {**record, "trained": True})
            study.tell(trial, [accuracy, record["predicted_ms"]])
            trained_ids[record["network"]] = accuracy
            run.trained += 1
            done += 1
            if progress is not None:
                progress(f"trial {trial.number}: {record['network']} {record['predicted_ms']:.2f} ms, accuracy {accuracy:.3f}")
    return run


def candidates_from_study(study, source: str | None = None) -> list[Candidate]:
    """Every completed trial of the study as a :class:`Candidate` (accuracy None when not trained)."""
    from optuna.trial import TrialState

    out = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        attrs = {**trial.user_attrs.get("record", {}), **{k: v for k, v in trial.user_attrs.items() if k != "record"}}
        if source is not None and attrs.get("source") != source:
            continue
        trained = attrs.get("trained") or attrs.get("duplicate")
        out.append(
            Candidate(
                spec=Spec.from_json(attrs["spec"]),
                predicted_ms=attrs["predicted_ms"],
                accuracy=trial.values[0] if trained else None,
                params=attrs["params"],
                macs=attrs["macs"],
                trial=trial.number,
                source=attrs.get("source", ""),
                extra={k: attrs[k] for k in ("worker_retries", "retry_of") if k in attrs},
            )
        )
    return out


def constraints(trial) -> list[float]:
    """Optuna ``constraints_func``: feasible when predicted latency <= budget."""
    return trial.user_attrs.get("record", {}).get(CONSTRAINT_ATTR, [0.0])
