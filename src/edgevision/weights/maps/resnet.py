"""ResNet / ResNeXt / Wide ResNet (He et al. 2016; Xie et al. 2017; Zagoruyko & Komodakis 2016).

torchvision's ``models/resnet.py`` names are timm's too (timm ``models/resnet.py`` kept them), so
one map serves both: ``layer{stage+1}.{block}.conv{i}/bn{i}``, shortcut ``downsample.0/1``, ``fc``.
"""

from ..keymap import KeyMap
from ._rules import conv_bn, linear

_B = r"stages\.(\d+)\.(\d+)"
RULES = (
    *conv_bn(r"stem\.0", "conv1", "bn1"),
    *conv_bn(rf"{_B}\.conv(\d)", "layer{1+1}.{2}.conv{3}", "layer{1+1}.{2}.bn{3}"),
    *conv_bn(rf"{_B}\.shortcut", "layer{1+1}.{2}.downsample.0", "layer{1+1}.{2}.downsample.1"),
    *linear(r"head\.classifier", "fc"),
)

TORCHVISION = KeyMap(
    "torchvision", RULES,
    upstream={"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50", "resnet101": "resnet101",
              "resnext50_32x4d": "resnext50_32x4d", "wide_resnet50_2": "wide_resnet50_2"},
)
TIMM = KeyMap(
    "timm", RULES,
    upstream={"resnet18": "resnet18", "resnet34": "resnet34", "resnet50": "resnet50", "resnet101": "resnet101",
              "resnext50_32x4d": "resnext50_32x4d", "wide_resnet50_2": "wide_resnet50_2"},
)
KEYMAPS = {family: {"torchvision": TORCHVISION, "timm": TIMM} for family in ("resnet", "resnext", "wide_resnet")}
