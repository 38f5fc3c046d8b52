"""Xception (Chollet 2017) as timm's ``legacy_xception`` builds it (``models/xception.py``, the Keras port).

timm numbers the twelve entry/middle/exit blocks ``block1`` ... ``block12`` across our stages; each
is ``rep``, one Sequential of [ReLU,] SeparableConv (``conv1`` depthwise + ``pointwise``), BatchNorm,
ReLU, ... so a separable conv and its BatchNorm are two positions where ours is one (our
``body.j`` holds its norm): ours ``body.{0,2,4}`` (blocks without a leading ReLU) are theirs
``rep.{0,3,6}``, ours ``body.{1,3,5}`` theirs ``rep.{1,4,7}``, each BatchNorm one further. The
projection shortcut is ``skip`` + ``skipbn``; the exit flow's two separable convs (our last block)
``conv3``/``bn3`` and ``conv4``/``bn4``; the stem ``conv1``/``bn1``, ``conv2``/``bn2``; ``fc``.
"""

from ..keymap import KeyMap
from ._rules import bn, conv_bn, linear

_OURS_TO_REP = {0: 0, 2: 3, 4: 6, 1: 1, 3: 4, 5: 7}
_B = r"stages\.(\d+)\.(\d+)"
_T = "block{flat(1,2)+1}"
RULES = (
    # the exit flow's separable convs: our last block, not a timm block
    *linear(r"stages\.2\.1\.body\.0\.depthwise", "conv3.conv1"),
    *conv_bn(r"stages\.2\.1\.body\.0\.pointwise", "conv3.pointwise", "bn3"),
    *linear(r"stages\.2\.1\.body\.2\.depthwise", "conv4.conv1"),
    *conv_bn(r"stages\.2\.1\.body\.2\.pointwise", "conv4.pointwise", "bn4"),
    *conv_bn(r"stem\.0\.branches\.0\.layers\.0", "conv1", "bn1"),
    *conv_bn(r"stem\.1\.branches\.0\.layers\.0", "conv2", "bn2"),
    *(rule for ours, rep in _OURS_TO_REP.items() for rule in (
        *linear(rf"{_B}\.body\.{ours}\.depthwise", f"{_T}.rep.{rep}.conv1"),
        *conv_bn(rf"{_B}\.body\.{ours}\.pointwise", f"{_T}.rep.{rep}.pointwise", f"{_T}.rep.{rep + 1}"),
    )),
    *conv_bn(rf"{_B}\.shortcut", f"{_T}.skip", f"{_T}.skipbn"),
    *linear(r"head\.classifier", "fc"),
)
# keyed by the compatible variant: timm's port keeps PyTorch's BatchNorm eps (1e-5), the release
# Keras's 1e-3, so the same tensors give other logits in our ``xception`` (models/compat.py)
KEYMAPS = {"xception_timm": {"timm": KeyMap("timm", RULES, upstream={"xception_timm": "legacy_xception"})}}
