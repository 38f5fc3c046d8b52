"""Next-ViT (Li et al. 2022) as timm builds it (``models/nextvit.py``, train layout).

timm wraps each stage's blocks in ``stages.{s}.blocks.{b}``; its ``PatchEmbed`` keeps ``pool``
(parameter-free) beside ``conv``/``norm`` where ours is a Sequential (``patch_embed.0`` or, after an
average pool, ``patch_embed.1``); the NCB's grouped conv is ``mhca.group_conv3x3`` + ``mhca.norm``,
the E-MHSA's pooled-key BatchNorm is ``e_mhsa.norm`` and the NTB's projection ``projection.conv/norm``.
The final BatchNorm is top-level ``norm``, the classifier ``head.fc``.
timm's pretrained Next-ViT checkpoints hold this train layout. timm's ``reparameterize()`` folds each
pre-norm into the following linear layer (``merge_pre_bn``) and replaces the norm by Identity; a state
dict saved after that (timm's deploy layout) lacks the norms and is not mapped: import the train
layout and call ``ev.reparameterize``.
"""

from ..keymap import KeyMap
from ._rules import bn, linear

_B = r"stages\.(\d+)\.(\d+)"


def _rules(block: str, mlp: tuple[str, str], classifier: str) -> tuple:
    """Both layouts: ``block`` the template of our block ``({1}, {2})``, ``mlp`` the names of the MLP's two 1x1
    convs (ours are ``mlp.fc1``/``mlp.fc2``), ``classifier`` the classifier's. Everything else in a block keeps our
    name under ``block`` (the catch-all last)."""
    return (
        (r"(stem\..*)", "{1}"),
        (rf"{_B}\.patch_embed\.\d\.(conv|norm)\.(.*)", f"{block}.patch_embed.{{3}}.{{4}}"),
        *linear(rf"{_B}\.mhca\.group_conv\.conv", f"{block}.mhca.group_conv3x3"),
        *bn(rf"{_B}\.mhca\.group_conv\.norm", f"{block}.mhca.norm"),
        *bn(rf"{_B}\.e_mhsa\.pool_norm", f"{block}.e_mhsa.norm"),
        (rf"{_B}\.projection\.0\.(conv|norm)\.(.*)", f"{block}.projection.{{3}}.{{4}}"),
        *linear(rf"{_B}\.mlp\.fc1", f"{block}.{mlp[0]}"),
        *linear(rf"{_B}\.mlp\.fc2", f"{block}.{mlp[1]}"),
        (rf"{_B}\.(.*)", f"{block}.{{3}}"),
        *bn(r"head\.norm", "norm"),
        *linear(r"head\.classifier", classifier),
    )


RULES = _rules("stages.{1}.blocks.{2}", ("mlp.fc1", "mlp.fc2"), "head.fc")

# bytedance/Next-ViT ``classification/nextvit.py`` (the authors' release): the stem as ours, every block of every
# stage in one flat ``features`` Sequential; ``PatchEmbed`` holds ``conv``/``norm`` directly (no Sequential index),
# the NCB's grouped conv is ``mhca.group_conv3x3`` + ``mhca.norm``, the E-MHSA's pooled-key BatchNorm1d
# ``e_mhsa.norm``, the NTB's projection a ``PatchEmbed`` (``projection.conv/norm``) and the MLP's 1x1 convs
# ``mlp.conv1``/``mlp.conv2``; the final BatchNorm ``norm``, the classifier ``proj_head.0``. The release's
# ``merge_bn()`` (pre-norms folded into the next layer) is its deploy layout, not mapped (as timm's).
OFFICIAL_RULES = _rules("features.{flat(1,2)}", ("mlp.conv1", "mlp.conv2"), "proj_head.0")
KEYMAPS = {"nextvit": {
    "timm": KeyMap("timm", RULES, upstream={"nextvit_small": "nextvit_small", "nextvit_base": "nextvit_base"}),
    "official": KeyMap("official", OFFICIAL_RULES, upstream={"nextvit_small": "nextvit_small()", "nextvit_base": "nextvit_base()"}),
}}
