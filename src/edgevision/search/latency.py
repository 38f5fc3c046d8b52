"""Predicted latency for architecture search, from this machine's block latency table.

A network's latency is the sum of its blocks' table entries (FBNet, Wu et al. 2019, Eq. 5;
ProxylessNAS, Cai et al. 2019, Eq. 4), corrected by a fitted :class:`~edgevision.lut.SumCorrection`
when a predictor file is given. A supernet is priced candidate by candidate with the same block
keys: :meth:`LatencyModel.supernet_latency` gives the fixed blocks' sum and, per choice layer, one
latency per candidate, so the expected latency under an architecture distribution is a weighted
sum of table entries. Blocks the table lacks are measured on demand (``lut build`` is incremental)
unless ``build_missing=False``, when the regressor fallback or a clear error naming
``edgevision lut build`` takes over. Skip (``IdentitySpec``) costs 0: it is dropped when a network ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from ..blocks.base import ResolvedBlock
from ..blocks.choice import ChoiceBlockSpec, IdentitySpec, resolve_candidates
from ..lut.build import BlockMeasure, measure_missing
from ..lut.key import MeasurementSetting, block_key
from ..lut.predictor import LatencyPredictor
from ..lut.table import LatencyTable, LutError
from ..network import NetworkSpec
from ..resolve import ResolvedNetwork, resolve

__all__ = ["LatencyModel", "SupernetLatency"]


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
        block_budget_s: float | None = 0.5,
        progress: Callable[[int, int, ResolvedBlock], None] | None = None,
    ) -> None:
        self.table = table
        self.setting = setting
        self.predictor = predictor or LatencyPredictor(table, setting)
        self.build_missing = build_missing
        self.measure_block = measure_block
        self.block_budget_s = block_budget_s
        self.progress = progress
        self.measured_on_demand = 0

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
            return sum(self.block_ms(block) for block in resolved)
        return self.predictor.predict(resolved).latency_ms

    def table_sum_ms(self, network: NetworkSpec | ResolvedNetwork) -> float:
        """The plain sum of the network's table entries, whether or not a correction is fitted."""
        resolved = network if isinstance(network, ResolvedNetwork) else resolve(network)
        self.ensure(list(resolved))
        return sum(self.block_ms(block) for block in resolved)

    @property
    def corrected(self) -> bool:
        return self.predictor.correction is not None

    def supernet_latency(self, supernet: NetworkSpec | ResolvedNetwork) -> SupernetLatency:
        """Every candidate of every choice block priced with its own block key."""
        resolved = supernet if isinstance(supernet, ResolvedNetwork) else resolve(supernet)
        candidates = {block.path: resolve_candidates(block) for block in resolved}
        self.ensure([c for group in candidates.values() for c in group])
        fixed, names, rows = 0.0, [], []
        for block in resolved:
            if isinstance(block.spec, ChoiceBlockSpec):
                names.append(block.spec.name or block.path)
                rows.append(tuple(self.block_ms(c) for c in candidates[block.path]))
            else:
                fixed += self.block_ms(block)
        return SupernetLatency(fixed_ms=fixed, names=tuple(names), candidate_ms=tuple(rows))
