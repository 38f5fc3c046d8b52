"""Next-ViT (Li et al., "Next-ViT: Next Generation Vision Transformer for Efficient Deployment in
Realistic Industrial Scenarios", 2022).

Configuration: the paper's architecture table (Next-ViT-S/B: stem 3x3 convs 64/2, 32, 64, 64/2; stage output
widths 96, 256, 512, 1024; depths 3, 4, 10 / 20, 3; E-MHSA spatial reduction 8, 4, 2, 1; head dim
32; NCB MLP ratio 3, NTB MLP ratio 2; mix ratio 0.75) in the "Next Hybrid Strategy" layout of the
authors' release (bytedance/Next-ViT ``classification/nextvit.py``): stage 1 = NCB x 3 (96);
stage 2 = NCB x 3 (192) + NTB (256); stage 3 = (NCB x 4 (384) + NTB (512)) x depth / 5;
stage 4 = NCB x 2 (768) + NTB (1024); the first block of stages 2-4 has stride 2; head =
BN -> pool -> fc. Published (paper and release README, ImageNet-1k at 224): Next-ViT-S
31.7M params, 5.8G FLOPs (multiply-accumulates), 82.5%; Next-ViT-B 44.8M, 8.3G, 83.2%.
"""

from __future__ import annotations

from ..blocks import BlockSpec, ConvNormActSpec, NextConvBlockSpec, NextTransformerBlockSpec, NextViTHeadSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

STEM_WIDTHS = (64, 32, 64, 64)  # 3x3 convs; the first and the last with stride 2
SR_RATIOS = (8, 4, 2, 1)  # E-MHSA spatial reduction per stage (stage 1 has no NTB)


def _stage(pattern: tuple[tuple[str, int], ...], repeats: int, stride: int, sr_ratio: int) -> StageSpec:
    """``pattern`` of (block type, width) repeated ``repeats`` times; the stage's first block carries ``stride``."""
    blocks: list[BlockSpec] = []
    for kind, width in pattern * repeats:
        block_stride = stride if not blocks else 1
        if kind == "ncb":
            blocks.append(NextConvBlockSpec(out_channels=width, stride=block_stride))
        else:
            blocks.append(NextTransformerBlockSpec(out_channels=width, stride=block_stride, sr_ratio=sr_ratio))
    return StageSpec(blocks=tuple(blocks))


def nextvit_stem() -> tuple[ConvNormActSpec, ...]:
    """3x3 conv-BN-ReLU x 4 (64/2, 32, 64, 64/2): TensorRT-friendly, no 7x7 or max pool (TRT-ViT uses it too)."""
    return tuple(
        ConvNormActSpec(out_channels=width, kernel_size=3, stride=2 if index in (0, 3) else 1)
        for index, width in enumerate(STEM_WIDTHS)
    )


def nextvit(name: str, stage3_depth: int) -> NetworkSpec:
    stem = nextvit_stem()
    stages = (
        _stage((("ncb", 96),), 3, stride=1, sr_ratio=SR_RATIOS[0]),
        _stage((("ncb", 192),) * 3 + (("ntb", 256),), 1, stride=2, sr_ratio=SR_RATIOS[1]),
        _stage((("ncb", 384),) * 4 + (("ntb", 512),), stage3_depth // 5, stride=2, sr_ratio=SR_RATIOS[2]),
        _stage((("ncb", 768),) * 2 + (("ntb", 1024),), 1, stride=2, sr_ratio=SR_RATIOS[3]),
    )
    return NetworkSpec(name=name, stem=stem, stages=stages, head=NextViTHeadSpec(), channel_divisor=8)


@register_model("nextvit_small", family="nextvit")
def nextvit_small() -> NetworkSpec:
    return nextvit("nextvit_small", stage3_depth=10)


@register_model("nextvit_base", family="nextvit")
def nextvit_base() -> NetworkSpec:
    return nextvit("nextvit_base", stage3_depth=20)
