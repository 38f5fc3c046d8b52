"""DenseNet (Huang et al. 2017). torchvision and timm (which kept torchvision's names) share one layout.

``features.conv0/norm0``, ``features.denseblock{stage+1}.denselayer{layer+1}.norm1/conv1/norm2/conv2``,
``features.transition{stage+1}.norm/conv`` (our transition is the last block of a stage, the one with
a ``conv``), the final ``features.norm5``, ``classifier``.
"""

from ..keymap import KeyMap
from ._rules import bn, conv_bn, linear

_B = r"stages\.(\d+)\.(\d+)"
_LAYER = "features.denseblock{1+1}.denselayer{2+1}"
_TRANSITION = ("stages.{1}.{2}.conv",)
RULES = (
    *conv_bn(r"stem\.0", "features.conv0", "features.norm0"),
    *((ours, theirs, _TRANSITION) for ours, theirs in bn(rf"{_B}\.preact\.norm", "features.transition{1+1}.norm")),
    *linear(rf"{_B}\.conv\.conv", "features.transition{1+1}.conv"),
    *bn(rf"{_B}\.preact\.norm", f"{_LAYER}.norm1"),
    *conv_bn(rf"{_B}\.conv1", f"{_LAYER}.conv1", f"{_LAYER}.norm2"),
    *linear(rf"{_B}\.conv2\.conv", f"{_LAYER}.conv2"),
    *bn(rf"{_B}\.norm", "features.norm5"),
    *linear(r"head\.classifier", "classifier"),
)
KEYMAPS = {"densenet": {
    "torchvision": KeyMap("torchvision", RULES, upstream={"densenet121": "densenet121"}),
    "timm": KeyMap("timm", RULES, upstream={"densenet121": "densenet121"}),
}}
