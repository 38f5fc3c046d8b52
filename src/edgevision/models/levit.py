"""LeViT (Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference", ICCV 2021).

Configuration: Table 2 of the paper (LeViT-128S/128/192/256: widths C, key width D, heads N,
depths per stage) as written in the authors' code (facebookresearch/LeViT, ``levit.py``:
``specification`` entries C, D, N, X and ``model_factory``):

* stem ("b16"): four 3x3 stride-2 Conv+BN, Hardswish between them, widths C0/8, C0/4, C0/2, C0;
* stage i: X_i blocks of attention (N_i heads, key width D, value width 2D) + MLP (ratio 2);
* between stages: a shrink-attention block (key width D, C_i // D heads, value width 4D,
  stride 2) to C_{i+1}, followed by an MLP (ratio 2);
* head: mean over tokens, BatchNorm1d + Linear, plus the distillation head of the released
  models (outputs averaged at inference). Counted parameters include both heads.

Deploy form: every Linear+BatchNorm1d and Conv+BatchNorm folds into one Linear/Conv with bias
and the heads' BatchNorm folds into their Linear (the reference ``fuse``/``replace_batchnorm``).
Published (Table 3, 224x224): 128S 7.8M params / 305M FLOPs (multiply-adds) / 76.6% top-1 (distilled),
128 9.2M / 406M / 78.6%, 192 11.0M / 658M / 80.0%, 256 18.9M / 1120M / 81.6%.
"""

from __future__ import annotations

from ..blocks import ConvNormActSpec, LevitBlockSpec, LevitHeadSpec, LevitSubsampleSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model


def levit(name: str, widths: tuple[int, int, int], key_dim: int, heads: tuple[int, int, int], depths: tuple[int, int, int]) -> NetworkSpec:
    """A LeViT from the reference ``specification`` entries C (widths), D (key_dim), N (heads), X (depths)."""
    first = widths[0]
    stem = tuple(
        ConvNormActSpec(out_channels=first // divisor, kernel_size=3, stride=2, activation="hard_swish" if divisor > 1 else "identity")
        for divisor in (8, 4, 2, 1)
    )
    stages = []
    for index, (width, num_heads, depth) in enumerate(zip(widths, heads, depths)):
        shrink = ()
        if index > 0:  # shrink attention from the previous width: C_{i-1} // D heads, value width 4D
            shrink = (LevitSubsampleSpec(out_channels=width, key_dim=key_dim, num_heads=widths[index - 1] // key_dim),)
        blocks = (LevitBlockSpec(key_dim=key_dim, num_heads=num_heads),) * depth
        stages.append(StageSpec(blocks=shrink + blocks))
    return NetworkSpec(name=name, stem=stem, stages=tuple(stages), head=LevitHeadSpec(distillation=True), input_size=224)


# Table 2 / reference ``specification``: C (widths), D (key_dim), N (heads), X (depths)
@register_model("levit_128s", family="levit")
def levit_128s() -> NetworkSpec:
    return levit("levit_128s", (128, 256, 384), 16, (4, 6, 8), (2, 3, 4))


@register_model("levit_128", family="levit")
def levit_128() -> NetworkSpec:
    return levit("levit_128", (128, 256, 384), 16, (4, 8, 12), (4, 4, 4))


@register_model("levit_192", family="levit")
def levit_192() -> NetworkSpec:
    return levit("levit_192", (192, 288, 384), 32, (3, 5, 6), (4, 4, 4))


@register_model("levit_256", family="levit")
def levit_256() -> NetworkSpec:
    return levit("levit_256", (256, 384, 512), 32, (4, 6, 8), (4, 4, 4))
