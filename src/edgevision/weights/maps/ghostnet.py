"""GhostNet (Han et al. 2020), timm ``ghostnet.py`` (a port of the authors' huawei-noah release, same names).

A ghost bottleneck is ``ghost1`` (expansion) and ``ghost2`` (projection), each a ``primary_conv``
and a ``cheap_operation`` (conv at ``.0``, BN at ``.1``), a strided ``conv_dw/bn_dw`` between,
``se.conv_reduce/conv_expand``, and a ``shortcut`` Sequential (depthwise conv/BN ``0/1``,
pointwise conv/BN ``2/3``). Stem ``conv_stem/bn1``; the last stage is a ``ConvBnAct`` ``conv/bn1``;
head ``conv_head`` (a 1x1 conv with bias; ours a Linear) and ``classifier``.
"""

from ..keymap import KeyMap
from ._rules import bn, conv_bn, linear

_B = r"stages\.(\d+)\.(\d+)"
_T = "blocks.{1}.{2}"
RULES = (
    *conv_bn(r"stem\.0", "conv_stem", "bn1"),
    *conv_bn(rf"{_B}\.expand\.primary", f"{_T}.ghost1.primary_conv.0", f"{_T}.ghost1.primary_conv.1"),
    *conv_bn(rf"{_B}\.expand\.cheap", f"{_T}.ghost1.cheap_operation.0", f"{_T}.ghost1.cheap_operation.1"),
    *conv_bn(rf"{_B}\.project\.primary", f"{_T}.ghost2.primary_conv.0", f"{_T}.ghost2.primary_conv.1"),
    *conv_bn(rf"{_B}\.project\.cheap", f"{_T}.ghost2.cheap_operation.0", f"{_T}.ghost2.cheap_operation.1"),
    *conv_bn(rf"{_B}\.depthwise", f"{_T}.conv_dw", f"{_T}.bn_dw"),
    *linear(rf"{_B}\.se\.reduce", f"{_T}.se.conv_reduce"),
    *linear(rf"{_B}\.se\.expand", f"{_T}.se.conv_expand"),
    *conv_bn(rf"{_B}\.shortcut\.0", f"{_T}.shortcut.0", f"{_T}.shortcut.1"),
    *conv_bn(rf"{_B}\.shortcut\.1", f"{_T}.shortcut.2", f"{_T}.shortcut.3"),
    *conv_bn(_B, f"{_T}.conv", f"{_T}.bn1"),
    *linear(r"head\.hidden\.0", "conv_head"),
    *linear(r"head\.classifier", "classifier"),
)
_UPSTREAM = {n: n for n in ("ghostnet_050", "ghostnet_100", "ghostnet_130")}
KEYMAPS = {"ghostnet": {
    "timm": KeyMap("timm", RULES, upstream=_UPSTREAM),
    # huawei-noah/Efficient-AI-Backbones ghostnet_pytorch/ghostnet.py: the module names timm kept
    "official": KeyMap("official", RULES, upstream=_UPSTREAM),
}}
