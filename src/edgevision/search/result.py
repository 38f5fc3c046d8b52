"""Search results: evaluated networks, the accuracy–latency Pareto front and its hypervolume."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..network import NetworkSpec

__all__ = ["Candidate", "SearchError", "SearchResult", "hypervolume", "pareto_front"]


class SearchError(ValueError):
    """A search cannot run as asked (budget below the fastest network, corrupt study, Ray unreachable...)."""


@dataclass
class Candidate:
    """One evaluated network."""

    spec: NetworkSpec
    predicted_ms: float
    accuracy: float | None  # None: not trained (over the latency budget)
    params: int = 0
    macs: int = 0  # at the latency resolution (the spec's input size)
    measured_ms: float | None = None  # filled for the networks the search ships
    table_sum_ms: float | None = None  # the plain sum of table entries, when predicted_ms is a predictor's corrected sum
    trial: int | None = None
    source: str = ""  # strategy (and block kind for `blocks`)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.name,
            "predicted_ms": self.predicted_ms,
            "measured_ms": self.measured_ms,
            "table_sum_ms": self.table_sum_ms,
            "accuracy": self.accuracy,
            "params": self.params,
            "macs": self.macs,
            "trial": self.trial,
            "source": self.source,
            **({"extra": self.extra} if self.extra else {}),
            "spec": json.loads(self.spec.to_json()),
        }


def pareto_front(candidates: Sequence[Candidate], budget_ms: float | None = None) -> list[Candidate]:
    """Non-dominated trained candidates (higher accuracy, lower predicted latency), fastest first."""
    pool = [c for c in candidates if c.accuracy is not None and (budget_ms is None or c.predicted_ms <= budget_ms)]
    pool.sort(key=lambda c: (c.predicted_ms, -c.accuracy))
    front, best = [], -math.inf
    for candidate in pool:
        if candidate.accuracy > best:
            front.append(candidate)
            best = candidate.accuracy
    return front


def hypervolume(points: Sequence[tuple[float, float]], reference_ms: float, reference_accuracy: float = 0.0) -> float:
    """Area dominated by (latency ms, accuracy) points, bounded by ``reference_ms`` and ``reference_accuracy``.

    Latency is minimised, accuracy maximised; points beyond the reference add nothing. The unit is
    ms x accuracy; divide by ``reference_ms`` for a number in [0, 1] when accuracy is in [0, 1].
    """
    inside = sorted((ms, acc) for ms, acc in points if ms < reference_ms and acc > reference_accuracy)
    # staircase of the front, fastest first; each step adds its rise in accuracy times the latency left to the reference
    area, running = 0.0, reference_accuracy
    for ms, acc in inside:
        if acc > running:
            area += (reference_ms - ms) * (acc - running)
            running = acc
    return area


@dataclass
class SearchResult:
    strategy: str
    space: str
    budget_ms: float
    runtime: str
    candidates: list[Candidate]
    front: list[Candidate]
    best: Candidate | None
    wall_seconds: float
    fastest: tuple[str, float] | None = None  # the space's fastest network and its predicted ms
    latency_model: str = "table sum"  # or "predictor FILE" (the fitted correction of `lut validate`)
    details: dict[str, Any] = field(default_factory=dict)  # strategy-specific (architecture weights, per-kind fronts, retries)

    @property
    def hypervolume(self) -> float:
        return hypervolume([(c.predicted_ms, c.accuracy) for c in self.front], self.budget_ms) / self.budget_ms

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "space": self.space,
            "runtime": self.runtime,
            "latency_budget_ms": self.budget_ms,
            "latency_model": self.latency_model,
            "wall_seconds": self.wall_seconds,
            "evaluated": len(self.candidates),
            "trained": sum(c.accuracy is not None for c in self.candidates),
            "hypervolume": self.hypervolume,
            "fastest_network": None if self.fastest is None else {"network": self.fastest[0], "predicted_ms": self.fastest[1]},
            "best": None if self.best is None else self.best.name,
            "pareto": [c.to_dict() for c in self.front],
            "details": self.details,
        }
