"""Key maps of the library-compatible variants (:mod:`edgevision.models.compat`), one per model.

They are keyed by model name, not family: the release-layout model of the same family has the same
tensor names and shapes (SE-ResNet-50, SK-ResNeXt-50) but computes something else with them, so a
family-wide map would load timm's weights into it silently with different logits.
"""

from ..keymap import KeyMap
from ._rules import conv_bn, linear
from .efficientnet_timm import LAST_STAGE_IS_HEAD, timm_efficientnet_rules
from .resnet import RULES as RESNET_RULES
from .sknet import RULES as SKNET_RULES

_B = r"stages\.(\d+)\.(\d+)"
SERESNET_RULES = (
    *RESNET_RULES,
    *linear(rf"{_B}\.se\.reduce", "layer{1+1}.{2}.se.fc1"),
    *linear(rf"{_B}\.se\.expand", "layer{1+1}.{2}.se.fc2"),
)
_U = r"stages\.([0-2])\.(\d+)"  # torchvision's stage2..stage4 hold our stages 0..2
SHUFFLENET_V2_TV_RULES = (
    *conv_bn(r"stem\.0", "conv1.0", "conv1.1"),
    *conv_bn(rf"{_U}\.left\.0", "stage{1+2}.{2}.branch1.0", "stage{1+2}.{2}.branch1.1"),  # 3x3 dw
    *conv_bn(rf"{_U}\.left\.1", "stage{1+2}.{2}.branch1.2", "stage{1+2}.{2}.branch1.3"),  # 1x1
    *conv_bn(rf"{_U}\.branch\.0", "stage{1+2}.{2}.branch2.0", "stage{1+2}.{2}.branch2.1"),
    *conv_bn(rf"{_U}\.branch\.1", "stage{1+2}.{2}.branch2.3", "stage{1+2}.{2}.branch2.4"),
    *conv_bn(rf"{_U}\.branch\.2", "stage{1+2}.{2}.branch2.5", "stage{1+2}.{2}.branch2.6"),
    *conv_bn(r"stages\.3\.0", "conv5.0", "conv5.1"),
    *linear(r"head\.classifier", "fc"),
)
KEYMAPS = {
    **{f"shufflenet_v2_x{size}_tv": {"torchvision": KeyMap("torchvision", SHUFFLENET_V2_TV_RULES,
                                                            upstream={f"shufflenet_v2_x{size}_tv": f"shufflenet_v2_x{size}"})}
       for size in ("0_5", "1_0", "1_5", "2_0")},
    "skresnext50_32x4d_timm": {"timm": KeyMap("timm", SKNET_RULES, upstream={"skresnext50_32x4d_timm": "skresnext50_32x4d"})},
    "seresnet50_timm": {"timm": KeyMap("timm", SERESNET_RULES, upstream={"seresnet50_timm": "seresnet50"})},
    # every block has an expand conv (expand_at_ratio_one), so timm's conv_pw/bn1, conv_dw/bn2, conv_pwl/bn3 throughout
    "fbnetc_100_timm": {"timm": KeyMap("timm", timm_efficientnet_rules(head_conv=LAST_STAGE_IS_HEAD),
                                       upstream={"fbnetc_100_timm": "fbnetc_100"})},
}
