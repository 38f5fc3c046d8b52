"""Selective Kernel Networks (Li et al., "Selective Kernel Networks", CVPR 2019).

``skresnext50_32x4d`` is SKNet-50 of Table 1: ResNeXt-50 (32x4d) whose grouped 3x3 convs are SK
convs with M = 2 paths (3x3 and a 3x3 with dilation 2 standing for 5x5), G = 32, r = 16, L = 32.
Layout as the authors' Caffe release (implus/SKNet ``models/sknet50.prototxt``): stride on both
SK branches (and the 1x1 projection), fc1 bias-free + BN + ReLU to d = max(C/16, 32) (32, 32, 32,
64 per stage), fc2 bias-free to 2C, 7x7/2 stem conv + BN + ReLU, 3x3/2 max pool without padding
rounded up, global average pool, fc with bias. Its parameter count (train form, 1000 classes) is
27,479,784: the paper's 27.5M (Table 2).
"""

from __future__ import annotations

from ..network import NetworkSpec
from ..registry import register_model
from .resnet import CAFFE_STEM_POOL, RESNET50_DEPTHS, resnet


@register_model("skresnext50_32x4d", family="sknet")
def skresnext50_32x4d() -> NetworkSpec:
    return resnet(
        "skresnext50_32x4d", "selective_kernel", RESNET50_DEPTHS, groups=32, width_per_group=4, stem_pool=CAFFE_STEM_POOL
    )
