"""Diverse Branch Block models (Ding et al., "Diverse Branch Block: Building a Convolution as an
Inception-like Unit", CVPR 2021).

``resnet18_dbb`` is the paper's ResNet-18 with DBBs (Sec. 4.1, ImageNet classification): the ResNet-18 of He et
al. 2016, Table 1 (our ``resnet18`` spec), with every 3x3 conv-BN trained as a DBB. As in the
authors' release (DingXiaoH/DiverseBranchBlock ``resnet.py`` with
``convnet_utils.switch_conv_bn_impl('DBB')``), the 7x7 stem conv and the 1x1 projection shortcuts
stay conv-BN (their ``conv_bn`` keeps kernels 1 and >= 7). After ``reparameterize`` it is a plain
ResNet-18 whose convs carry biases: the baseline's architecture, MACs and speed, which is the
paper's point.
"""

from __future__ import annotations

from ..blocks import DiverseBranchResNetBasicSpec
from ..network import NetworkSpec
from ..registry import register_model
from .resnet import RESNET18_DEPTHS, resnet


@register_model("resnet18_dbb", family="dbb")
def resnet18_dbb() -> NetworkSpec:
    return resnet("resnet18_dbb", "basic", RESNET18_DEPTHS, basic_block=DiverseBranchResNetBasicSpec)  # He et al. 2016, Table 1
