"""``build()``: measure every distinct resolved block of some networks once, into a :class:`LatencyTable`.

Incremental: keys already in the table are skipped, and each measured block is committed before
the next starts, so re-running after Ctrl-C measures only what is missing. The stem and head are
blocks like any other. Blocks are measured in the form that ships (deploy form) unless asked
otherwise, each on its own with an input of its resolved shape (FBNet, Wu et al. 2019, Sec. 3.3;
ProxylessNAS, Cai et al. 2019, Sec. 3.3 build their tables the same way).

The measurement is injectable (``measure_block``) and so is the clock of the default one, so tests
build tables on a fake timer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ..blocks.base import ResolvedBlock
from ..latency import MeasurementPlan
from ..network import NetworkSpec
from ..resolve import ResolvedNetwork, resolve
from .features import block_module
from .key import MeasurementSetting, block_key
from .space import SearchSpace
from .table import BlockLatency, LatencyTable

__all__ = ["BuildReport", "BlockMeasure", "build", "measure_missing", "distinct_blocks", "measure_block_latency", "resolve_networks", "table_lock", "BLOCK_PLAN"]

#: default protocol for one block: a block runs in microseconds to a few ms, so a second is plenty
BLOCK_PLAN = MeasurementPlan(time_budget_s=1.0, target_precision=0.02, min_runs=10)

#: (block, setting) -> its latency; the default is :func:`measure_block_latency`
BlockMeasure = Callable[[ResolvedBlock, MeasurementSetting], BlockLatency]

Networks = SearchSpace | NetworkSpec | ResolvedNetwork | str | Iterable[NetworkSpec | ResolvedNetwork | str]


@dataclass(frozen=True)
class BuildReport:
    table: Path
    networks: int
    distinct_blocks: int
    measured: int  # blocks measured by this call
    already_present: int  # blocks skipped because the table had them


def table_lock(table: str | os.PathLike):
    """The lock (``.<name>.lock`` beside the table) every process that measures into ``table`` holds: a second one is
    refused at once naming the first, so two never time blocks against each other or write the same keys twice."""
    from ..locking import exclusive_lock

    path = Path(table)
    return exclusive_lock(path.with_name(f".{path.name}.lock"), f"latency table {str(path)!r}")


def resolve_networks(networks: Networks, *, count: int | None = None, seed: int = 0, input_size: int | None = None) -> list[ResolvedNetwork]:
    """Resolved networks from a search space (``count`` samples from ``seed``), specs, resolved networks or registered names."""
    from ..registry import get_spec

    if isinstance(networks, SearchSpace):
        if count is None or count < 1:
            raise ValueError(f"sampling search space {networks.name!r} needs count >= 1 networks, got {count!r}")
        items: Sequence = networks.sample_many(count, seed)
    elif isinstance(networks, (NetworkSpec, ResolvedNetwork, str)):
        items = [networks]
    else:
        items = list(networks)
    resolved = []
    for item in items:
        if isinstance(item, str):
            item = get_spec(item)  # UnknownModelError names close matches
        if isinstance(item, NetworkSpec):
            item = resolve(item, input_size=input_size)
        if not isinstance(item, ResolvedNetwork):
            raise TypeError(f"build() takes a SearchSpace, NetworkSpecs, ResolvedNetworks or model names, got {type(item).__name__}")
        resolved.append(item)
    return resolved


def distinct_blocks(networks: Iterable[ResolvedNetwork], setting: MeasurementSetting) -> dict[str, ResolvedBlock]:
    """Key -> one block with that key, in first-seen order (stem, stages, head of each network)."""
    blocks: dict[str, ResolvedBlock] = {}
    for network in networks:
        for block in network:
            blocks.setdefault(block_key(block, setting), block)
    return blocks


def measure_block_latency(
    block: ResolvedBlock,
    setting: MeasurementSetting,
    *,
    plan: MeasurementPlan = BLOCK_PLAN,
    clock: Callable[[], float] = time.perf_counter,
) -> BlockLatency:
    """Measure one block alone on an input of its resolved shape (the default ``measure_block``)."""
    from ..latency import measure

    height, width = block.input_size
    result = measure(
        block_module(block, setting.model_form),
        (setting.batch, block.in_channels, height, width),
        runtime=setting.runtime,
        threads=setting.threads,
        plan=plan,
        clock=clock,
    )
    return BlockLatency(
        median_ms=result.median_ms,
        ci_low_ms=result.ci_low_ms,
        ci_high_ms=result.ci_high_ms,
        runs=result.runs,
        noisy=result.noisy or result.contended,  # a busy machine's entry loses to a quiet one when tables merge
        measured_at=result.context.date,
    )


def measure_missing(
    lut: LatencyTable,
    blocks: dict[str, ResolvedBlock],
    setting: MeasurementSetting,
    *,
    measure_block: BlockMeasure | None = None,
    time_budget_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    progress: Callable[[int, int, ResolvedBlock], None] | None = None,
) -> int:
    """Measure the blocks of ``blocks`` (key -> block) that ``lut`` lacks, each committed at once; returns how many.

    What ``build`` does for whole networks, and what architecture search calls for the few blocks a
    sampled network adds (an incremental build on demand).
    """
    from ..latency import get_runtime

    if measure_block is None:
        runtime_class = get_runtime(setting.runtime)
        runtime_class.check_available()
        plan = BLOCK_PLAN if time_budget_s is None else replace(BLOCK_PLAN, time_budget_s=time_budget_s)

        def measure_block(block: ResolvedBlock, setting: MeasurementSetting) -> BlockLatency:
            return measure_block_latency(block, setting, plan=plan, clock=clock)

        versions = runtime_class(setting.threads).versions()
    else:
        versions = {"measure_block": getattr(measure_block, "__qualname__", "custom")}
    lut.check_runtime_versions(setting.runtime, versions)
    present = lut.keys()
    missing = [(key, block) for key, block in blocks.items() if key not in present]
    for done, (key, block) in enumerate(missing, start=1):
        lut.put(key, measure_block(block, setting))  # committed now: Ctrl-C after this keeps it
        if progress is not None:
            progress(done, len(missing), block)
    return len(missing)


def build(
    space_or_models: Networks,
    runtime: str = "ort",
    threads: int = 2,
    table: str | os.PathLike | LatencyTable = "lut.sqlite",
    *,
    batch: int = 1,
    model_form: str = "deploy",
    count: int | None = None,
    seed: int = 0,
    input_size: int | None = None,
    time_budget_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
    measure_block: BlockMeasure | None = None,
    allow_other_machine: bool = False,
    progress: Callable[[int, int, ResolvedBlock], None] | None = None,
) -> BuildReport:
    """Measure each distinct block of ``space_or_models`` once and store it in ``table``.

    ``space_or_models``: a :class:`SearchSpace` (``count`` networks sampled from ``seed``), a
    network spec, a resolved network, a registered model name, or an iterable of those.
    ``time_budget_s`` caps each block's measurement (default 1 s, :data:`BLOCK_PLAN`).
    ``progress(done, total, block)`` is called after each block measured.
    """
    setting = MeasurementSetting(runtime=runtime, threads=threads, batch=batch, model_form=model_form)
    networks = resolve_networks(space_or_models, count=count, seed=seed, input_size=input_size)
    blocks = distinct_blocks(networks, setting)
    owned = not isinstance(table, LatencyTable)
    with table_lock(table if owned else table.path):
        lut = LatencyTable(table, allow_other_machine=allow_other_machine, drop_invalid=True) if owned else table
        try:
            measured = measure_missing(
                lut, blocks, setting, measure_block=measure_block, time_budget_s=time_budget_s, clock=clock, progress=progress
            )
            return BuildReport(
                table=lut.path,
                networks=len(networks),
                distinct_blocks=len(blocks),
                measured=measured,
                already_present=len(blocks) - measured,
            )
        finally:
            if owned:
                lut.close()
