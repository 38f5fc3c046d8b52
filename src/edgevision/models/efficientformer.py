"""EfficientFormer (Li et al., "EfficientFormer: Vision Transformers at MobileNet Speed", NeurIPS 2022).

Configuration: the paper's Table 1/Sec. 4 models L1, L3, L7 as written in the authors' code
(snap-research/EfficientFormer, ``models/efficientformer.py``: ``EfficientFormer_width``,
``EfficientFormer_depth``, ``vit_num``):

* stem: two 3x3 stride-2 Conv+BN+ReLU to C1/2 and C1;
* four stages of Meta4D blocks (pooling mixer, Conv-BN MLP ratio 4); the last ``vit_num`` blocks
  of stage 4 are Meta3D (attention with attention bias, 8 heads of key width 32, linear MLP ratio 4);
* a 3x3 stride-2 Conv+BN embedding between stages; LayerScale 1e-5 everywhere;
* head: LayerNorm, mean over tokens, Linear, plus the distillation head (``distillation=True`` is
  the reference default and the released checkpoints have it). Counted parameters include both heads.

Published (Table 1, 224x224): L1 12.3M params / 1.3G MACs / 79.2% top-1, L3 31.3M / 3.9G / 82.4%,
L7 82.1M / 10.2G / 83.3%. The reference code counts 12,289,928 / 31,406,000 / 82,229,328 with the
distillation head (11,840,928 / 30,893,000 / 81,460,328 without it).
"""

from __future__ import annotations

from ..blocks import (
    EfficientFormerEmbeddingSpec,
    EfficientFormerHeadSpec,
    EfficientFormerMeta3DSpec,
    EfficientFormerMeta4DSpec,
)
from ..network import NetworkSpec, StageSpec
from ..registry import register_model


def efficientformer(name: str, widths: tuple[int, ...], depths: tuple[int, ...], attention_blocks: int) -> NetworkSpec:
    """An EfficientFormer: ``widths``/``depths`` per stage; the last ``attention_blocks`` of stage 4 are Meta3D."""
    if not 0 <= attention_blocks <= depths[-1]:
        raise ValueError(f"efficientformer attention_blocks must be in [0, {depths[-1]}] (the last stage's depth), got {attention_blocks}")
    stem = (
        EfficientFormerEmbeddingSpec(out_channels=widths[0] // 2, activation="relu"),
        EfficientFormerEmbeddingSpec(out_channels=widths[0], activation="relu"),
    )
    stages = []
    for index, (width, depth) in enumerate(zip(widths, depths)):
        embedding = (EfficientFormerEmbeddingSpec(out_channels=width),) if index > 0 else ()
        attention = attention_blocks if index == len(widths) - 1 else 0
        blocks = (EfficientFormerMeta4DSpec(),) * (depth - attention) + (EfficientFormerMeta3DSpec(),) * attention
        stages.append(StageSpec(blocks=embedding + blocks))
    return NetworkSpec(
        name=name, stem=stem, stages=tuple(stages), head=EfficientFormerHeadSpec(distillation=True), input_size=224
    )


# Reference ``EfficientFormer_width`` / ``EfficientFormer_depth`` / ``vit_num``
@register_model("efficientformer_l1", family="efficientformer")
def efficientformer_l1() -> NetworkSpec:
    return efficientformer("efficientformer_l1", (48, 96, 224, 448), (3, 2, 6, 4), attention_blocks=1)


@register_model("efficientformer_l3", family="efficientformer")
def efficientformer_l3() -> NetworkSpec:
    return efficientformer("efficientformer_l3", (64, 128, 320, 512), (4, 4, 12, 6), attention_blocks=4)


@register_model("efficientformer_l7", family="efficientformer")
def efficientformer_l7() -> NetworkSpec:
    return efficientformer("efficientformer_l7", (96, 192, 384, 768), (6, 6, 18, 8), attention_blocks=8)
