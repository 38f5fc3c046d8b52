"""How a pruned width is written in the spec: a block wrapped with its exact, already-decided widths.

A registered spec holds *base* widths that the network's :class:`~edgevision.blocks.base.ChannelScale`
turns into channels through ``make_divisible``; derived widths (an inverted residual's ``C_in * t``,
a squeeze-excite's ``C * r``) follow from the input width. A pruned width is none of these: it is
an exact channel count chosen by importance. :class:`FixedWidthSpec` records it as plain data,

    FixedWidthSpec(block=InvertedResidualSpec(...), out_channels=24, mid_channels=88, se_channels=None)

whose ``widths()`` ignores the multiplier ("fixed" scaling) and whose ``build`` is the wrapped
block's own builder, so the pruned network is an ordinary :class:`~edgevision.NetworkSpec`: it
resolves, builds, counts, exports, benches and round-trips through JSON and checkpoints.
Only blocks whose resolved widths change are wrapped (:func:`with_widths`), so a pruned spec
reads as "the registered network, except these blocks".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Mapping

from ..blocks.base import BlockSpec, BlockWidths, ChannelScale, ResolvedBlock
from ..network import NetworkSpec, StageSpec
from ..resolve import ResolvedNetwork, resolve
from ..spec import check, check_positive

__all__ = ["FixedWidthSpec", "BlockWidthChoice", "replace_blocks", "unwrap", "with_widths"]

#: (out_channels, mid_channels, se_channels) of one block, as resolved
BlockWidthChoice = tuple[int, "int | None", "int | None"]


@dataclass(frozen=True, kw_only=True)
class FixedWidthSpec(BlockSpec):
    """``block`` with its resolved widths fixed to exact channel counts (a pruned block)."""

    kind: ClassVar[str] = "fixed_widths"

    block: BlockSpec
    out_channels: int
    mid_channels: int | None = None
    se_channels: int | None = None

    def validate(self) -> None:  # the wrapped block validated itself; its stride is its own
        check(self, "block", not isinstance(self.block, FixedWidthSpec), "a block spec that is not already fixed")
        check_positive(self, "out_channels", "mid_channels", "se_channels")

    @property
    def stride(self) -> int:
        return getattr(self.block, "stride", 1)

    @property
    def num_classes(self) -> int | None:  # a fixed head still names its classes (NetworkSpec.validate)
        return getattr(self.block, "num_classes", None)

    def with_classes(self, num_classes: int) -> "FixedWidthSpec":
        """A pruned head with another class count: the logits width follows it, the pruned hidden width stays."""
        if self.num_classes is None:
            raise ValueError(f"{type(self.block).__name__} is not a classifier head, so it has no num_classes to change")
        return dataclasses.replace(self, block=dataclasses.replace(self.block, num_classes=num_classes), out_channels=num_classes)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        return BlockWidths(out_channels=self.out_channels, mid_channels=self.mid_channels, se_channels=self.se_channels)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        self.block.check_widths(in_channels, widths)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        return self.block.output_size(input_size)

    def build(self, block: ResolvedBlock):
        return self.block.build(dataclasses.replace(block, spec=self.block))


def unwrap(block: BlockSpec) -> BlockSpec:
    """The registered block kind under a (possibly) fixed-width wrapper."""
    return block.block if isinstance(block, FixedWidthSpec) else block


def _widths_of(block: ResolvedBlock) -> BlockWidthChoice:
    return (block.out_channels, block.mid_channels, block.se_channels)


def with_widths(resolved: ResolvedNetwork, targets: Mapping[int, BlockWidthChoice]) -> NetworkSpec:
    """The network spec whose block ``i`` (index into ``resolved.blocks``) resolves to ``targets[i]``.

    Blocks not in ``targets`` keep their resolved widths. A block is wrapped in
    :class:`FixedWidthSpec` only when the plain spec would resolve to other widths (its own widths
    changed, or they derive from an input width that changed), so untouched blocks stay as registered.
    """
    spec = resolved.spec
    wanted = [targets.get(i, _widths_of(b)) for i, b in enumerate(resolved.blocks)]
    wrap: set[int] = {i for i, b in enumerate(resolved.blocks) if wanted[i] != _widths_of(b)}
    for _ in range(len(resolved.blocks) + 1):  # each pass wraps at least one more block, or stops
        candidate = _rebuild(spec, resolved, wanted, wrap)
        try:
            now = resolve(candidate, input_size=resolved.input_size)
        except ValueError:
            now = None
        if now is not None:
            wrong = {i for i, b in enumerate(now.blocks) if _widths_of(b) != wanted[i]} - wrap
            if not wrong:
                return candidate
        else:  # a plain block refused its new input width: fix every block whose input changes
            wrong = set(range(len(resolved.blocks))) - wrap
        if not wrong:
            break
        wrap |= wrong
    return _rebuild(spec, resolved, wanted, set(range(len(resolved.blocks))))


def replace_blocks(resolved: ResolvedNetwork, specs: Mapping[int, BlockSpec]) -> NetworkSpec:
    """``resolved.spec`` with block ``i`` (index into ``resolved.blocks``) replaced by ``specs[i]``."""
    return _assemble(resolved.spec, [specs.get(i, b.spec) for i, b in enumerate(resolved.blocks)])


def _rebuild(spec: NetworkSpec, resolved: ResolvedNetwork, wanted: list[BlockWidthChoice], wrap: set[int]) -> NetworkSpec:
    blocks = []
    for i, block in enumerate(resolved.blocks):
        inner = unwrap(block.spec)
        if i in wrap:
            out, mid, se = wanted[i]
            blocks.append(FixedWidthSpec(block=inner, out_channels=out, mid_channels=mid, se_channels=se))
        else:
            blocks.append(block.spec)
    return _assemble(spec, blocks)


def _assemble(spec: NetworkSpec, blocks: list[BlockSpec]) -> NetworkSpec:
    stem = tuple(blocks[: len(spec.stem)])
    stages, at = [], len(spec.stem)
    for stage in spec.stages:
        stages.append(StageSpec(blocks=tuple(blocks[at : at + stage.depth])))
        at += stage.depth
    head = blocks[at] if spec.head is not None else None  # a backbone-only spec has no head block
    return dataclasses.replace(spec, stem=stem, stages=tuple(stages), head=head)
