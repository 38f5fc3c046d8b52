"""FBNet (Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural
Architecture Search", CVPR 2019).

Configuration: the searched architectures of Fig. 4 (FBNet-A, -B, -C), as released by the authors
in facebookresearch/mobile-vision (``mobile_cv/arch/fbnet_v2/fbnet_modeldef_cls_fbnet.py``, arch
defs ``fbnet_a``, ``fbnet_b``, ``fbnet_c``; the model zoo's ``FBNet_a/b/c`` with ImageNet weights).
Every searched layer is one candidate of the paper's Table 1 search space: an inverted residual
with kernel 3 or 5, expansion 1, 3 or 6, optionally "g2" (grouped 1x1 convs with a channel shuffle),
or "skip". A skip between equal widths at stride 1 is the identity, so it has no block here; the
table keeps it as ``SKIP`` so that it reads like the figure. timm's ``fbnetc_100`` is the same
network as ``fbnet_c`` (its ``ir_r2_k3_s1_e1_c24`` stands for the released "skip, ir_k3 e1, ir_k3 e1").

Released details followed here: ReLU everywhere, expanded width = C_in * e (all widths are
multiples of 8), residual where stride 1 and widths agree, every conv of a searched block carries a
bias before its BatchNorm (``{"bias": True}`` in the arch defs), 1x1 conv 1504 (A) / 1984 (B, C)
before global pooling, classifier with bias. The stem and that last conv also carry a conv bias
in the release (``nn.Conv2d`` default; ``ConvNormActSpec(conv_bias=True)``), so train and deploy
counts both equal the release's.
Published results (Table 2): A 249M MACs / 4.3M / 73.0%, B 295M / 4.5M / 74.1%, C 375M / 5.5M / 74.9%
(the released FBNet-B has 4.8M parameters; its model zoo lists 74.2% top-1 for it).
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, InvertedResidualSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

SKIP = None  # the "skip" candidate: identity between equal widths at stride 1, no module


def _ir(c: int, k: int, e: int, s: int = 1, groups: int = 1) -> InvertedResidualSpec:
    """One searched block ("ir_k{k}" with expansion e; groups=2 is the "_g2" variant)."""
    return InvertedResidualSpec(
        out_channels=c, kernel_size=k, stride=s, expansion_ratio=e, activation="relu", pointwise_groups=groups, conv_bias=True
    )


def _stages(*stages: tuple[InvertedResidualSpec | None, ...]) -> tuple[StageSpec, ...]:
    """Drop the identity skips (and a stage made only of them)."""
    kept = (tuple(block for block in stage if block is not SKIP) for stage in stages)
    return tuple(StageSpec(blocks=blocks) for blocks in kept if blocks)


# Fig. 4 / arch def "fbnet_a": one tuple per resolution (112, 56, 28, 14, 7)
_FBNET_A = _stages(
    (SKIP,),  # 16
    (_ir(24, 3, 3, s=2), _ir(24, 3, 1), SKIP, SKIP),
    (_ir(32, 5, 6, s=2), _ir(32, 3, 3), _ir(32, 5, 1), _ir(32, 3, 3)),
    (
        _ir(64, 5, 6, s=2), _ir(64, 5, 3), _ir(64, 5, 1, groups=2), _ir(64, 5, 6),
        _ir(112, 3, 6), _ir(112, 5, 1, groups=2), _ir(112, 5, 3), _ir(112, 3, 1, groups=2),
    ),
    (_ir(184, 5, 6, s=2), _ir(184, 5, 6), _ir(184, 5, 3), _ir(184, 5, 6), _ir(352, 5, 6)),
)

# Fig. 4 / arch def "fbnet_b"
_FBNET_B = _stages(
    (_ir(16, 3, 1),),
    (_ir(24, 3, 6, s=2), _ir(24, 5, 1), _ir(24, 3, 1), _ir(24, 3, 1)),
    (_ir(32, 5, 6, s=2), _ir(32, 5, 3), _ir(32, 3, 6), _ir(32, 5, 6)),
    (
        _ir(64, 5, 6, s=2), _ir(64, 5, 6), SKIP, _ir(64, 5, 3),
        _ir(112, 5, 6), _ir(112, 3, 1), _ir(112, 5, 1), _ir(112, 5, 3),
    ),
    (_ir(184, 5, 6, s=2), _ir(184, 5, 1), _ir(184, 5, 6), _ir(184, 5, 6), _ir(352, 3, 6)),
)

# Fig. 4 / arch def "fbnet_c"
FBNET_C = _stages(
    (_ir(16, 3, 1),),
    (_ir(24, 3, 6, s=2), SKIP, _ir(24, 3, 1), _ir(24, 3, 1)),
    (_ir(32, 5, 6, s=2), _ir(32, 5, 3), _ir(32, 5, 6), _ir(32, 3, 6)),
    (
        _ir(64, 5, 6, s=2), _ir(64, 5, 3), _ir(64, 5, 6), _ir(64, 5, 6),
        _ir(112, 5, 6), _ir(112, 5, 6), _ir(112, 5, 6), _ir(112, 5, 3),
    ),
    (_ir(184, 5, 6, s=2), _ir(184, 5, 6), _ir(184, 5, 6), _ir(184, 5, 6), _ir(352, 3, 6)),
)


def fbnet(name: str, stages: tuple[StageSpec, ...], last_channels: int, conv_bias: bool = True) -> NetworkSpec:
    """``conv_bias``: the stem and last 1x1 conv carry a bias (the release; timm's port has none)."""
    last_conv = ConvNormActSpec(out_channels=last_channels, kernel_size=1, activation="relu", conv_bias=conv_bias)
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=16, kernel_size=3, stride=2, activation="relu", conv_bias=conv_bias),),
        stages=stages + (StageSpec(blocks=(last_conv,)),),
        head=ClassifierHeadSpec(),  # the release's ClsConvHead: pool -> 1x1 conv with bias (= Linear)
        pre_logits_stages=1,  # the last 1x1 conv feeds the classifier: not a feature level (as timm)
        channel_divisor=8,
    )


@register_model("fbnet_a", family="fbnet")
def fbnet_a() -> NetworkSpec:
    return fbnet("fbnet_a", _FBNET_A, 1504)


@register_model("fbnet_b", family="fbnet")
def fbnet_b() -> NetworkSpec:
    return fbnet("fbnet_b", _FBNET_B, 1984)


@register_model("fbnetc_100", family="fbnet")
def fbnetc_100() -> NetworkSpec:
    return fbnet("fbnetc_100", FBNET_C, 1984)
