"""Feature pyramids from the resolved spec: which block outputs are the levels, and the features-only spec.

A level is the last block output at each reduction (2, 4, 8, 16, 32, ...), the C1..C5 of FPN (Lin et
al. 2017, Sec. 3): indexed by reduction, not by stage, so GhostNet's ten stages and MobileNetV3's
stride-1 stages still give one level per reduction. Trailing ``pre_logits_stages`` (the 1x1 conv
that widens the last map for the classifier in MobileNetV2 / GhostNet) are not levels, as in timm.
With ``output_stride`` < 32 the levels stay the same blocks; their reported reduction stops growing
(the later strides became dilation).

Everything here reads a :class:`~edgevision.ResolvedNetwork` only (no torch), so the builder, the
dense heads and the tests see one definition.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, Sequence

from .network import NetworkSpec

__all__ = ["FeatureLevel", "FeatureInfo", "feature_levels", "features_spec", "select_levels"]


@dataclass(frozen=True)
class FeatureLevel:
    """One pyramid level: the output of block ``module`` (path in the built network)."""

    index: int  # position in the pyramid (what ``out_indices`` name)
    reduction: int  # input size / map size (the stride product; capped by output_stride)
    channels: int
    module: str  # e.g. "stages.2.3"
    block: int  # index of the block in ``ResolvedNetwork.blocks``
    size: tuple[int, int]  # H x W of the map at the resolved input size

    def to_dict(self) -> dict:
        """timm's keys (``num_chs``, ``reduction``, ``module``) plus ours."""
        return {"index": self.index, "num_chs": self.channels, "reduction": self.reduction, "module": self.module, "size": list(self.size)}


def feature_levels(resolved) -> tuple[FeatureLevel, ...]:
    """The levels of a resolved network: the last block at each nominal reduction (the spec's strides)."""
    spec: NetworkSpec = resolved.spec
    last_feature_stage = len(spec.stages) - spec.pre_logits_stages
    # (nominal reduction from the spec's strides, actual reduction from the strides run, flat block index)
    candidates: list[tuple[int, int, int]] = []
    nominal = actual = 1
    for index, block in enumerate(resolved.blocks):
        if block.section == "head" or (block.section == "stages" and block.stage_index >= last_feature_stage):
            continue
        nominal *= getattr(block.spec, "stride", 1)
        actual *= block.stride
        candidates.append((nominal, actual, index))
    levels: list[FeatureLevel] = []
    for position, (nominal, actual, index) in enumerate(candidates):
        if position + 1 < len(candidates) and candidates[position + 1][0] == nominal:
            continue  # not the last block at this reduction
        block = resolved.blocks[index]
        levels.append(FeatureLevel(len(levels), actual, block.out_channels, block.path, index, block.output_size))
    return tuple(levels)


def select_levels(levels: Sequence[FeatureLevel], indices: int | Sequence[int] | None) -> tuple[int, ...]:
    """Level indices from timm-style ``indices``: None = all, an int n = the last n, a sequence (negatives count from the end)."""
    count = len(levels)
    if indices is None:
        return tuple(range(count))
    if isinstance(indices, int):
        if not 1 <= indices <= count:
            raise ValueError(f"indices={indices} asks for the last {indices} levels, but there are {count} ({_describe(levels)})")
        return tuple(range(count - indices, count))
    chosen = []
    for index in indices:
        if not isinstance(index, int) or not -count <= index < count:
            raise ValueError(f"feature level index {index!r} is out of range: there are {count} levels ({_describe(levels)})")
        chosen.append(index % count)
    if not chosen:
        raise ValueError("out_indices is empty; give at least one level index")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"out_indices {tuple(indices)} name a level twice")
    return tuple(sorted(chosen))


def _describe(levels: Sequence[FeatureLevel]) -> str:
    return ", ".join(f"{level.index}: reduction {level.reduction}, {level.channels} ch" for level in levels)


def features_spec(spec: NetworkSpec, out_indices: Sequence[int] | int | None = None) -> NetworkSpec:
    """The spec cut after its last needed level, with a features head returning the levels ``out_indices``."""
    from .blocks.features import FeaturesHeadSpec
    from .resolve import resolve

    levels = resolve(spec).feature_info()
    chosen = select_levels(levels, out_indices)
    last = resolve(spec).blocks[levels[chosen[-1]].block]
    if last.section == "stem":
        stem, stages = spec.stem[: last.block_index + 1], ()
    else:
        stem = spec.stem
        kept = spec.stages[: last.stage_index + 1]
        final = dataclasses.replace(kept[-1], blocks=kept[-1].blocks[: last.block_index + 1])
        stages = kept[:-1] + (final,)
    return dataclasses.replace(spec, stem=stem, stages=stages, head=FeaturesHeadSpec(out_indices=chosen), pre_logits_stages=0)


class FeatureInfo:
    """timm-like view of the levels a model returns: ``channels()``, ``reduction()``, ``module_name()``.

    Iterating or indexing gives every level; the helpers report the selected ``out_indices`` unless
    given an index (or indices) of their own.
    """

    def __init__(self, levels: Sequence[FeatureLevel], out_indices: Sequence[int] | None = None) -> None:
        self.levels = tuple(levels)
        self.out_indices = tuple(range(len(self.levels))) if out_indices is None else tuple(out_indices)

    def _get(self, attribute: str, idx: int | Sequence[int] | None):
        if idx is None:
            return [getattr(self.levels[i], attribute) for i in self.out_indices]
        if isinstance(idx, int):
            return getattr(self.levels[idx], attribute)
        return [getattr(self.levels[i], attribute) for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None):
        return self._get("channels", idx)

    def reduction(self, idx: int | Sequence[int] | None = None):
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None):
        return self._get("module", idx)

    def get_dicts(self) -> list[dict]:
        return [self.levels[i].to_dict() for i in self.out_indices]

    def __getitem__(self, index: int) -> FeatureLevel:
        return self.levels[index]

    def __len__(self) -> int:
        return len(self.levels)

    def __iter__(self) -> Iterator[FeatureLevel]:
        return iter(self.levels)

    def __repr__(self) -> str:
        return f"FeatureInfo({_describe(self.levels)}; out_indices={self.out_indices})"
