"""Sample-and-train strategies on one Optuna study: ``random``, ``evolution`` (NSGA-II) and ``blocks``.

* ``random``: Optuna's ``RandomSampler``, uniform over every choice: the baseline every other
  strategy has to beat (Li & Talwalkar 2019 show it is a strong one).
* ``evolution``: ``NSGAIISampler`` (Deb et al. 2002) on (accuracy, predicted latency) with the
  latency budget as a constraint, the multi-objective evolution hardware-aware detection-backbone
  searches use.
* ``blocks``: block benchmarking by Pareto fronts of random networks (Radosavovic et al. 2019's
  "design space" comparison, per block kind): for each block kind, the space restricted to that
  kind, random networks from it, and their fronts compared by hypervolume at the same budget.
"""

from __future__ import annotations

from ..lut.space import SearchSpace
from .result import Candidate, SearchError, hypervolume, pareto_front
from .study import candidates_from_study, constraints, open_study, optimize

__all__ = ["run_blocks", "run_evolution", "run_random"]


def _study(context, strategy: str, sampler, suffix: str = ""):
    config = {"space": context.space.to_json(), "strategy": strategy, "budget_ms": context.budget_ms, "setting": context.setting_key}
    return open_study(context.storage, f"{context.space.name}-{strategy}{suffix}", sampler, config)


def run_random(context) -> list[Candidate]:
    import optuna

    study = _study(context, "random", optuna.samplers.RandomSampler(seed=context.seed))
    context.record(optimize(study, context.space, **context.optimize_options(source="random")))
    return candidates_from_study(study)


def run_evolution(context, population_size: int | None = None) -> list[Candidate]:
    import optuna

    import warnings

    population = population_size or max(4, min(50, context.trials // 4))
    with warnings.catch_warnings():  # Optuna 5 deprecates constraints_func for Trial.set_constraint (one more commit per trial)
        warnings.simplefilter("ignore", FutureWarning)
        sampler = optuna.samplers.NSGAIISampler(population_size=population, seed=context.seed, constraints_func=constraints)
    study = _study(context, "evolution", sampler)
    context.details["population_size"] = population
    context.record(optimize(study, context.space, **context.optimize_options(source="evolution")))
    return candidates_from_study(study)


def run_blocks(context, kinds: tuple[str, ...] | None = None) -> list[Candidate]:
    """``trials`` random networks per block kind; per-kind fronts and hypervolumes land in ``details``."""
    import optuna

    space = context.space
    if not isinstance(space, SearchSpace):
        raise SearchError("strategy 'blocks' compares block kinds of a SearchSpace (e.g. --space mobile), not a supernet")
    kinds = kinds or tuple(dict.fromkeys(k for stage in space.stages for k in stage.block_kinds))
    everything: list[Candidate] = []
    per_kind = {}
    for kind in kinds:
        restricted = space.replace(name=f"{space.name}-{kind}", stages=tuple(s.replace(block_kinds=(kind,)) for s in space.stages))
        config = {"space": restricted.to_json(), "strategy": "blocks", "budget_ms": context.budget_ms, "setting": context.setting_key}
        study = open_study(context.storage, f"{restricted.name}-blocks", optuna.samplers.RandomSampler(seed=context.seed), config)
        context.record(optimize(study, restricted, **context.optimize_options(source=f"blocks:{kind}", share=1 / len(kinds))))
        found = candidates_from_study(study)
        front = pareto_front(found, context.budget_ms)
        per_kind[kind] = {
            "trained": sum(c.accuracy is not None for c in found),
            "hypervolume": hypervolume([(c.predicted_ms, c.accuracy) for c in front], context.budget_ms) / context.budget_ms,
            "front": [{"network": c.name, "predicted_ms": c.predicted_ms, "accuracy": c.accuracy} for c in front],
        }
        everything.extend(found)
    context.details["block_kinds"] = dict(sorted(per_kind.items(), key=lambda item: -item[1]["hypervolume"]))
    return everything
