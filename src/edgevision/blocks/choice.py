"""Choice blocks: a layer that is one of several block specs, so a supernet is a network spec too.

FBNet (Wu et al. 2019, Sec. 3.2) and ProxylessNAS (Cai et al. 2019, Sec. 3.1) search a "layer-wise"
space: every searchable layer picks one candidate block, and "skip" is one of the candidates. Here
that layer is :class:`ChoiceBlockSpec`, whose ``candidates`` are ordinary block specs (skip is
:class:`IdentitySpec`, a block kind like any other, never ``None``). A network spec holding choice
blocks is a supernet: frozen, hashable, JSON round trip, resolvable like any network. Every
candidate resolves with the choice block's input, so each one has its own block key and latency
table entry (:func:`resolve_candidates`); the expected latency of the supernet is a sum over those
entries weighted by the architecture distribution.

* ``resolve`` treats a choice block as one block whose output width all candidates share;
* ``build`` gives a :class:`ChoiceBlock` holding every candidate's module, mixed by path weights the
  search sets (soft Gumbel-softmax weights for FBNet, two binary gates for ProxylessNAS);
* :func:`choose` turns a supernet and one index per choice block into the plain network it names
  (identity candidates dropped), which is what ships.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Sequence

import torch
from torch import nn

from ..spec import check
from .base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock

if TYPE_CHECKING:
    from ..network import NetworkSpec

__all__ = ["ChoiceBlock", "ChoiceBlockSpec", "IdentitySpec", "choice_blocks", "choose", "is_supernet", "resolve_candidates"]


@dataclass(frozen=True, kw_only=True)
class IdentitySpec(BlockSpec):
    """The skip candidate: output = input (stride 1, width kept). Dropped when a network ships."""

    kind: ClassVar[str] = "identity"
    allowed_strides: ClassVar[tuple[int, ...]] = (1,)
    preserves_channels: ClassVar[bool] = True

    stride: int = 1

    def build(self, block: ResolvedBlock) -> nn.Module:
        return nn.Identity()


@dataclass(frozen=True, kw_only=True)
class ChoiceBlockSpec(BlockSpec):
    """One searchable layer: exactly one of ``candidates`` is used. All share stride and output width."""

    kind: ClassVar[str] = "choice"

    candidates: tuple[BlockSpec, ...]
    name: str = ""  # a stable label for the layer ("s2.b1"); search parameters are named after it

    @property
    def stride(self) -> int:
        return getattr(self.candidates[0], "stride", 1)

    def validate(self) -> None:
        check(self, "candidates", len(self.candidates) >= 1, "a non-empty tuple of block specs")
        check(self, "candidates", not any(isinstance(c, ChoiceBlockSpec) for c in self.candidates), "block specs that are not choices themselves")
        strides = sorted({getattr(c, "stride", 1) for c in self.candidates})
        check(self, "candidates", len(strides) == 1, f"candidates with one stride (found strides {strides})")
        check(self, "candidates", len(set(self.candidates)) == len(self.candidates), "distinct candidates")

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        outs = [c.widths(in_channels, scale).out_channels for c in self.candidates]
        if len(set(outs)) != 1:
            listed = ", ".join(f"{c.kind}->{o}" for c, o in zip(self.candidates, outs))
            raise ValueError(f"ChoiceBlockSpec {self.name or ''} candidates must give one output width from {in_channels} channels, got {listed}")
        return BlockWidths(out_channels=outs[0])

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        for candidate in self.candidates:
            candidate.check_widths(in_channels, candidate.widths(in_channels, _EXACT))

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self.candidates[0].output_size(input_size)

    def build(self, block: ResolvedBlock) -> nn.Module:
        return ChoiceBlock([c.spec.build(c) for c in resolve_candidates(block)])


_EXACT = ChannelScale(1.0, 1)


def resolve_candidates(block: ResolvedBlock) -> tuple[ResolvedBlock, ...]:
    """Every candidate of a resolved choice block, resolved in its place (same path, input and width).

    The candidates' block keys (``lut.block_key``) are what a latency table prices. A resolved
    block that is not a choice is its own single candidate.
    """
    from ..resolve import resolve_block

    spec = block.spec
    if not isinstance(spec, ChoiceBlockSpec):
        return (block,)
    # candidates are resolved at the widths the choice block resolved to: the network's multiplier was
    # applied to the choice as a whole, so each candidate is pinned to exactly that output width
    return tuple(
        resolve_block(
            _pin_width(candidate, block.out_channels),
            block.in_channels,
            block.input_size,
            _EXACT,
            section=block.section,
            stage_index=block.stage_index,
            block_index=block.block_index,
        )
        for candidate in spec.candidates
    )


def _pin_width(candidate: BlockSpec, out_channels: int) -> BlockSpec:
    if candidate.preserves_channels or not hasattr(candidate, "out_channels") or candidate.out_channels == out_channels:
        return candidate
    return dataclasses.replace(candidate, out_channels=out_channels)  # type: ignore[call-arg]


class ChoiceBlock(nn.Module):
    """Every candidate's module; ``forward`` mixes the outputs by ``path_weights`` (K,) or runs ``active``.

    The search writes ``path_weights`` before each forward (a soft Gumbel-softmax sample for FBNet,
    straight-through binary gates for ProxylessNAS); paths whose weight is exactly 0 are not run,
    which is how ProxylessNAS keeps only two paths in memory. With no weights it runs ``active``.
    """

    def __init__(self, candidates: Sequence[nn.Module]) -> None:
        super().__init__()
        self.candidates = nn.ModuleList(candidates)
        self.active = 0
        self.path_weights: torch.Tensor | None = None
        self.live_paths: tuple[int, ...] | None = None  # indices to run; None: every path with a non-zero weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.path_weights
        if weights is None:
            return self.candidates[self.active](x)
        paths = self.live_paths if self.live_paths is not None else range(len(self.candidates))
        return sum(weights[k] * self.candidates[k](x) for k in paths)  # (B, C, H, W) -> (B, C', H/s, W/s)


def is_supernet(spec: "NetworkSpec") -> bool:
    return any(isinstance(block, ChoiceBlockSpec) for stage in spec.stages for block in stage.blocks) or any(
        isinstance(block, ChoiceBlockSpec) for block in spec.stem
    )


def choice_blocks(spec: "NetworkSpec") -> list[ChoiceBlockSpec]:
    """The choice blocks of a supernet in network order (stem, then stages)."""
    blocks = list(spec.stem) + [block for stage in spec.stages for block in stage.blocks]
    return [block for block in blocks if isinstance(block, ChoiceBlockSpec)]


def choose(spec: "NetworkSpec", indices: Sequence[int] | Callable[[ChoiceBlockSpec], int], *, name: str | None = None) -> "NetworkSpec":
    """The plain network a supernet names: candidate ``indices[i]`` for the i-th choice block, skips dropped.

    ``indices`` is a sequence (one per choice block, :func:`choice_blocks` order) or a function of
    the choice block. A stage whose blocks are all skips keeps nothing, which validation refuses:
    searchable stages start with a non-skip block.
    """
    from ..network import StageSpec

    choices = choice_blocks(spec)
    if not callable(indices):
        picks = list(indices)
        if len(picks) != len(choices):
            raise ValueError(f"choose() needs {len(choices)} indices for {spec.name}, got {len(picks)}")
        lookup = iter(picks)
        indices = lambda block: next(lookup)  # noqa: E731 - consumed in network order
    pick = indices

    def concrete(blocks: Sequence[BlockSpec]) -> tuple[BlockSpec, ...]:
        out = []
        for block in blocks:
            if isinstance(block, ChoiceBlockSpec):
                index = pick(block)
                if not 0 <= index < len(block.candidates):
                    raise ValueError(f"choice {block.name or block.kind} has {len(block.candidates)} candidates, index {index} asked")
                block = block.candidates[index]
            if not isinstance(block, IdentitySpec):
                out.append(block)
        return tuple(out)

    stages = []
    for index, stage in enumerate(spec.stages):
        blocks = concrete(stage.blocks)
        if not blocks:
            raise ValueError(f"{spec.name} stage {index}: every block chose skip; the first block of a stage must not offer IdentitySpec")
        stages.append(StageSpec(blocks=blocks))
    return dataclasses.replace(spec, name=name or spec.name, stem=concrete(spec.stem), stages=tuple(stages))
