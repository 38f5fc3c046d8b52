"""The resolve step: network spec + width multiplier + input resolution -> flat list of blocks.

Pure (no torch): the module builder, the cost model, latency tables and search spaces all read
the same :class:`ResolvedNetwork`, so "the network" means one thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Iterator

from .blocks.base import BlockSpec, ChannelScale, ResolvedBlock
from .network import NetworkSpec
from .spec import Spec

if TYPE_CHECKING:
    from .features import FeatureLevel

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
    def head(self) -> ResolvedBlock | None:
        """The head block; None for a backbone-only spec (``NetworkSpec.head=None``)."""
        return self.blocks[-1] if self.blocks[-1].section == "head" else None

    @property
    def body(self) -> tuple[ResolvedBlock, ...]:
        """Stem and stage blocks, in order (everything but the head)."""
        return tuple(b for b in self.blocks if b.section != "head")

    @property
    def num_features(self) -> int:
        """Channels of the last feature map (what the head reads)."""
        return self.body[-1].out_channels

    def feature_info(self) -> "tuple[FeatureLevel, ...]":
        """The feature pyramid: the last block output at each reduction (``edgevision.features``)."""
        from .features import feature_levels

        return feature_levels(self)


def resolve_block(
    block: BlockSpec,
    in_channels: int,
    input_size: tuple[int, int],
    scale: ChannelScale = ChannelScale(1.0, 1),
    *,
    section: str = "stages",
    stage_index: int = 0,
    block_index: int = 0,
    dilation: int = 1,
    stride_to_dilation: bool = False,
) -> ResolvedBlock:
    """Decide one block's widths and output size for a given input (what ``resolve`` does per block).

    The default scale (multiplier 1, divisor 1) keeps the spec's widths exactly: the way to build or
    measure a single block outside a network (block tests, latency tables). ``dilation`` and
    ``stride_to_dilation`` (run the block at stride 1; its later convs dilate by its stride) are how
    ``output_stride`` reaches a block.
    """
    widths = block.widths(in_channels, scale)
    block.check_widths(in_channels, widths)
    stride = getattr(block, "stride", 1)
    if (dilation != 1 or (stride_to_dilation and stride > 1)) and not block.supports_dilation:
        raise ValueError(
            f"{type(block).__name__} cannot dilate (output_stride < 32 needs it): "
            f"{DILATION_REFUSAL.get(block.kind, 'it is not a same-padded convolutional block')}"
        )
    if stride_to_dilation and stride > 1:
        output_size, stride = input_size, 1  # same padding at stride 1 keeps H x W
    else:
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
        stride=stride,
        input_size=input_size,
        output_size=output_size,
        dilation=dilation,
    )


# why a block kind cannot take ``output_stride`` (the general reason covers the rest)
DILATION_REFUSAL = {
    "levit_block": "its attention bias is tied to the token grid",
    "levit_attention_subsample": "its attention bias is tied to the token grid",
    "efficientformer_meta3d": "its attention bias is tied to the token grid",
    "next_transformer_block": "its attention subsamples keys by a fixed ratio",
    "edgenext_sdta_encoder": "it mixes tokens by attention, not by a dilatable conv",
    "inception_module": "its reduction branches use valid (unpadded) convs",
    "inception_conv": "it uses valid (unpadded) convs",
    "inception_pool": "it uses valid (unpadded) pooling",
    "edgenext_patch_conv": "its stride-2 patchify conv has an even kernel",
    "hornet_downsample": "its stride-2 patchify conv has an even kernel",
    "efficientformer_embedding": "it is not supported yet",
    "adaptive_sampling": "its saliency sampler resamples the grid, not a conv",
    "diverse_branch_resnet_basic": "its 1x1-kxk and average-pool training branches are not dilated yet",
    "next_conv_block": "it is not supported yet (its stride-2 patch embedding is a 2x2 average pool)",
}


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
    # output_stride (DeepLab's rule, as in timm): once the reduction would pass output_stride, a block runs
    # at stride 1 and keeps the dilation it had; every block after it dilates by the stride it dropped
    reduction, dilation = 1, 1

    def add(section: str, stage_index: int, block_index: int, block: BlockSpec) -> None:
        nonlocal channels, hw, reduction, dilation
        where = f"{section}[{stage_index}][{block_index}]" if section == "stages" else f"{section}[{block_index}]"
        stride = getattr(block, "stride", 1)
        to_dilation = spec.output_stride is not None and stride > 1 and reduction * stride > spec.output_stride
        try:
            resolved = resolve_block(
                block, channels, hw, scale, section=section, stage_index=stage_index, block_index=block_index,
                dilation=1 if section == "head" else dilation, stride_to_dilation=to_dilation,
            )
        except ValueError as error:
            raise ValueError(f"{spec.name} {where}: {error}" + (f"; {spec.name} supports output_stride=32 only" if "cannot dilate" in str(error) else "")) from None
        blocks.append(resolved)
        channels, hw = resolved.out_channels, resolved.output_size
        if to_dilation:
            dilation *= stride
        else:
            reduction *= stride

    for index, block in enumerate(spec.stem):
        add("stem", -1, index, block)
    for stage_index, stage in enumerate(spec.stages):
        for index, block in enumerate(stage.blocks):
            add("stages", stage_index, index, block)
    if spec.head is not None:
        add("head", -1, 0, spec.head)
    return ResolvedNetwork(spec=spec, input_size=blocks[0].input_size, blocks=tuple(blocks))
