"""MnasNet (Tan et al. 2019).

torchvision (``models/mnasnet.py``) keeps one flat ``layers`` Sequential: stem conv/BN at 0/1, the
depthwise-separable first block at 3/4 and 6/7, the six inverted-residual stages at ``layers.8``
to ``layers.13`` (``{block}.layers.0/1``, ``3/4``, ``6/7``), the head conv at 14/15, classifier
``classifier.1``. timm: its EfficientNet builder layout (:mod:`.efficientnet_timm`).
"""

from ..keymap import KeyMap
from ._rules import conv_bn, linear
from .efficientnet_timm import LAST_STAGE_IS_HEAD, timm_efficientnet_rules

_B = r"stages\.(\d+)\.(\d+)"
_L = "layers.{1+7}.{2}.layers"
TORCHVISION = KeyMap(
    "torchvision",
    (
        *conv_bn(r"stem\.0", "layers.0", "layers.1"),
        *conv_bn(r"stages\.0\.0\.depthwise", "layers.3", "layers.4"),
        *conv_bn(r"stages\.0\.0\.pointwise", "layers.6", "layers.7"),
        *conv_bn(rf"{_B}\.expand", f"{_L}.0", f"{_L}.1"),
        *conv_bn(rf"{_B}\.depthwise", f"{_L}.3", f"{_L}.4"),
        *conv_bn(rf"{_B}\.project", f"{_L}.6", f"{_L}.7"),
        *conv_bn(r"stages\.7\.0", "layers.14", "layers.15"),
        *linear(r"head\.classifier", "classifier.1"),
    ),
    upstream={"mnasnet_100": "mnasnet1_0"},
)
TIMM = KeyMap(
    "timm",
    timm_efficientnet_rules(head_conv=LAST_STAGE_IS_HEAD),
    upstream={"mnasnet_100": "mnasnet_100", "mnasnet_a1": "semnasnet_100"},
)
KEYMAPS = {"mnasnet": {"torchvision": TORCHVISION, "timm": TIMM}}
