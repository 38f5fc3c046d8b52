"""GoogLeNet (Szegedy et al. 2015) and Inception v3 (Szegedy et al. 2016).

torchvision names every convolution by its role (``models/googlenet.py``, ``models/inception.py``;
timm's ``inception_v3`` kept the same names), each a ``BasicConv2d`` of ``conv`` + ``bn``. The
tables below list, per block type, which of our (branch, layer) positions each name is.
The auxiliary classifiers (``aux1``/``aux2``, ``AuxLogits``) are training-only and ours has none:
their tensors are ignored when present.
"""

import re

from ..keymap import KeyMap

_NORM = "(weight|bias|running_mean|running_var|num_batches_tracked)"


def _basic_conv(ours: str, theirs: str) -> tuple:
    ours = re.escape(ours)
    return ((rf"{ours}\.conv\.weight", f"{theirs}.conv.weight"), (rf"{ours}\.norm\.{_NORM}", f"{theirs}.bn.{{1}}"))


def _table(blocks: dict[str, tuple[str, dict[str, str]]]) -> tuple:
    """``{our block path: (their block name, {our path inside the block: their conv name})}`` -> rules."""
    return tuple(rule for ours, (theirs, convs) in blocks.items() for inner, name in convs.items()
                 for rule in _basic_conv(f"{ours}.{inner}" if inner else ours, f"{theirs}.{name}" if name else theirs))


def _numbered(branch: int, stem: str, count: int, split: bool = False) -> dict[str, str]:
    return {f"branches.{branch}.layers.{i}": f"{stem}_{i + 1}" for i in range(count)}


_GOOGLENET_BLOCK = {"branches.0.layers.0": "branch1", "branches.1.layers.0": "branch2.0", "branches.1.layers.1": "branch2.1",
                    "branches.2.layers.0": "branch3.0", "branches.2.layers.1": "branch3.1", "branches.3.layers.1": "branch4.1"}
_GOOGLENET_BLOCKS = {"stages.0.0": "inception3a", "stages.0.1": "inception3b",
                     **{f"stages.1.{i + 1}": f"inception4{'abcde'[i]}" for i in range(5)},
                     "stages.2.1": "inception5a", "stages.2.2": "inception5b"}
GOOGLENET = KeyMap(
    "torchvision",
    (
        *_table({f"stem.{i}.branches.0.layers.0": (name, {"": ""}) for i, name in ((0, "conv1"), (2, "conv2"), (3, "conv3"))}),
        *_table({ours: (theirs, _GOOGLENET_BLOCK) for ours, theirs in _GOOGLENET_BLOCKS.items()}),
        (r"head\.classifier\.(weight|bias)", "fc.{1}"),
    ),
    ignore=(r"aux[12]\..*",),
    note="GoogLeNet's auxiliary classifiers (aux1, aux2) are training-only; their tensors are not used",
    upstream={"googlenet": "googlenet"},
)

_A = {"branches.0.layers.0": "branch1x1", "branches.1.layers.0": "branch5x5_1", "branches.1.layers.1": "branch5x5_2",
      **_numbered(2, "branch3x3dbl", 3), "branches.3.layers.1": "branch_pool"}
_B = {"branches.0.layers.0": "branch3x3", **_numbered(1, "branch3x3dbl", 3)}
_C = {"branches.0.layers.0": "branch1x1", **_numbered(1, "branch7x7", 3), **_numbered(2, "branch7x7dbl", 5),
      "branches.3.layers.1": "branch_pool"}
_D = {**_numbered(0, "branch3x3", 2), **_numbered(1, "branch7x7x3", 4)}
_E = {"branches.0.layers.0": "branch1x1", "branches.1.layers.0": "branch3x3_1", "branches.1.split.0": "branch3x3_2a",
      "branches.1.split.1": "branch3x3_2b", "branches.2.layers.0": "branch3x3dbl_1", "branches.2.layers.1": "branch3x3dbl_2",
      "branches.2.split.0": "branch3x3dbl_3a", "branches.2.split.1": "branch3x3dbl_3b", "branches.3.layers.1": "branch_pool"}
_V3_STEM = ((0, "Conv2d_1a_3x3"), (1, "Conv2d_2a_3x3"), (2, "Conv2d_2b_3x3"), (4, "Conv2d_3b_1x1"), (5, "Conv2d_4a_3x3"))
_V3_RULES = (
    *_table({f"stem.{i}.branches.0.layers.0": (name, {"": ""}) for i, name in _V3_STEM}),
    *_table({"stages.0.0": ("Mixed_5b", _A), "stages.0.1": ("Mixed_5c", _A), "stages.0.2": ("Mixed_5d", _A),
             "stages.1.0": ("Mixed_6a", _B), **{f"stages.1.{i + 1}": (f"Mixed_6{'bcde'[i]}", _C) for i in range(4)},
             "stages.2.0": ("Mixed_7a", _D), "stages.2.1": ("Mixed_7b", _E), "stages.2.2": ("Mixed_7c", _E)}),
    (r"head\.classifier\.(weight|bias)", "fc.{1}"),
)
_AUX = "Inception v3's auxiliary classifier (AuxLogits) is training-only; its tensors are not used"
INCEPTION_V3 = {
    source: KeyMap(source, _V3_RULES, ignore=(r"AuxLogits\..*",), note=_AUX, upstream={"inception_v3": "inception_v3"})
    for source in ("torchvision", "timm")
}
KEYMAPS = {"googlenet": {"torchvision": GOOGLENET}, "inception": INCEPTION_V3}
