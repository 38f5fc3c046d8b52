"""MobileNetV3 (Howard et al. 2019).

torchvision: ``features.N`` numbered across stages; inside a block the layers are numbered
``block.0, 1, ...`` in order (expansion if any, depthwise, SE if any, projection), so where a layer
sits depends on which the block has: the rules are conditioned on our own block's layout.
The head's 1x1 conv is ``classifier.0`` (a Linear) and the classifier ``classifier.3``.
timm: its EfficientNet builder layout (:mod:`.efficientnet_timm`); the head conv is a 1x1 conv
``conv_head`` (stored (O, I, 1, 1), ours a Linear (O, I): the same numbers).
BatchNorm eps: torchvision 1e-3 as our spec (the TF release); timm's ``mobilenetv3_*`` were trained
in PyTorch with 1e-5, which the timm map carries into the imported model's spec.
"""

from ..keymap import KeyMap
from ._rules import conv_bn, linear
from .efficientnet_timm import timm_efficientnet_rules

_B = r"stages\.(\d+)\.(\d+)"
_F = "features.{flat(1,2)+1}.block"
E, NO_E, S, NO_S = "stages.{1}.{2}.expand", "!stages.{1}.{2}.expand", "stages.{1}.{2}.se", "!stages.{1}.{2}.se"


def _at(module: str, index: int, *conditions: str) -> tuple:
    return tuple((ours, theirs, conditions) for ours, theirs in conv_bn(rf"{_B}\.{module}", f"{_F}.{index}.0", f"{_F}.{index}.1"))


TORCHVISION = KeyMap(
    "torchvision",
    (
        *conv_bn(r"stem\.0", "features.0.0", "features.0.1"),
        *_at("expand", 0),
        *_at("depthwise", 1, E),
        *_at("depthwise", 0, NO_E),
        (rf"{_B}\.se\.reduce\.(weight|bias)", f"{_F}.2.fc1.{{3}}", (E,)),
        (rf"{_B}\.se\.expand\.(weight|bias)", f"{_F}.2.fc2.{{3}}", (E,)),
        (rf"{_B}\.se\.reduce\.(weight|bias)", f"{_F}.1.fc1.{{3}}", (NO_E,)),
        (rf"{_B}\.se\.expand\.(weight|bias)", f"{_F}.1.fc2.{{3}}", (NO_E,)),
        *_at("project", 3, E, S),
        *_at("project", 2, E, NO_S),
        *_at("project", 2, NO_E, S),
        *_at("project", 1, NO_E, NO_S),
        *conv_bn(_B, "features.{flat(1,2)+1}.0", "features.{flat(1,2)+1}.1"),
        *linear(r"head\.hidden\.0", "classifier.0"),
        *linear(r"head\.classifier", "classifier.3"),
    ),
    upstream={"mobilenetv3_large_100": "mobilenet_v3_large", "mobilenetv3_small_100": "mobilenet_v3_small"},
)
TIMM = KeyMap(
    "timm",
    timm_efficientnet_rules(),
    norm_eps=1e-5,  # timm's BatchNormAct2d default; ours and torchvision's 1e-3
    upstream={name: name for name in ("mobilenetv3_large_075", "mobilenetv3_large_100", "mobilenetv3_small_075", "mobilenetv3_small_100")},
)
KEYMAPS = {"mobilenetv3": {"torchvision": TORCHVISION, "timm": TIMM}}
