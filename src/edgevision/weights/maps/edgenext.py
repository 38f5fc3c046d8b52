"""EdgeNeXt (Maaz et al. 2022), timm ``edgenext.py`` (ported from the authors' mmaaz60/EdgeNeXt release).

timm nests blocks in ``stages.{s}.blocks.{b}`` with the stage's downsample (LayerNorm ``0`` + 2x2
conv ``1``) as ``stages.{s}.downsample``; ours counts the downsample as block 0 of stages 1-3, so
their block ``b`` is our ``b + 1`` there. Conv encoder: ``conv_dw``, ``gamma``; SDTA encoder:
``convs.{i}``, ``pos_embd.token_projection``, ``norm_xca``, ``gamma_xca``, ``xca.qkv/proj/temperature``;
both ``norm`` + ``mlp.fc1/fc2``. The stem is a 4x4 conv ``stem.0`` then LayerNorm ``stem.1``.
"""

from ..keymap import KeyMap
from ._rules import downsample_layers, linear

_INNER = (
    (r"depthwise\.(weight|bias)", "conv_dw.{}"),
    (r"mlp\.layer_scale", "gamma"),
    (r"mlp\.norm\.(weight|bias)", "norm.{}"),
    (r"mlp\.expand\.(weight|bias)", "mlp.fc1.{}"),
    (r"mlp\.project\.(weight|bias)", "mlp.fc2.{}"),
    (r"layer_scale_attention", "gamma_xca"),
    (r"convs\.(\d+)\.(weight|bias)", "convs.{}.{}"),
    (r"positional_encoding\.projection\.(weight|bias)", "pos_embd.token_projection.{}"),
    (r"norm_attention\.(weight|bias)", "norm_xca.{}"),
    (r"attention\.temperature", "xca.temperature"),
    (r"attention\.(qkv|proj)\.(weight|bias)", "xca.{}.{}"),
)


def _block_rules(inner=_INNER, block: str = "stages.{{1}}.blocks.{}") -> tuple:
    rules = []
    for ours, theirs in inner:
        groups = ours.count("(")
        # stage 0: our block b is their block b; later stages: our block b is their b - 1 (0 is the downsample)
        for pattern, index, first in ((r"stages\.(0)\.(\d+)", "{2}", 3), (r"stages\.(\d+)\.(\d+)", "{2-1}", 3)):
            template = theirs.format(*(f"{{{first + i}}}" for i in range(groups)))
            rules.append((rf"{pattern}\.{ours}", f"{block.format(index)}.{template}"))
    return tuple(rules)


RULES = (
    *linear(r"stem\.0\.conv", "stem.0"),
    *linear(r"stem\.0\.norm", "stem.1"),
    *linear(r"stages\.(\d+)\.0\.norm", "stages.{1}.downsample.0"),
    *linear(r"stages\.(\d+)\.0\.conv", "stages.{1}.downsample.1"),
    *_block_rules(),
    *linear(r"head\.norm", "head.norm"),
    *linear(r"head\.classifier", "head.fc"),
)
_UPSTREAM = {n: n for n in ("edgenext_xx_small", "edgenext_x_small", "edgenext_small")}

# mmaaz60/EdgeNeXt ``models/edgenext.py`` (the authors' release, whose names timm changed): the stem and the three
# downsamples are ``downsample_layers.{0..3}`` (stem: conv 0, LayerNorm 1; downsample: LayerNorm 0, conv 1), blocks
# sit directly in ``stages.{s}.{b}``; ConvEncoder / SDTAEncoder name the depthwise conv ``dwconv`` and the inverted
# bottleneck ``norm`` + ``pwconv1`` / ``pwconv2`` (Linear layers, as timm's ``mlp.fc1/fc2``) + ``gamma``; the SDTA
# part keeps ``convs.{i}``, ``pos_embd.token_projection``, ``norm_xca``, ``gamma_xca``, ``xca.qkv/proj/temperature``.
# The classifier is ``norm`` + ``head``.
_OFFICIAL_INNER = tuple((ours, theirs.replace("conv_dw", "dwconv").replace("mlp.fc1", "pwconv1").replace("mlp.fc2", "pwconv2"))
                        for ours, theirs in _INNER)
OFFICIAL_RULES = (
    *downsample_layers(),
    *_block_rules(_OFFICIAL_INNER, "stages.{{1}}.{}"),
    *linear(r"head\.norm", "norm"),
    *linear(r"head\.classifier", "head"),
)
KEYMAPS = {"edgenext": {"timm": KeyMap("timm", RULES, upstream=_UPSTREAM),
                        "official": KeyMap("official", OFFICIAL_RULES, upstream={n: f"models/model.py {n}()" for n in _UPSTREAM})}}
