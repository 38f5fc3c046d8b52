"""The resolve step: network spec + width multiplier + input resolution -> flat list of blocks.

Pure (no torch): the module builder, the cost model, latency tables and search spaces all read
the same :class:`ResolvedNetwork`, so "the network" means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Iterator

from .blocks.base import BlockSpec, ChannelScale, ResolvedBlock
from .network import NetworkSpec
from .spec import Spec

__all__ = ["ResolvedNetwork", "resolve", "resolve_block"]


@dataclass(frozen=True, kw_only=True)
class ResolvedNetwork(Spec):
    kind: ClassVar[str] = "resolved_network"

    spec: NetworkSpec
    input_size: tuple[int, int]
    blocks: tuple[ResolvedBlock, ...]

    def __iter__(self) -> Iterator[ResolvedBlock]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)

    def section(self, name: str) -> tuple[ResolvedBlock, ...]:
        return tuple(b for b in self.blocks if b.section == name)

    def stage(self, index: int) -> tuple[ResolvedBlock, ...]:
        return tuple(b for b in self.blocks if b.section == "stages" and b.stage_index == index)

    @property
    def num_stages(self) -> int:
        return len(self.spec.stages)

    @property
    def head(self) -> ResolvedBlock:
        return self.blocks[-1]


def resolve_block(
    block: BlockSpec,
    in_channels: int,
    input_size: tuple[int, int],
    scale: ChannelScale = ChannelScale(1.0, 1),
    *,
    section: str = "stages",
    stage_index: int = 0,
    block_index: int = 0,
) -> ResolvedBlock:
    """Decide one block's widths and output size for a given input (what ``resolve`` does per block).

    The default scale (multiplier 1, divisor 1) keeps the spec's widths exactly: the way to build or
    measure a single block outside a network (block tests, latency tables).
    """
    widths = block.widths(in_channels, scale)
    block.check_widths(in_channels, widths)
    output_size = block.output_size(input_size)
    if min(output_size) < 1:
        raise ValueError(f"input {input_size[0]}x{input_size[1]} is too small for this network")
    return ResolvedBlock(
        section=section,
        stage_index=stage_index,
        block_index=block_index,
        spec=block,
        in_channels=in_channels,
        out_channels=widths.out_channels,
        mid_channels=widths.mid_channels,
        se_channels=widths.se_channels,
        stride=getattr(block, "stride", 1),
        input_size=input_size,
        output_size=output_size,
    )


def resolve(
    spec: NetworkSpec, width_multiplier: float | None = None, input_size: int | tuple[int, int] | None = None
) -> ResolvedNetwork:
    """Decide every block's channels, stride and input H x W.

    ``width_multiplier`` and ``input_size`` default to the spec's own (the published model).
    """
    if not isinstance(spec, NetworkSpec):
        raise TypeError(f"resolve() needs a NetworkSpec, got {type(spec).__name__}")
    if width_multiplier is not None and width_multiplier != spec.width_multiplier:
        spec = spec.with_width(width_multiplier)
    size = spec.input_size if input_size is None else input_size
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or any(not isinstance(s, int) or s < 1 for s in hw):
        raise ValueError(f"resolve input_size must be a positive int or (H, W), got {size!r}")
    scale = spec.channel_scale

    blocks: list[ResolvedBlock] = []
    channels = spec.in_channels

    def add(section: str, stage_index: int, block_index: int, block: BlockSpec) -> None:
        nonlocal channels, hw
        where = f"{section}[{stage_index}][{block_index}]" if section == "stages" else f"{section}[{block_index}]"
        try:
            resolved = resolve_block(block, channels, hw, scale, section=section, stage_index=stage_index, block_index=block_index)
        except ValueError as error:
            raise ValueError(f"{spec.name} {where}: {error}") from None
        blocks.append(resolved)
        channels, hw = resolved.out_channels, resolved.output_size

    for index, block in enumerate(spec.stem):
        add("stem", -1, index, block)
    for stage_index, stage in enumerate(spec.stages):
        for index, block in enumerate(stage.blocks):
            add("stages", stage_index, index, block)
    add("head", -1, 0, spec.head)
    return ResolvedNetwork(spec=spec, input_size=blocks[0].input_size, blocks=tuple(blocks))
