"""SE-ResNet (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018).

``seresnet50``: ResNet-50 (He et al. 2016, Table 1) with an SE module in every bottleneck, reduction
r = 16 (Hu et al. Table 1, "fc, [16, 256]"), as in the authors' Caffe release
(hujie-frank/SENet ``SE-ResNet-50.prototxt``): the stride of a downsampling bottleneck on its first
1x1 conv (the original "ResNet v1" layout), bias-free convs with BN, SE fcs with bias, stem max
pool without padding rounded up. That layout is what the paper's 3.87 GFLOPs (Table 2) counts;
torchvision's "v1.5" stride on the 3x3 conv would cost 4.1G. Parameters: 28,088,024 at 1000
classes, the count of the widely used PyTorch port of the Caffe weights (Cadene's
``pretrainedmodels.se_resnet50``) = ResNet-50's 25,557,032 + sum over blocks of 2C^2/16 + C/16 + C.
"""

from __future__ import annotations

from ..network import NetworkSpec
from ..registry import register_model
from .resnet import CAFFE_STEM_POOL, RESNET50_DEPTHS, resnet

SE_REDUCTION = 16  # r (Sec. 6.1: the best accuracy/complexity trade-off)


@register_model("seresnet50", family="senet")
def seresnet50() -> NetworkSpec:
    return resnet(
        "seresnet50", "bottleneck", RESNET50_DEPTHS, stride_on="reduce", se_reduction=SE_REDUCTION, stem_pool=CAFFE_STEM_POOL
    )
