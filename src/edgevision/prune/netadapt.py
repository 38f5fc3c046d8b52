"""Latency-aware pruning schedule (NetAdapt: Yang et al., ECCV 2018, Algorithm 1), which MobileNetV3 used.

Each step proposes, for every prunable channel group, the next narrower width (on the runtime's
fast steps where a latency staircase is given), asks the latency source how many milliseconds that
saves (a measurement, the latency-table predictor, or any function), scores the proposal by
accuracy lost per millisecond saved (short-term: on held-out batches, after an optional brief
fine-tune), keeps the best one, fine-tunes briefly and repeats until the latency target is met.
The result records every step, so a run is auditable and can be replayed with ``shrink``.

The start latency (which sets the target) and a resumed run's re-measured current latency are the
lowest of ``start_readings`` readings (:func:`settled_latency`): a process's first reading runs before
its thread pools, allocator and clocks settle.

Resumable: ``checkpoint(progress)`` is called once the start and floor latencies are known and after
every accepted (fine-tuned) step; passing that :class:`NetAdaptProgress` back as ``resume`` continues
from it without measuring or pruning again what was done (``edgevision prune`` writes it to disk).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

from ..builder import Network
from .groups import ChannelGroup
from .importance import importance
from .surgery import PruneError, groups_of, shrink

__all__ = ["NetAdaptProgress", "NetAdaptStep", "NetAdaptResult", "netadapt", "latency_floor", "next_width", "settled_latency"]

LatencyFn = Callable[[Network], float]  # network -> milliseconds
AccuracyFn = Callable[[Network], float]  # network -> accuracy in [0, 1] (higher is better)


@dataclass
class NetAdaptStep:
    step: int
    group: str
    width_before: int
    width_after: int
    ms_before: float
    ms_after: float
    accuracy_before: float
    accuracy_after: float  # short-term, before this step's fine-tune
    candidates: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NetAdaptProgress:
    """Where a run stands after an accepted step: enough to continue it (``netadapt(resume=)``)."""

    model: Network  # the current (pruned, fine-tuned) network
    steps: list[NetAdaptStep]
    start_ms: float
    floor_ms: float
    current_ms: float
    current_accuracy: float

    def to_dict(self) -> dict:  # everything but the network, which is saved as a checkpoint
        return {"steps": [s.to_dict() for s in self.steps], "start_ms": self.start_ms, "floor_ms": self.floor_ms,
                "current_ms": self.current_ms, "current_accuracy": self.current_accuracy}

    @classmethod
    def from_dict(cls, model: Network, data: dict) -> "NetAdaptProgress":
        return cls(model, [NetAdaptStep(**s) for s in data["steps"]], data["start_ms"], data["floor_ms"],
                   data["current_ms"], data["current_accuracy"])


@dataclass
class NetAdaptResult:
    model: Network
    steps: list[NetAdaptStep] = field(default_factory=list)
    start_ms: float = 0.0
    final_ms: float = 0.0
    target_ms: float = 0.0
    floor_ms: float = 0.0
    reached: bool = False


def next_width(group: ChannelGroup, width: int, fraction: float, fast_widths: Sequence[int] | None = None) -> int | None:
    """The proposal for one group: ``fraction`` narrower, rounded to its step, snapped down to a fast width."""
    proposal = int(math.floor(width * (1.0 - fraction) / group.multiple)) * group.multiple
    proposal = min(proposal, width - group.multiple)
    if fast_widths:
        fitting = [w for w in fast_widths if w <= proposal and w % group.multiple == 0 and w >= group.multiple]
        proposal = max(fitting) if fitting else proposal
    return proposal if proposal >= group.multiple else None


def settled_latency(latency: LatencyFn, network: Network, readings: int = 2) -> float:
    """The lowest of ``readings`` readings of ``latency(network)``.

    A process's first measurement runs before its thread pools, allocator and CPU clocks have settled: in
    ``edgevision prune`` on this 2-vCPU VM the dense mobilenetv2_050 read 12.5 ms at the start and 8.2 ms after one
    5% step. NetAdapt's start reading sets the target (``target_ratio`` x start), so an inflated start sets it too
    loose and makes the run stop early. The minimum, not the mean: contention and cold caches only add time.
    A deterministic source (a latency table) needs one reading.
    """
    if readings < 1:
        raise PruneError(f"latency readings must be >= 1, got {readings}")
    return min(latency(network) for _ in range(readings))


def latency_floor(model: Network, latency: LatencyFn) -> float:
    """Latency with every prunable group at its narrowest width: no pruned width reaches below this."""
    groups = [g for g in groups_of(model) if g.prunable]
    narrowest = shrink(model, {g.name: g.multiple for g in groups}) if groups else model
    return latency(narrowest)


def netadapt(
    model: Network,
    latency: LatencyFn,
    accuracy: AccuracyFn,
    *,
    target_ms: float | None = None,
    target_ratio: float | None = None,
    criterion: str = "l1",
    batches=None,
    finetune: Callable[[Network], Network] | None = None,
    step_fraction: float = 0.125,
    max_steps: int = 100,
    fast_widths: Callable[[ChannelGroup], Sequence[int] | None] | None = None,
    log: Callable[[str], None] = lambda message: None,
    resume: NetAdaptProgress | None = None,
    checkpoint: Callable[[NetAdaptProgress], None] | None = None,
    start_ms: float | None = None,
    start_readings: int = 2,
) -> NetAdaptResult:
    """Shrink ``model`` until ``latency(model) <= target_ms`` (or ``target_ratio`` x its start latency).

    ``criterion`` chooses which channels a narrower group keeps (``importance``); ``finetune`` (model ->
    model) runs after each accepted step; ``fast_widths(group)`` lists the widths on the runtime's fast
    steps for that group (from :mod:`edgevision.prune.staircase`). ``start_ms``: the start latency when the caller
    has measured it already (else the lowest of ``start_readings`` readings, as is the re-measured current latency
    of a resumed run; see :func:`settled_latency`). Raises :class:`PruneError` naming the
    floor when the target is below what the narrowest widths reach.
    """
    if (target_ms is None) == (target_ratio is None):
        raise PruneError("give exactly one of target_ms and target_ratio")
    if target_ratio is not None and not 0.0 < target_ratio < 1.0:
        raise PruneError(f"target ratio must be in (0, 1) (the fraction of the start latency to keep), got {target_ratio}")
    if resume is not None:
        start_ms = resume.start_ms
    elif start_ms is None:
        start_ms = settled_latency(latency, model, start_readings)
    target = target_ms if target_ms is not None else start_ms * target_ratio
    if target <= 0:
        raise PruneError(f"target latency must be positive, got {target} ms")
    floor = resume.floor_ms if resume is not None else latency_floor(model, latency)
    if target < floor:
        raise PruneError(
            f"target {target:.3f} ms is below the floor of {model.spec.name}: {floor:.3f} ms with every prunable width at its "
            f"minimum (start {start_ms:.3f} ms); ask for at least {floor:.3f} ms"
        )
    result = NetAdaptResult(model=model, start_ms=start_ms, target_ms=target, floor_ms=floor)
    if resume is not None:
        current, current_acc = resume.model, resume.current_accuracy
        result.steps = list(resume.steps)
        # re-measured here: the next step compares candidates timed in this process against the current model, and the
        # recorded time comes from the killed process, possibly in another machine state (on this 2-vCPU VM the same
        # network runs up to 3x faster at some moments), which stopped resumed runs with "no narrower width saves time"
        current_ms = settled_latency(latency, current, start_readings)  # the resumed process's first readings
        log(f"resuming after step {len(result.steps)}: {current_ms:.3f} ms (recorded {resume.current_ms:.3f} ms by the killed run)")
    else:
        current, current_ms, current_acc = model, start_ms, accuracy(model)
        if checkpoint:
            checkpoint(NetAdaptProgress(current, [], start_ms, floor, current_ms, current_acc))
    for step in range(len(result.steps) + 1, max_steps + 1):
        if current_ms <= target:
            break
        groups = [g for g in groups_of(current) if g.prunable]
        scores = importance(current, criterion, groups, batches) if groups else {}
        best = None
        for group in groups:
            width = next_width(group, group.width, step_fraction, fast_widths(group) if fast_widths else None)
            if width is None:
                continue
            candidate = shrink(current, {group.name: width}, scores)
            ms = latency(candidate)
            saved = current_ms - ms
            if saved <= 0:
                continue
            acc = accuracy(candidate)
            # least accuracy lost per millisecond saved; a step that reaches the target outright is preferred
            key = (ms > target, (current_acc - acc) / saved)
            if best is None or key < best[0]:
                best = (key, group, width, candidate, ms, acc, len(groups))
        if best is None:
            log(f"step {step}: no narrower width saves time; stopping at {current_ms:.3f} ms")
            break
        _, group, width, candidate, ms, acc, count = best
        result.steps.append(NetAdaptStep(step, group.name, group.width, width, current_ms, ms, current_acc, acc, count))
        log(f"step {step}: {group.name} {group.width} -> {width}, {current_ms:.3f} -> {ms:.3f} ms, accuracy {current_acc:.4f} -> {acc:.4f}")
        current = finetune(candidate) if finetune else candidate
        current_ms, current_acc = ms, accuracy(current)
        if checkpoint:
            checkpoint(NetAdaptProgress(current, list(result.steps), start_ms, floor, current_ms, current_acc))
    result.model, result.final_ms, result.reached = current, current_ms, current_ms <= target
    return result
