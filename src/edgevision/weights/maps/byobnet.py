"""RepVGG (Ding et al. 2021) and MobileOne (Vasu et al. 2023) as timm builds them (``byobnet.py``).

timm's re-parameterizable blocks: ``conv_kxk`` (RepVGG: one; MobileOne: ``conv_kxk.{i}``, its k
over-parameterized branches), ``conv_1x1`` / ``conv_scale`` (the 1x1 "scale" branch), ``identity``
(the BatchNorm-only branch); each ``ConvNormAct`` is ``conv`` + ``bn``. Stem and stages are
numbered as ours (timm splits MobileOne's depthwise and pointwise halves into two blocks, as we
do); the head is ``head.fc``. Both are imported in their train form; ``ev.reparameterize`` folds them.
"""

from ..keymap import KeyMap
from ._rules import bn, linear

_BLOCK = r"(stem|stages\.\d+)\.(\d+)"
_T = "{1}.{2}"


def _conv_bn(ours: str, theirs: str) -> tuple:
    return (*linear(rf"{ours}\.conv", f"{theirs}.conv"), *bn(rf"{ours}\.norm", f"{theirs}.bn"))


def _stem_too(rules: tuple) -> tuple:
    # timm's stem is a single block without the stage index: our stem.0.* is timm's stem.*
    return tuple((ours, theirs.replace("{1}.{2}", "{1}") if ours.startswith("(stem") else theirs)
                 for ours, theirs in rules)


def _rules(kxk: str, scale: str) -> tuple:
    stem = r"(stem)\.0"
    block = r"(stages\.\d+)\.(\d+)"
    return (
        *_conv_bn(rf"{stem}\.branches\.(\d+)", kxk.replace("{1}.{2}", "{1}").replace("{i}", "{2}")),
        *_conv_bn(rf"{stem}\.scale", scale.replace("{1}.{2}", "{1}")),
        *_conv_bn(rf"{block}\.branches\.(\d+)", kxk.replace("{i}", "{3}")),
        *_conv_bn(rf"{block}\.scale", scale),
        *bn(rf"{block}\.identity", "{1}.{2}.identity"),
        *linear(rf"{block}\.se\.reduce", "{1}.{2}.attn.fc1"),
        *linear(rf"{block}\.se\.expand", "{1}.{2}.attn.fc2"),
        *linear(r"head\.classifier", "head.fc"),
    )


REPVGG = KeyMap("timm", _rules("{1}.{2}.conv_kxk", "{1}.{2}.conv_1x1"), upstream={n: n for n in ("repvgg_a0", "repvgg_a1", "repvgg_b0")})
MOBILEONE = KeyMap("timm", _rules("{1}.{2}.conv_kxk.{i}", "{1}.{2}.conv_scale"), upstream={f"mobileone_s{i}": f"mobileone_s{i}" for i in range(5)})

# apple/ml-mobileone ``mobileone.py`` (the authors' release): ``stage0`` is our stem block, ``stage1``..``stage4``
# our stages 0..3 (depthwise and pointwise halves as consecutive blocks, as ours), each ``MobileOneBlock`` a
# ``rbr_conv`` ModuleList of conv/bn branches, ``rbr_scale`` (1x1 conv/bn), ``rbr_skip`` (the BatchNorm
# identity) and ``se.reduce/expand``; classifier ``linear``. Released twice: ``mobileone_s*_unfused.pth.tar``
# (that train form) and ``mobileone_s*.pth.tar``, re-parameterized: one biased ``reparam_conv`` per block,
# which is our deploy form's ``fused`` conv.
_OFFICIAL_BLOCK = r"stages\.(\d+)\.(\d+)"
_O = "stage{1+1}.{2}"
MOBILEONE_OFFICIAL = KeyMap(
    "official",
    (
        *_conv_bn(r"stem\.0\.branches\.(\d+)", "stage0.rbr_conv.{1}"),
        *_conv_bn(r"stem\.0\.scale", "stage0.rbr_scale"),
        *_conv_bn(rf"{_OFFICIAL_BLOCK}\.branches\.(\d+)", f"{_O}.rbr_conv.{{3}}"),
        *_conv_bn(rf"{_OFFICIAL_BLOCK}\.scale", f"{_O}.rbr_scale"),
        *bn(rf"{_OFFICIAL_BLOCK}\.identity", f"{_O}.rbr_skip"),
        *linear(rf"{_OFFICIAL_BLOCK}\.se\.reduce", f"{_O}.se.reduce"),
        *linear(rf"{_OFFICIAL_BLOCK}\.se\.expand", f"{_O}.se.expand"),
        *linear(r"head\.classifier", "linear"),
    ),
    deploy_rules=(
        *linear(r"stem\.0\.fused", "stage0.reparam_conv"),
        *linear(rf"{_OFFICIAL_BLOCK}\.fused", f"{_O}.reparam_conv"),
        *linear(rf"{_OFFICIAL_BLOCK}\.se\.reduce", f"{_O}.se.reduce"),
        *linear(rf"{_OFFICIAL_BLOCK}\.se\.expand", f"{_O}.se.expand"),
        *linear(r"head\.classifier", "linear"),
    ),
    upstream={f"mobileone_s{i}": f"mobileone(variant='s{i}')" for i in range(5)},
)
KEYMAPS = {"repvgg": {"timm": REPVGG}, "mobileone": {"timm": MOBILEONE, "official": MOBILEONE_OFFICIAL}}
