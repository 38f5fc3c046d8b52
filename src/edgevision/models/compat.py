"""timm / torchvision-compatible variants of families whose zoo model follows the authors' release.

Where the paper's network (the authors' release, which our zoo model follows and counts against)
and the timm / torchvision re-implementation differ in structure, the same weights cannot serve
both, so the library's layout is registered beside it under the suffix ``_timm`` or
``_tv``. Each variant loads that library's checkpoint with equal logits (tests/reference) and
is documented in docs/zoo.md; the differences are listed per model below.
"""

from __future__ import annotations

from ..network import NetworkSpec, StageSpec
from ..registry import register_model
from .resnet import RESNET50_DEPTHS, resnet
from .senet import SE_REDUCTION

#: our release-layout model -> its library-compatible variant (named in import errors)
COMPAT_VARIANTS: dict[str, str] = {}


def _variant(ours: str, name: str, family: str):
    COMPAT_VARIANTS[ours] = name
    return register_model(name, family=family)


@_variant("skresnext50_32x4d", "skresnext50_32x4d_timm", family="sknet")
def skresnext50_32x4d_timm() -> NetworkSpec:
    """timm ``skresnext50_32x4d``: the stem max pool is padded (torchvision's 3x3/2, pad 1) instead of
    the Caffe release's unpadded, rounded-up pool; the weights are the same tensors."""
    return resnet("skresnext50_32x4d_timm", "selective_kernel", RESNET50_DEPTHS, groups=32, width_per_group=4)


@_variant("seresnet50", "seresnet50_timm", family="senet")
def seresnet50_timm() -> NetworkSpec:
    """timm ``seresnet50``: the "v1.5" layout, stride on the 3x3 conv (the Caffe release strides the
    first 1x1; 4.1 vs 3.87 GMACs) and a padded stem max pool; same tensors and shapes."""
    return resnet("seresnet50_timm", "bottleneck", RESNET50_DEPTHS, se_reduction=SE_REDUCTION)


@_variant("xception", "xception_timm", family="xception")
def xception_timm() -> NetworkSpec:
    """timm ``legacy_xception`` (the Keras weights ported to PyTorch): BatchNorm eps 1e-5 where Keras
    uses 1e-3; same tensors and shapes."""
    from .xception import xception_network

    return xception_network("xception_timm", norm_eps=1e-5)


def _with_norm_scale(spec: NetworkSpec, name: str) -> NetworkSpec:
    """The same network with a BatchNorm gamma in every Inception module (``norm_scale=True``)."""
    import dataclasses

    def scaled(block):
        return dataclasses.replace(block, norm_scale=True) if hasattr(block, "norm_scale") else block

    stages = tuple(dataclasses.replace(stage, blocks=tuple(scaled(b) for b in stage.blocks)) for stage in spec.stages)
    return dataclasses.replace(spec, name=name, stem=tuple(scaled(b) for b in spec.stem), stages=stages)


@_variant("inception_v4", "inception_v4_timm", family="inception")
def inception_v4_timm() -> NetworkSpec:
    """timm ``inception_v4`` (Cadene's port of the TF-slim weights): every BatchNorm has a scale (gamma),
    where the release's ``slim.batch_norm`` has none; eps 1e-3 as the release. 31,584 more parameters."""
    from .inception import inception_v4

    return _with_norm_scale(inception_v4(), "inception_v4_timm")


@_variant("inception_resnet_v2", "inception_resnet_v2_timm", family="inception")
def inception_resnet_v2_timm() -> NetworkSpec:
    """timm ``inception_resnet_v2``: BatchNorm with a scale (gamma), the release's without; eps 1e-3."""
    from .inception import inception_resnet_v2

    return _with_norm_scale(inception_resnet_v2(), "inception_resnet_v2_timm")


def _shufflenet_v2_tv(size: str):
    def spec() -> NetworkSpec:
        """torchvision ``shufflenet_v2_x*``: ``chunk`` split and shuffle at the end of each unit, both
        first-unit branches ``out // 2``, classifier with a bias and no dropout (the megvii release:
        shuffle at the start, the left branch keeps its width, no bias)."""
        from .shufflenet_v2 import shufflenet_v2

        return shufflenet_v2(f"shufflenet_v2_x{size}_tv", f"{size.replace('_', '.')}x", layout="torchvision")

    return spec


for _size in ("0_5", "1_0", "1_5", "2_0"):
    _variant(f"shufflenet_v2_x{_size}", f"shufflenet_v2_x{_size}_tv", family="shufflenet_v2")(_shufflenet_v2_tv(_size))


@_variant("fbnetc_100", "fbnetc_100_timm", family="fbnet")
def fbnetc_100_timm() -> NetworkSpec:
    """timm ``fbnetc_100`` (its EfficientNet builder): no conv bias anywhere (the BatchNorms carry the
    shifts; the release puts a bias before every BatchNorm), and the three expansion-1 blocks (the
    16-channel first block, the two 24-channel ones) keep a 1x1 C -> C "expand" conv + BN + ReLU where
    the release has none: 288 + 2 x 624 = 1,536 more weights than the bias-free release (5,570,664).
    Stages as timm's arch def (seven; the release's 64/112 and 184/352 stages are split), so the
    key map is timm's ``blocks.{stage}.{block}`` directly."""
    import dataclasses

    from .fbnet import FBNET_C, fbnet

    def timm_block(block):
        return dataclasses.replace(block, conv_bias=False, expand_at_ratio_one=True)

    blocks = [tuple(timm_block(block) for block in stage.blocks) for stage in FBNET_C]
    split = blocks[:3] + [blocks[3][:4], blocks[3][4:], blocks[4][:4], blocks[4][4:]]  # timm: c64 | c112, c184 | c352
    stages = tuple(StageSpec(blocks=stage) for stage in split)
    return fbnet("fbnetc_100_timm", stages, 1984, conv_bias=False)
