"""EdgeNeXt (Maaz et al., "EdgeNeXt: Efficiently Amalgamated CNN-Transformer Architecture for Mobile
Vision Applications", ECCV Workshops 2022).

Configuration: the paper's Table 1 (EdgeNeXt-S stage layout) and Table 2 (XXS/XS/S) as written in the
authors' code (mmaaz60/EdgeNeXt, ``models/model.py``: ``edgenext_xx_small``/``x_small``/``small``):

* stem: 4x4 stride-4 conv + LayerNorm; 2x2 stride-2 LayerNorm + conv between stages;
* stage i: conv encoders with kernel 3, 5, 7, 9, and (stages 2-4) one SDTA encoder last, with
  2, 2, 3, 4 channel groups (``d2_scales``); only stage 2's SDTA adds the positional encoding;
  MLP expansion 4, LayerScale 1e-6;
* heads: 4 per SDTA for XXS and XS, 8 for S (the reference default);
* head: average pool, LayerNorm, Linear.

Native resolution 256 x 256. Published (Table 2, 256x256): XXS 1.3M params / 261M MAdds / 71.2% top-1,
XS 2.3M / 538M / 75.0%, S 5.6M / 1.3G / 79.4%.
"""

from __future__ import annotations

from ..blocks import EdgeNeXtConvEncoderSpec, EdgeNeXtHeadSpec, EdgeNeXtPatchConvSpec, EdgeNeXtSDTASpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

_KERNEL_SIZES = (3, 5, 7, 9)  # conv encoders per stage (Sec. 3, adaptive kernel sizes)
_NUM_SCALES = (2, 2, 3, 4)  # SDTA channel groups per stage (reference ``d2_scales``)
_SDTA_BLOCKS = (0, 1, 1, 1)  # SDTA encoders at the end of each stage (reference ``global_block``)
_POSITIONAL_ENCODING = (False, True, False, False)  # reference ``use_pos_embd_xca``


def edgenext(name: str, widths: tuple[int, ...], depths: tuple[int, ...], num_heads: int) -> NetworkSpec:
    stages = []
    for index, (width, depth) in enumerate(zip(widths, depths)):
        if index == 0:
            downsample = ()
        else:
            downsample = (EdgeNeXtPatchConvSpec(out_channels=width, stride=2, norm_position="before"),)
        sdta = _SDTA_BLOCKS[index]
        conv = EdgeNeXtConvEncoderSpec(kernel_size=_KERNEL_SIZES[index])
        attention = EdgeNeXtSDTASpec(
            num_scales=_NUM_SCALES[index], num_heads=num_heads, positional_encoding=_POSITIONAL_ENCODING[index]
        )
        stages.append(StageSpec(blocks=downsample + (conv,) * (depth - sdta) + (attention,) * sdta))
    return NetworkSpec(
        name=name,
        stem=(EdgeNeXtPatchConvSpec(out_channels=widths[0], stride=4, norm_position="after"),),
        stages=tuple(stages),
        head=EdgeNeXtHeadSpec(),
        channel_divisor=4,  # keeps the table's widths (88, 100, ...) at width 1.0
        input_size=256,
    )


# Table 2 / reference ``model.py``: dims, depths, heads
@register_model("edgenext_xx_small", family="edgenext")
def edgenext_xx_small() -> NetworkSpec:
    return edgenext("edgenext_xx_small", (24, 48, 88, 168), (2, 2, 6, 2), num_heads=4)


@register_model("edgenext_x_small", family="edgenext")
def edgenext_x_small() -> NetworkSpec:
    return edgenext("edgenext_x_small", (32, 64, 100, 192), (3, 3, 9, 3), num_heads=4)


@register_model("edgenext_small", family="edgenext")
def edgenext_small() -> NetworkSpec:
    return edgenext("edgenext_small", (48, 96, 160, 304), (3, 3, 9, 3), num_heads=8)
