"""Key maps of the library-compatible variants (:mod:`edgevision.models.compat`), one per model.

They are keyed by model name, not family: the release-layout model of the same family has the same
tensor names and shapes (SE-ResNet-50, SK-ResNeXt-50) but computes something else with them, so a
family-wide map would load timm's weights into it silently with different logits.
"""

from ..keymap import KeyMap
from ._rules import linear
from .resnet import RULES as RESNET_RULES
from .sknet import RULES as SKNET_RULES

_B = r"stages\.(\d+)\.(\d+)"
SERESNET_RULES = (
    *RESNET_RULES,
    *linear(rf"{_B}\.se\.reduce", "layer{1+1}.{2}.se.fc1"),
    *linear(rf"{_B}\.se\.expand", "layer{1+1}.{2}.se.fc2"),
)
KEYMAPS = {
    "skresnext50_32x4d_timm": {"timm": KeyMap("timm", SKNET_RULES, upstream={"skresnext50_32x4d_timm": "skresnext50_32x4d"})},
    "seresnet50_timm": {"timm": KeyMap("timm", SERESNET_RULES, upstream={"seresnet50_timm": "seresnet50"})},
}
