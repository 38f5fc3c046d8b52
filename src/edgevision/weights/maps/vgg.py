"""VGG (Simonyan & Zisserman 2015), torchvision ``models/vgg.py``.

torchvision keeps one ``features`` Sequential numbered through every conv, BN, ReLU and pool, so a
conv's index depends on how many layers come before it: the rules are written out per model from
its configuration (convolutions per stage, Table 1 columns A and D), not per family. Ours: the first
stage is the stem (``stem.0.convs.{i}``), the others ``stages.{s}.0.convs.{i}``; classifier
``classifier.0/3/6`` (ReLU and dropout between).
"""

from ..keymap import KeyMap
from ._rules import bn, linear

_CONVS_PER_STAGE = {"vgg11": (1, 1, 2, 2, 2), "vgg16": (2, 2, 3, 3, 3)}


def _rules(convs_per_stage: tuple[int, ...], batch_norm: bool) -> tuple:
    rules, index = [], 0
    for stage, count in enumerate(convs_per_stage):
        ours = "stem\\.0" if stage == 0 else f"stages\\.{stage - 1}\\.0"
        for conv in range(count):
            rules += linear(rf"{ours}\.convs\.{conv}\.conv", f"features.{index}")
            if batch_norm:
                rules += bn(rf"{ours}\.convs\.{conv}\.norm", f"features.{index + 1}")
            index += 3 if batch_norm else 2  # conv (+ BN) + ReLU
        index += 1  # max pool
    for layer in (0, 3, 6):
        rules += linear(rf"head\.classifier\.{layer}", f"classifier.{layer}")
    return tuple(rules)


KEYMAPS = {
    f"{name}{suffix}": {"torchvision": KeyMap("torchvision", _rules(convs, bool(suffix)), upstream={f"{name}{suffix}": f"{name}{suffix}"})}
    for name, convs in _CONVS_PER_STAGE.items() for suffix in ("", "_bn")
}
