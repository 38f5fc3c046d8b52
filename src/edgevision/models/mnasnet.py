"""MnasNet (Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile", CVPR 2019).

Two releases of the searched network:

* ``mnasnet_100`` is torchvision's ``mnasnet1_0``: MnasNet-B1 (the first arXiv version's network,
  the authors' TF code ``mnasnet_b1``), which has no squeeze-excite. Configuration as in the TF
  block strings ``r{n}_k{k}_s{s}_e{e}_i{in}_o{out}``: a 3x3 depthwise-separable conv (32 -> 16, no
  activation after the pointwise conv), then MBConv stacks (e3 k3 24 x3, e3 k5 40 x3, e6 k5 80 x3,
  e6 k3 96 x2, e6 k5 192 x4, e6 k3 320 x1), 1x1 conv 1280, dropout 0.2, linear classifier.
* ``mnasnet_a1`` is the paper's headline MnasNet-A1 (Fig. 7, Table 1: 3.9M params, 312M MACs,
  75.2% top-1), from the authors' TF code (tensorflow/tpu ``models/official/mnasnet/mnasnet_models.py``,
  ``mnasnet_a1``): squeeze-excite in three stacks, whose reduced width is max(1, int(C_in * 0.25))
  of the block *input* (ReLU, sigmoid gate, convs with bias).

Both: ReLU everywhere, expanded width = C_in * e (all widths are multiples of 8), residual where
stride 1 and widths agree, widths make_divisible(c * multiplier, 8).
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, DepthwiseSeparableSpec, InvertedResidualSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model


def _mbconv_stack(n: int, k: int, s: int, e: int, c: int, se: float = 0.0) -> StageSpec:
    """``r{n}_k{k}_s{s}{s}_e{e}_o{c}[_se{se}]``: n blocks, the first with stride s."""
    block = InvertedResidualSpec(
        out_channels=c,
        kernel_size=k,
        stride=s,
        expansion_ratio=e,
        activation="relu",
        se_ratio=se,
        se_activation="relu",
        se_gate="sigmoid",
        se_reduce_from="input",
        se_round_to_divisor=False,
    )
    return StageSpec.repeat(block, n)


# TF mnasnet_b1 (= torchvision mnasnet1_0): rows (n, k, s, e, c); the first row is the separable conv
_B1 = (
    StageSpec(blocks=(DepthwiseSeparableSpec(out_channels=16, kernel_size=3, activation="relu", pointwise_activation=False),)),
    _mbconv_stack(3, 3, 2, 3, 24),
    _mbconv_stack(3, 5, 2, 3, 40),
    _mbconv_stack(3, 5, 2, 6, 80),
    _mbconv_stack(2, 3, 1, 6, 96),
    _mbconv_stack(4, 5, 2, 6, 192),
    _mbconv_stack(1, 3, 1, 6, 320),
)

# Fig. 7 / TF mnasnet_a1: "r1_k3_s11_e1_i32_o16_noskip" is an MBConv with e = 1 (no expand conv)
_A1 = (
    _mbconv_stack(1, 3, 1, 1, 16),
    _mbconv_stack(2, 3, 2, 6, 24),
    _mbconv_stack(3, 5, 2, 3, 40, se=0.25),
    _mbconv_stack(4, 3, 2, 6, 80),
    _mbconv_stack(2, 3, 1, 6, 112, se=0.25),
    _mbconv_stack(3, 5, 2, 6, 160, se=0.25),
    _mbconv_stack(1, 3, 1, 6, 320),
)


def mnasnet(name: str, stages: tuple[StageSpec, ...], width_multiplier: float = 1.0) -> NetworkSpec:
    last_conv = ConvNormActSpec(out_channels=1280, kernel_size=1, activation="relu", width_scaling="fixed")
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=32, kernel_size=3, stride=2, activation="relu"),),
        stages=stages + (StageSpec(blocks=(last_conv,)),),
        head=ClassifierHeadSpec(dropout=0.2),
        pre_logits_stages=1,  # the last 1x1 conv feeds the classifier: not a feature level (as timm)
        width_multiplier=width_multiplier,
        channel_divisor=8,
    )


@register_model("mnasnet_100", family="mnasnet")
def mnasnet_100() -> NetworkSpec:
    """torchvision ``mnasnet1_0`` (MnasNet-B1, no squeeze-excite)."""
    return mnasnet("mnasnet_100", _B1)


@register_model("mnasnet_a1", family="mnasnet")
def mnasnet_a1() -> NetworkSpec:
    """The paper's MnasNet-A1 (Fig. 7), with squeeze-excite."""
    return mnasnet("mnasnet_a1", _A1)
