"""RMNet (Meng et al., "RMNet: Equivalently Removing Residual Connection from Deep Neural Networks", 2021).

``rmnet18`` is the authors' ``rmnet18`` (fxmeng/RMNet ``models/resnet2vgg.py``, ``RMNet(ResBlock,
[2, 2, 2, 2])`` at 1000 classes): the ResNet-18 of He et al. 2016, Table 1 (our ``resnet18``
spec: 7x7/2 stem conv, 3x3/2 max pool, four stages of two basic blocks at 64, 128, 256, 512
channels), trained as a ResNet and deployed with the RM operation (Sec. 3) as a VGG-style
network: every block becomes conv 3x3 (C -> C + C') -> ReLU -> conv 3x3 (C + C' -> C') -> ReLU
with no residual, the authors' ``RMNet.deploy(merge_bn=True)``. The deploy form has more
parameters and MACs than the train form (the reserved channels); the paper's argument is
latency without branches.
"""

from __future__ import annotations

from ..blocks import RMResNetBasicSpec
from ..network import NetworkSpec
from ..registry import register_model
from .resnet import RESNET18_DEPTHS, resnet


@register_model("rmnet18", family="rmnet")
def rmnet18() -> NetworkSpec:
    return resnet("rmnet18", "basic", RESNET18_DEPTHS, basic_block=RMResNetBasicSpec)  # He et al. 2016, Table 1
