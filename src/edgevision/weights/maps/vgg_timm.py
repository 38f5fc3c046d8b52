"""VGG as timm builds it (``models/vgg.py``): torchvision's ``features`` numbering, another head.

timm keeps the two hidden classifier layers as convolutions, ``pre_logits.fc1`` a 7x7 conv
``(4096, 512, 7, 7)`` over the 7x7 map and ``pre_logits.fc2`` a 1x1 conv, then ``head.fc``; our
Linear layers read the same numbers flattened (C, H, W), so those two are reshaped. At 224 px (a
7x7 map) and below (both pool the map up to 7x7 first) the networks compute the same logits.
"""

from ..keymap import KeyMap
from ._rules import linear
from .vgg import _CONVS_PER_STAGE, _rules

_HEAD = (*linear(r"head\.classifier\.0", "pre_logits.fc1"), *linear(r"head\.classifier\.3", "pre_logits.fc2"),
         *linear(r"head\.classifier\.6", "head.fc"))


def _timm_rules(convs: tuple[int, ...], batch_norm: bool) -> tuple:
    return tuple(rule for rule in _rules(convs, batch_norm) if not rule[0].startswith(r"head\.")) + _HEAD


KEYMAPS = {
    f"{name}{suffix}": {"timm": KeyMap("timm", _timm_rules(convs, bool(suffix)), reshape=(r"head\.classifier\.[03]\.weight",),
                                       upstream={f"{name}{suffix}": f"{name}{suffix}"})}
    for name, convs in _CONVS_PER_STAGE.items() for suffix in ("", "_bn")
}
