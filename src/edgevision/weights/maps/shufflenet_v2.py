"""ShuffleNet V2 (Ma et al. 2018) in the authors' release layout (megvii-model/ShuffleNet-Series, ``ShuffleNetV2/``).

Our ``shufflenet_v2_x*`` models follow that release (its units, its bias-free classifier), so only the names differ:
``network.py`` keeps the stem as ``first_conv`` (conv, BN, ReLU), every unit of the three stages in one flat
``features`` Sequential, the last 1x1 conv as ``conv_last`` and the classifier as ``classifier.0``; ``blocks.py``'s
``ShuffleV2Block`` holds ``branch_main`` (1x1, BN, ReLU, 3x3 depthwise, BN, 1x1, BN, ReLU: indices 0/1, 3/4, 5/6) and,
in the stride-2 unit, ``branch_proj`` (3x3 depthwise, BN, 1x1, BN, ReLU: 0/1, 2/3), which is our ``left``.
The released ``*.pth.tar`` files are DataParallel training checkpoints (``{"state_dict": {"module.…"}}``): the
reader unwraps both. torchvision's own layout is the zoo model ``shufflenet_v2_x*_tv`` (maps/compat.py).
"""

from ..keymap import KeyMap
from ._rules import conv_bn, linear

_U = r"stages\.([0-2])\.(\d+)"  # the three unit stages; ``features`` numbers their units in one run
_F = "features.{flat(1,2)}"
RULES = (
    *conv_bn(r"stem\.0", "first_conv.0", "first_conv.1"),
    *conv_bn(rf"{_U}\.left\.0", f"{_F}.branch_proj.0", f"{_F}.branch_proj.1"),  # 3x3 depthwise
    *conv_bn(rf"{_U}\.left\.1", f"{_F}.branch_proj.2", f"{_F}.branch_proj.3"),  # 1x1
    *conv_bn(rf"{_U}\.branch\.0", f"{_F}.branch_main.0", f"{_F}.branch_main.1"),
    *conv_bn(rf"{_U}\.branch\.1", f"{_F}.branch_main.3", f"{_F}.branch_main.4"),
    *conv_bn(rf"{_U}\.branch\.2", f"{_F}.branch_main.5", f"{_F}.branch_main.6"),
    *conv_bn(r"stages\.3\.0", "conv_last.0", "conv_last.1"),
    *linear(r"head\.classifier", "classifier.0"),
)
# keyed by model, not family: the family's torchvision-layout variants (``*_tv``) hold other shapes under the same names
KEYMAPS = {
    f"shufflenet_v2_x{size}": {"official": KeyMap("official", RULES, upstream={f"shufflenet_v2_x{size}": f"ShuffleNetV2(model_size='{size.replace('_', '.')}x')"})}
    for size in ("0_5", "1_0", "1_5", "2_0")
}
