"""Predicted latency for architecture search, from this machine's block latency table.

A network's latency is the sum of its blocks' table entries (FBNet, Wu et al. 2019, Eq. 5;
ProxylessNAS, Cai et al. 2019, Eq. 4), corrected by a fitted :class:`~edgevision.lut.SumCorrection`
when a predictor file is given. A supernet is priced candidate by candidate with the same block
keys: :meth:`LatencyModel.supernet_latency` gives the fixed blocks' sum and, per choice layer, one
latency per candidate, so the expected latency under an architecture distribution is a weighted
sum of table entries. Blocks the table lacks are measured on demand (``lut build`` is incremental)
unless ``build_missing=False``, when the regressor fallback or a clear error naming
``edgevision lut build`` takes over. Skip (``IdentitySpec``) costs 0: it is dropped when a network ships.

Why a plain sum misses what a shipped network measures, and the :class:`Calibration` that corrects it:

1. every entry is one runtime call timed alone, so it carries that call's fixed cost (ONNX Runtime's
   ``session.run`` with its feed and output copy: ~10 us with 2 threads on this 2-core VM, a one-op
   graph), which a network pays once, not once per block: the sum over-counts (blocks - 1) calls;
2. entries are measured whenever a block is first seen, possibly while the machine is busier (or
   quieter) than when the shipped network is measured: every entry of the smoke run's table was
   flagged contended, and its stem entry read 0.132 ms where the same block measures 0.034 ms on the
   idle machine, the ~4x gap that run reported between prediction and measurement.

Neither is per-block noise: (1) is measured directly (:func:`measure_call_overhead`) and subtracted,
(2) is a common factor, fitted as the median ratio measured / overhead-corrected sum over a few
networks of the space measured end to end when the search starts (:func:`calibrate`). The search then
prices every network (budget, objectives, front) with ``scale * (sum - (blocks - 1) * overhead)``.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ..blocks.base import ResolvedBlock
from ..blocks.choice import ChoiceBlockSpec, IdentitySpec, resolve_candidates
from ..lut.build import BlockMeasure, measure_missing
from ..lut.key import MeasurementSetting, block_key
from ..lut.predictor import LatencyPredictor
from ..lut.table import LatencyTable, LutError
from ..network import NetworkSpec
from ..resolve import ResolvedNetwork, resolve

__all__ = ["Calibration", "LatencyModel", "SupernetLatency", "calibrate", "measure_call_overhead"]


@dataclass(frozen=True)
class SupernetLatency:
    """A supernet priced: ``fixed_ms`` (stem, head, plain blocks) + one latency per candidate of each choice."""

    fixed_ms: float
    names: tuple[str, ...]  # choice layer names, network order
    candidate_ms: tuple[tuple[float, ...], ...]  # [layer][candidate]

    def path_ms(self, indices: Sequence[int]) -> float:
        """Latency of one path (sum of table entries; no correction)."""
        return self.fixed_ms + sum(row[i] for row, i in zip(self.candidate_ms, indices))

    def fastest(self) -> tuple[tuple[int, ...], float]:
        indices = tuple(min(range(len(row)), key=row.__getitem__) for row in self.candidate_ms)
        return indices, self.path_ms(indices)


#: (setting) -> the runtime's fixed cost of one call in ms; the default is :func:`measure_call_overhead`
OverheadMeasure = Callable[[MeasurementSetting], float]


def measure_call_overhead(setting: MeasurementSetting, time_budget_s: float = 0.5) -> float:
    """Median ms of one call of a one-op graph (ReLU of a 1x1x1x1 tensor) on ``setting``'s runtime and threads:
    what every block entry pays once for being timed alone."""
    import torch

    from ..latency import measure
    from ..lut.build import BLOCK_PLAN

    plan = dataclasses.replace(BLOCK_PLAN, time_budget_s=time_budget_s)
    result = measure(torch.nn.ReLU(), (setting.batch, 1, 1, 1), runtime=setting.runtime, threads=setting.threads, plan=plan, watch_machine=False)
    return result.median_ms


@dataclass(frozen=True)
class Calibration:
    """Table sum -> this machine's end-to-end latency: ``scale * (sum - (blocks - 1) * call_overhead_ms)``.

    ``networks`` are the end-to-end measurements the scale was fitted on (network, blocks,
    table_sum_ms, measured_ms); ``setting`` the measurement setting, so a resumed search can check it.
    """

    call_overhead_ms: float
    scale: float
    networks: tuple[dict, ...]
    setting: dict

    def apply(self, sum_ms: float, blocks: int) -> float:
        return self.scale * (sum_ms - max(0, blocks - 1) * self.call_overhead_ms)

    def to_dict(self) -> dict[str, Any]:
        return {"call_overhead_ms": self.call_overhead_ms, "scale": self.scale, "networks": list(self.networks), "setting": self.setting}

    @classmethod
    def from_dict(cls, data: dict) -> "Calibration":
        overhead, scale = float(data["call_overhead_ms"]), float(data["scale"])
        if not (overhead >= 0 and scale > 0) or not isinstance(data["setting"], dict):
            raise ValueError(f"call_overhead_ms must be >= 0 and scale > 0, got {overhead!r} and {scale!r}")
        return cls(call_overhead_ms=overhead, scale=scale, networks=tuple(dict(n) for n in data["networks"]), setting=dict(data["setting"]))


def _priced_blocks(resolved: ResolvedNetwork) -> list[ResolvedBlock]:
    return [block for block in resolved if not isinstance(block.spec, IdentitySpec)]


def calibrate(latency: "LatencyModel", networks: Sequence[NetworkSpec], measure: Callable[[NetworkSpec], float], overhead_ms: float | None = None) -> Calibration:
    """Fit the :class:`Calibration` of ``latency``'s table: measure ``networks`` end to end with ``measure``
    (and the runtime's call overhead with ``latency.measure_overhead`` unless ``overhead_ms`` is given)."""
    if not networks:
        raise ValueError("calibrate() needs at least one network to measure")
    rows = []
    for spec in networks:
        resolved = resolve(spec)
        blocks = _priced_blocks(resolved)
        latency.ensure(blocks)
        entries = [latency.block_ms(block) for block in blocks]
        rows.append({
            "network": spec.name, "blocks": len(blocks), "table_sum_ms": sum(entries), "smallest_entry_ms": min(entries),
            "measured_ms": float(measure(spec)), "spec": spec.to_json(),
        })  # fmt: skip
    if overhead_ms is None:
        overhead_ms = (latency.measure_overhead or measure_call_overhead)(latency.setting)
    # a block cannot run faster than the call that times it: a noisy overhead reading must not make a block cost < 0
    overhead_ms = max(0.0, min(overhead_ms, min(row["smallest_entry_ms"] for row in rows)))
    ratios = [row["measured_ms"] / (row["table_sum_ms"] - (row["blocks"] - 1) * overhead_ms) for row in rows]
    return Calibration(call_overhead_ms=overhead_ms, scale=statistics.median(ratios), networks=tuple(rows), setting=latency.setting.to_dict())


class LatencyModel:
    """Network and supernet latency (ms) under one :class:`MeasurementSetting`, from ``table``."""

    def __init__(
        self,
        table: LatencyTable,
        setting: MeasurementSetting,
        *,
        predictor: LatencyPredictor | None = None,
        build_missing: bool = True,
        measure_block: BlockMeasure | None = None,
        measure_overhead: OverheadMeasure | None = None,
        block_budget_s: float | None = 0.5,
        progress: Callable[[int, int, ResolvedBlock], None] | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        self.table = table
        self.setting = setting
        self.predictor = predictor or LatencyPredictor(table, setting)
        self.build_missing = build_missing
        self.measure_block = measure_block
        self.measure_overhead = measure_overhead
        self.block_budget_s = block_budget_s
        self.progress = progress
        self.calibration = calibration
        self.measured_on_demand = 0

    def with_calibration(self, calibration: Calibration | None) -> "LatencyModel":
        """This model on the same table, pricing networks with ``calibration`` (the caller's model is unchanged)."""
        calibrated = copy.copy(self)
        calibrated.calibration = calibration
        return calibrated

    def ensure(self, blocks: Sequence[ResolvedBlock]) -> None:
        """Measure the blocks the table lacks (or fail naming ``edgevision lut build``)."""
        wanted = {block_key(b, self.setting): b for b in blocks if not isinstance(b.spec, IdentitySpec)}
        present = self.table.keys()
        missing = {key: block for key, block in wanted.items() if key not in present}
        if not missing:
            return
        if not self.build_missing:
            regressor = self.predictor.regressor
            if regressor is not None and regressor.fitted:
                return  # the predictor falls back to the regressor for these
            first = next(iter(missing.values()))
            raise LutError(
                f"{len(missing)} block(s) are not in latency table {self.table.path} for runtime {self.setting.runtime} "
                f"(first: {first.spec.kind} at {first.input_size[0]}x{first.input_size[1]}); build it with "
                f"`edgevision lut build --space NAME --runtime {self.setting.runtime} --table {self.table.path}` or allow on-demand measurement"
            )
        self.measured_on_demand += measure_missing(
            self.table, missing, self.setting, measure_block=self.measure_block, time_budget_s=self.block_budget_s, progress=self.progress
        )

    def block_ms(self, block: ResolvedBlock) -> float:
        if isinstance(block.spec, IdentitySpec):
            return 0.0
        entry = self.table.get(block_key(block, self.setting))
        if entry is not None:
            return entry.median_ms
        regressor = self.predictor.regressor
        if regressor is None or not regressor.fitted:
            self.ensure([block])
            return self.table.get(block_key(block, self.setting)).median_ms
        from ..lut.features import block_features

        return float(regressor.predict([block_features(block, self.setting)])[0, 1])

    def network_ms(self, network: NetworkSpec | ResolvedNetwork) -> float:
        """Predicted latency of a plain network at its spec's input size (the corrected sum where fitted)."""
        resolved = network if isinstance(network, ResolvedNetwork) else resolve(network)
        if any(isinstance(b.spec, ChoiceBlockSpec) for b in resolved):
            raise ValueError(f"{resolved.spec.name} is a supernet; price it with supernet_latency() or choose() a path first")
        self.ensure(list(resolved))
        if self.predictor.correction is None:  # the plain sum: no block features (the cost model) needed
            total = sum(self.block_ms(block) for block in resolved)
            return total if self.calibration is None else self.calibration.apply(total, len(_priced_blocks(resolved)))
        return self.predictor.predict(resolved).latency_ms

    def table_sum_ms(self, network: NetworkSpec | ResolvedNetwork) -> float:
        """The plain sum of the network's table entries, whether or not a correction is fitted."""
        resolved = network if isinstance(network, ResolvedNetwork) else resolve(network)
        self.ensure(list(resolved))
        return sum(self.block_ms(block) for block in resolved)

    @property
    def corrected(self) -> bool:
        """Networks are priced by more than the plain sum (a predictor's fitted correction or a calibration)."""
        return self.predictor.correction is not None or self.calibration is not None

    def supernet_latency(self, supernet: NetworkSpec | ResolvedNetwork) -> SupernetLatency:
        """Every candidate of every choice block priced with its own block key.

        Under a calibration the prices stay additive: each block costs ``scale * (entry - overhead)``
        (a skip 0) and the fixed part carries the one call a network pays, so ``path_ms`` equals
        :meth:`network_ms` of the path.
        """
        resolved = supernet if isinstance(supernet, ResolvedNetwork) else resolve(supernet)
        candidates = {block.path: resolve_candidates(block) for block in resolved}
        self.ensure([c for group in candidates.values() for c in group])
        scale, overhead = (1.0, 0.0) if self.calibration is None else (self.calibration.scale, self.calibration.call_overhead_ms)

        def price(block: ResolvedBlock) -> float:
            return 0.0 if isinstance(block.spec, IdentitySpec) else scale * (self.block_ms(block) - overhead)

        fixed, names, rows = scale * overhead, [], []
        for block in resolved:
            if isinstance(block.spec, ChoiceBlockSpec):
                names.append(block.spec.name or block.path)
                rows.append(tuple(price(c) for c in candidates[block.path]))
            else:
                fixed += price(block)
        return SupernetLatency(fixed_ms=fixed, names=tuple(names), candidate_ms=tuple(rows))
