"""SK-ResNeXt (Li et al. 2019, Selective Kernel Networks) as timm builds it (``models/sknet.py``).

timm's ResNet skeleton (``conv1``/``bn1``, ``layer{s+1}.{b}``, ``downsample.0/1``, ``fc``) with
``ConvNormAct`` layers (``conv`` + ``bn``); the selective-kernel conv is ``conv2.paths.{i}`` and its
attention ``conv2.attn.fc_reduce`` / ``bn`` / ``fc_select``.
"""

from ._rules import bn, conv_bn, linear

_B = r"stages\.(\d+)\.(\d+)"
_T = "layer{1+1}.{2}"
RULES = (
    *conv_bn(r"stem\.0", "conv1", "bn1"),
    *conv_bn(rf"{_B}\.conv([13])", f"{_T}.conv{{3}}.conv", f"{_T}.conv{{3}}.bn"),
    *conv_bn(rf"{_B}\.conv2\.branches\.(\d+)", f"{_T}.conv2.paths.{{3}}.conv", f"{_T}.conv2.paths.{{3}}.bn"),
    *linear(rf"{_B}\.conv2\.attention\.reduce\.conv", f"{_T}.conv2.attn.fc_reduce"),
    *bn(rf"{_B}\.conv2\.attention\.reduce\.norm", f"{_T}.conv2.attn.bn"),
    *linear(rf"{_B}\.conv2\.attention\.select", f"{_T}.conv2.attn.fc_select"),
    *conv_bn(rf"{_B}\.shortcut", f"{_T}.downsample.0", f"{_T}.downsample.1"),
    *linear(r"head\.classifier", "fc"),
)
# no family-wide map: our skresnext50_32x4d pools its stem as the Caffe release (unpadded, rounded
# up), timm pads it; the same tensors load into skresnext50_32x4d_timm (maps/compat.py)
KEYMAPS: dict = {}
