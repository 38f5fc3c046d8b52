"""RepVGG (Ding et al. 2021) in the authors' release layout (DingXiaoH/RepVGG, ``repvgg.py``).

``stage0`` is one ``RepVGGBlock`` (our stem block), ``stage1``..``stage4`` our stages 0..3; each train-form block
holds ``rbr_dense`` (3x3 conv + bn: our single ``branches.0``), ``rbr_1x1`` (our ``scale``) and, where shapes allow,
``rbr_identity`` (a BatchNorm: our ``identity``); the classifier is ``linear``. The release ships the train form
(``RepVGG-A0-train.pth``, a plain state dict); ``convert.py`` writes the re-parameterized form, one biased
``rbr_reparam`` conv per block, which is our deploy form's ``fused`` conv (``deploy_rules``).
"""

from ..keymap import KeyMap
from ._rules import bn, linear

_B = r"stages\.(\d+)\.(\d+)"
_O = "stage{1+1}.{2}"


def _conv_bn(ours: str, theirs: str) -> tuple:
    return (*linear(rf"{ours}\.conv", f"{theirs}.conv"), *bn(rf"{ours}\.norm", f"{theirs}.bn"))


OFFICIAL = KeyMap(
    "official",
    (
        *_conv_bn(r"stem\.0\.branches\.0", "stage0.rbr_dense"),
        *_conv_bn(r"stem\.0\.scale", "stage0.rbr_1x1"),
        *_conv_bn(rf"{_B}\.branches\.0", f"{_O}.rbr_dense"),
        *_conv_bn(rf"{_B}\.scale", f"{_O}.rbr_1x1"),
        *bn(rf"{_B}\.identity", f"{_O}.rbr_identity"),
        *linear(r"head\.classifier", "linear"),
    ),
    deploy_rules=(
        *linear(r"stem\.0\.fused", "stage0.rbr_reparam"),
        *linear(rf"{_B}\.fused", f"{_O}.rbr_reparam"),
        *linear(r"head\.classifier", "linear"),
    ),
    upstream={"repvgg_a0": "create_RepVGG_A0()", "repvgg_a1": "create_RepVGG_A1()", "repvgg_b0": "create_RepVGG_B0()"},
)
KEYMAPS = {"repvgg": {"official": OFFICIAL}}
