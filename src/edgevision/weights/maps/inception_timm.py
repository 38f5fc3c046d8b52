"""Inception v4 and Inception-ResNet v2 as timm 1.0.31 builds them (``models/inception_v4.py``,
``models/inception_resnet_v2.py``, Cadene's ports of the TF-slim weights).

Every conv is a ``BasicConv2d`` (``conv`` + ``bn``). A branch of one conv is named ``branch{b}``, a
longer one a Sequential ``branch{b}.{l}`` (a leading pool keeps its index: ``branch3.1``), so our
``branches.{b}.layers.{l}`` maps one to one except where the branch is a single conv.
Inception v4 numbers its 22 modules ``features.N`` (our 6 stem modules, then our stage blocks), a
one-conv module is ``features.N`` itself, Mixed_3a / Mixed_5a keep their conv as ``conv``, and
Inception-C names its convs by role (``branch1_1a``...). Inception-ResNet v2 names its modules
(``conv2d_1a`` ... ``mixed_5b``, ``repeat``/``repeat_1``/``repeat_2`` holding the residual blocks,
``block8`` the last, ``conv2d_7b``); a residual block's up-projection is ``conv2d``.
Keyed by the ``_timm`` variants (models/compat.py): timm's BatchNorms have a scale, the release's not.
"""

import re

from ..keymap import KeyMap

_NORM = "(weight|bias|running_mean|running_var|num_batches_tracked)"
_BRANCHES = r"branches\.(\d+)\.layers\.(\d+)"


def _basic_conv(ours: str, theirs: str) -> tuple:
    """A conv + BatchNorm at our regex ``ours`` -> timm's BasicConv2d ``theirs`` (a template)."""
    groups = re.compile(ours).groups
    return ((rf"{ours}\.conv\.weight", f"{theirs}.conv.weight"), (rf"{ours}\.norm\.{_NORM}", f"{theirs}.bn.{{{groups + 1}}}"))


def _module(ours: str, theirs: str, first_branch_single: bool = True) -> tuple:
    """A multi-branch module: branch 0 of one conv is ``branch0`` (unless not), others ``branch{b}.{l}``."""
    n = re.compile(ours).groups
    rules = _basic_conv(rf"{ours}\.branches\.0\.layers\.0", f"{theirs}.branch0") if first_branch_single else ()
    return rules + _basic_conv(rf"{ours}\.{_BRANCHES}", f"{theirs}.branch{{{n + 1}}}.{{{n + 2}}}")


_S = r"stages\.(\d+)\.(\d+)"
_F = "features.{flat(1,2)+6}"  # the stem's six modules come first
_INCEPTION_C = {"branches.0.layers.0": "branch0", "branches.1.layers.0": "branch1_0", "branches.1.split.0": "branch1_1a",
                "branches.1.split.1": "branch1_1b", "branches.2.layers.0": "branch2_0", "branches.2.layers.1": "branch2_1",
                "branches.2.layers.2": "branch2_2", "branches.2.split.0": "branch2_3a", "branches.2.split.1": "branch2_3b",
                "branches.3.layers.1": "branch3.1"}
INCEPTION_V4 = KeyMap(
    "timm",
    (
        *(rule for i in range(3) for rule in _basic_conv(rf"stem\.{i}\.branches\.0\.layers\.0", f"features.{i}")),
        *_basic_conv(r"stem\.3\.branches\.1\.layers\.0", "features.3.conv"),  # Mixed_3a: max pool, conv
        *_module(r"stem\.4", "features.4", first_branch_single=False),  # Mixed_4a: two Sequentials
        *_basic_conv(r"stem\.5\.branches\.0\.layers\.0", "features.5.conv"),  # Mixed_5a: conv, max pool
        *(rule for inner, name in _INCEPTION_C.items()
          for rule in _basic_conv(rf"stages\.(2)\.([1-9])\.{re.escape(inner)}", f"{_F}.{name}")),
        *_module(r"stages\.(2)\.(0)", _F, first_branch_single=False),  # Reduction-B: branch0 is two convs
        *_module(_S, _F),
        (r"head\.classifier\.(weight|bias)", "last_linear.{1}"),
    ),
    upstream={"inception_v4_timm": "inception_v4"},
)

_IRV2_STEM = ((0, "conv2d_1a"), (1, "conv2d_2a"), (2, "conv2d_2b"), (4, "conv2d_3b"), (5, "conv2d_4a"))
_IRV2_BLOCKS = ((r"stages\.0\.(\d+)", "repeat.{1}"), (r"stages\.1\.0", "mixed_6a"), (r"stages\.1\.(\d+)", "repeat_1.{1-1}"),
                (r"stages\.2\.10", "block8"), (r"stages\.2\.([1-9])", "repeat_2.{1-1}"))
INCEPTION_RESNET_V2 = KeyMap(
    "timm",
    (
        *(rule for i, name in _IRV2_STEM for rule in _basic_conv(rf"stem\.{i}\.branches\.0\.layers\.0", name)),
        *_module(r"stem\.7", "mixed_5b"),
        *_basic_conv(r"stages\.2\.11\.branches\.0\.layers\.0", "conv2d_7b"),
        *_module(r"stages\.2\.0", "mixed_7a", first_branch_single=False),  # branch0 is two convs
        *(rule for ours, theirs in _IRV2_BLOCKS for rule in (
            *_module(ours, theirs), (rf"{ours}\.up\.(weight|bias)", f"{theirs}.conv2d.{{{re.compile(ours).groups + 1}}}"),
        )),
        (r"head\.classifier\.(weight|bias)", "classif.{1}"),
    ),
    upstream={"inception_resnet_v2_timm": "inception_resnet_v2"},
)
KEYMAPS = {"inception_v4_timm": {"timm": INCEPTION_V4}, "inception_resnet_v2_timm": {"timm": INCEPTION_RESNET_V2}}
