"""timm's EfficientNet builder layout (``timm/models/_efficientnet_blocks.py``), shared by every
family timm builds with it: MobileNetV2/V3, MnasNet, FBNet, ProxylessNAS.

``blocks.{stage}.{block}``: an inverted residual is ``conv_pw/bn1`` (expansion), ``conv_dw/bn2``,
``se.conv_reduce/conv_expand``, ``conv_pwl/bn3``; a block without expansion is timm's
``DepthwiseSeparableConv``: ``conv_dw/bn1``, ``se``, ``conv_pw/bn2``; a plain conv stage is
``ConvBnAct`` ``conv/bn1``. Stem ``conv_stem/bn1``, head ``conv_head`` (+ ``bn2`` when normalised),
``classifier``.
"""

from ._rules import conv_bn, linear

_B = r"stages\.(\d+)\.(\d+)"
_T = "blocks.{1}.{2}"
_EXPANDS, _NO_EXPANSION = ("stages.{1}.{2}.expand",), ("!stages.{1}.{2}.expand",)


def _when(rules, conditions):
    return tuple((ours, theirs, conditions) for ours, theirs in rules)


def timm_efficientnet_rules(head_conv: tuple = ()) -> tuple:
    """The rules; ``head_conv`` puts family rules first (e.g. MobileNetV2's last 1x1 conv is ``conv_head/bn2``)."""
    return (
        *head_conv,
        *conv_bn(r"stem\.0", "conv_stem", "bn1"),
        *conv_bn(rf"{_B}\.expand", f"{_T}.conv_pw", f"{_T}.bn1"),
        *_when(conv_bn(rf"{_B}\.depthwise", f"{_T}.conv_dw", f"{_T}.bn2"), _EXPANDS),
        *_when(conv_bn(rf"{_B}\.depthwise", f"{_T}.conv_dw", f"{_T}.bn1"), _NO_EXPANSION),
        *linear(rf"{_B}\.se\.reduce", f"{_T}.se.conv_reduce"),
        *linear(rf"{_B}\.se\.expand", f"{_T}.se.conv_expand"),
        *_when(conv_bn(rf"{_B}\.project", f"{_T}.conv_pwl", f"{_T}.bn3"), _EXPANDS),
        *_when(conv_bn(rf"{_B}\.project", f"{_T}.conv_pw", f"{_T}.bn2"), _NO_EXPANSION),
        *conv_bn(rf"{_B}\.pointwise", f"{_T}.conv_pw", f"{_T}.bn2"),  # our depthwise-separable block
        *conv_bn(_B, f"{_T}.conv", f"{_T}.bn1"),
        *linear(r"head\.hidden\.0", "conv_head"),
        *linear(r"head\.classifier", "classifier"),
    )


#: the last stage, a single 1x1 ConvNormAct, is timm's ``conv_head/bn2`` (MobileNetV2, MnasNet, FBNet)
LAST_STAGE_IS_HEAD = _when(conv_bn(r"stages\.(\d+)\.0", "conv_head", "bn2"), ("!stages.{1+1}", "!stages.{1}.0.project"))
