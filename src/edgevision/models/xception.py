"""Xception (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017).

Configuration: Fig. 5 of the paper (entry flow, 8 x middle flow, exit flow) at 299x299, as the
authors' code defines it (Keras ``applications/xception.py``): stem conv 3x3/2 (32, valid) and
conv 3x3 (64, valid); entry-flow blocks of 128, 256, 728 with a 1x1/2 projection shortcut and a
3x3/2 max pool; eight middle-flow blocks of three 728-wide separable convs with identity
shortcuts; exit block 728 -> 1024 with projection; separable 1536 and 2048 with post-activation;
global average pool -> 1000-way fc (no dropout). BatchNorm eps 1e-3 (Keras).

Parameter count: the paper's Table 3 prints 22,855,952; the Keras model reports 22,910,480 total
weights, of which 54,528 are BatchNorm moving statistics (non-trainable), leaving 22,855,952
trainable — the number a PyTorch parameter count gives.
"""

from __future__ import annotations

import functools

from ..blocks import ClassifierHeadSpec, InceptionBranchSpec, InceptionConvSpec, InceptionModuleSpec, XceptionBlockSpec
from ..blocks.xception import KERAS_BATCHNORM_EPS
from ..network import NetworkSpec, StageSpec
from ..registry import register_model


def _stem_conv(width: int, stride: int, norm_eps: float = KERAS_BATCHNORM_EPS) -> InceptionModuleSpec:
    """Keras: Conv2D(3x3, valid, no bias) -> BatchNorm (eps 1e-3) -> ReLU (a one-layer module, as the Inception stems)."""
    layer = InceptionConvSpec(out_channels=width, kernel_size=(3, 3), stride=stride, padding="valid")
    return InceptionModuleSpec(branches=(InceptionBranchSpec(layers=(layer,)),), norm_eps=norm_eps)


@register_model("xception", family="xception")
def xception() -> NetworkSpec:
    return xception_network("xception")


def xception_network(name: str, norm_eps: float = KERAS_BATCHNORM_EPS) -> NetworkSpec:
    """Fig. 5; ``norm_eps`` of every BatchNorm (Keras 1e-3; timm's ``legacy_xception`` port: 1e-5)."""
    block = functools.partial(XceptionBlockSpec, norm_eps=norm_eps)
    return NetworkSpec(
        name=name,
        stem=(_stem_conv(32, 2, norm_eps), _stem_conv(64, 1, norm_eps)),  # Fig. 5 entry flow: 299 -> 149 -> 147
        stages=(
            StageSpec(  # entry flow: 147 -> 74 -> 37 -> 19
                blocks=(
                    block(channels=(128, 128), stride=2, first_activation=False),
                    block(channels=(256, 256), stride=2),
                    block(channels=(728, 728), stride=2),
                )
            ),
            StageSpec(blocks=(block(channels=(728, 728, 728)),) * 8),  # middle flow, repeated 8 times
            StageSpec(  # exit flow: 19 -> 10
                blocks=(
                    block(channels=(728, 1024), stride=2),
                    block(channels=(1536, 2048), residual=False),
                )
            ),
        ),
        head=ClassifierHeadSpec(),
        channel_divisor=1,
        input_size=299,
    )
