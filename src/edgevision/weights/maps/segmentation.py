"""Segmentation models on MobileNetV3 (torchvision ``lraspp_mobilenet_v3_large``, ``deeplabv3_mobilenet_v3_large``).

torchvision stores the backbone as ``backbone.N`` (its ``features.N``, numbered across stages exactly
as the MobileNetV3 classifier), so the backbone rules are the MobileNetV3 torchvision map with
``features.`` renamed ``backbone.``; our ``stem``/``stages`` paths are the backbone network's own.
Heads: ``classifier.{cbr,scale,low_classifier,high_classifier}`` (LR-ASPP);
``classifier.0`` (ASPP: ``convs.i`` branches, ``convs.<last>`` the pooling branch, ``project``),
``classifier.1/2`` (3x3 conv + BN), ``classifier.4`` (the classifier), ``aux_classifier.0/1/4`` (FCN).
"""

from ..keymap import KeyMap
from ._rules import conv_bn, linear
from .mobilenetv3 import TORCHVISION as _MOBILENETV3


def _backbone_rules() -> tuple:
    out = []
    for rule in _MOBILENETV3.rules:
        ours, theirs = rule[0], rule[1]
        if ours.startswith(r"head\."):
            continue  # the classifier's head: not part of a segmentation backbone
        theirs = theirs.replace("features.", "backbone.", 1) if theirs else theirs
        out.append((ours, theirs, *rule[2:]))
    return tuple(out)


_LRASPP_HEAD = (
    *conv_bn(r"head\.cbr", "classifier.cbr.0", "classifier.cbr.1"),
    *linear(r"head\.scale\.1", "classifier.scale.1"),
    *linear(r"head\.low_classifier", "classifier.low_classifier"),
    *linear(r"head\.high_classifier", "classifier.high_classifier"),
)

# ASPP branches: ours head.aspp.branches.i (i < last: ConvNormAct; last: pooling with .conv) -> classifier.0.convs.i
_DEEPLAB_HEAD = (
    (r"head\.aspp\.branches\.(\d+)\.conv\.conv\.(weight|bias)", "classifier.0.convs.{1}.1.{2}"),  # pooling: convs.4.1
    (r"head\.aspp\.branches\.(\d+)\.conv\.norm\.(weight|bias|running_mean|running_var|num_batches_tracked)", "classifier.0.convs.{1}.2.{2}"),
    *conv_bn(r"head\.aspp\.branches\.(\d+)", "classifier.0.convs.{1}.0", "classifier.0.convs.{1}.1"),
    *conv_bn(r"head\.aspp\.project", "classifier.0.project.0", "classifier.0.project.1"),
    *conv_bn(r"head\.conv", "classifier.1", "classifier.2"),
    *linear(r"head\.classifier", "classifier.4"),
    *conv_bn(r"aux_head\.conv", "aux_classifier.0", "aux_classifier.1"),
    *linear(r"aux_head\.classifier", "aux_classifier.4"),
)

LRASPP_TORCHVISION = KeyMap("torchvision", _LRASPP_HEAD + _backbone_rules(), upstream={"lraspp_mobilenet_v3_large": "lraspp_mobilenet_v3_large"})
DEEPLABV3_TORCHVISION = KeyMap(
    "torchvision", _DEEPLAB_HEAD + _backbone_rules(), upstream={"deeplabv3_mobilenet_v3_large": "deeplabv3_mobilenet_v3_large"}
)
# by model name: the MobileNetV2 / U-Net members of these families have no torchvision counterpart
KEYMAPS = {"lraspp_mobilenet_v3_large": {"torchvision": LRASPP_TORCHVISION}, "deeplabv3_mobilenet_v3_large": {"torchvision": DEEPLABV3_TORCHVISION}}
