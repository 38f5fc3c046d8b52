"""RepGhostNet (Chen et al. 2022) as timm builds it (``models/repghost.py``, train layout).

timm's RepGhost bottleneck keeps GhostNet's names (``ghost1``/``ghost2`` with ``primary_conv`` and
``cheap_operation``, ``conv_dw``/``bn_dw``, ``se``, ``shortcut``; stem, last conv and head as
GhostNet), so the GhostNet map serves, plus the re-parameterizable identity branch: our
``reuse`` BatchNorm is timm's ``fusion_bn.0``. timm's deploy layout (after its ``reparameterize``,
``fusion_bn`` folded into ``cheap_operation`` as a biased conv) is not mapped: import the train
layout and call ``ev.reparameterize``, which computes the same fused form.
"""

from ..keymap import KeyMap
from ._rules import bn
from .ghostnet import RULES as GHOSTNET_RULES

_B = r"stages\.(\d+)\.(\d+)"
RULES = (
    *bn(rf"{_B}\.expand\.reuse", "blocks.{1}.{2}.ghost1.fusion_bn.0"),
    *bn(rf"{_B}\.project\.reuse", "blocks.{1}.{2}.ghost2.fusion_bn.0"),
    *GHOSTNET_RULES,
)
_WIDTHS = {"050": "0_5x", "100": "1_0x", "150": "1_5x", "200": "2_0x"}
KEYMAPS = {"repghostnet": {
    "timm": KeyMap("timm", RULES, upstream={f"repghostnet_{w}": f"repghostnet_{w}" for w in _WIDTHS}),
    # ChengpengChen/RepGhost model/repghost.py (the authors' release, ``repghostnet_0_5x`` ...): the
    # module names timm's port kept, train form (the released files are timm-trainer checkpoints; the
    # import reads their ``state_dict``). Its convert.py output (cheap_operation fused with fusion_bn
    # into a biased conv while every other BatchNorm stays) is neither our train nor our deploy form:
    # import the train file, then ``ev.reparameterize``.
    "official": KeyMap("official", RULES, upstream={f"repghostnet_{w}": f"repghostnet_{x}" for w, x in _WIDTHS.items()}),
}}
