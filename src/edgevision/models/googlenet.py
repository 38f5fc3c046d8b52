"""GoogLeNet (Szegedy et al., "Going Deeper with Convolutions", CVPR 2015).

Configuration: Table 1 of the paper (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj per
inception module 3a ... 5b), in the layout of the reference PyTorch release (torchvision
``googlenet.py``, the model its published weights are): BatchNorm (eps 1e-3) after every conv,
Caffe-style max pooling (``ceil_mode``), 3x3 max pool branch, dropout 0.2 before the classifier.

Two documented deviations from Table 1, both torchvision's:
- the "5x5" branch is a 3x3 conv (torchvision: "kernel_size=3 instead of kernel_size=5 is a known
  bug"; the released weights have it). ``FIVE_BY_FIVE_KERNEL`` below names it.
- the two auxiliary classifiers (paper Sec. 6) are training-time only and are not built: the
  network is the inference network the paper's 1.5G multiply-adds count. torchvision's ``_meta``
  num_params 6624904 is of that network too (its pretrained builder drops ``aux1``/``aux2``).
"""

from __future__ import annotations

from ..blocks import (
    ClassifierHeadSpec,
    InceptionBranchSpec,
    InceptionConvSpec,
    InceptionModuleSpec,
    InceptionPoolSpec,
    MaxPoolSpec,
)
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

FIVE_BY_FIVE_KERNEL = (3, 3)  # Table 1 says 5x5; torchvision's released network uses 3x3 (see module docstring)


def conv(out_channels: int, kernel_size: int = 1, stride: int = 1) -> InceptionModuleSpec:
    """A plain conv -> BN(eps 1e-3) -> ReLU (the stem's convs), as a one-branch module."""
    layer = InceptionConvSpec(out_channels=out_channels, kernel_size=(kernel_size, kernel_size), stride=stride)
    return InceptionModuleSpec(branches=(InceptionBranchSpec(layers=(layer,)),))


def inception(c1x1: int, c3x3_reduce: int, c3x3: int, c5x5_reduce: int, c5x5: int, pool_proj: int) -> InceptionModuleSpec:
    """One Table 1 row: 1x1 | 1x1 -> 3x3 | 1x1 -> "5x5" | 3x3 max pool -> 1x1."""

    def c(width: int, kernel: tuple[int, int] = (1, 1)) -> InceptionConvSpec:
        return InceptionConvSpec(out_channels=width, kernel_size=kernel)

    pool = InceptionPoolSpec(mode="max", kernel_size=3, stride=1, ceil_mode=True)
    return InceptionModuleSpec(
        branches=(
            InceptionBranchSpec(layers=(c(c1x1),)),
            InceptionBranchSpec(layers=(c(c3x3_reduce), c(c3x3, (3, 3)))),
            InceptionBranchSpec(layers=(c(c5x5_reduce), c(c5x5, FIVE_BY_FIVE_KERNEL))),
            InceptionBranchSpec(layers=(pool, c(pool_proj))),
        )
    )


def _max_pool(kernel_size: int = 3) -> MaxPoolSpec:
    # torchvision: MaxPool2d(3, 2, ceil_mode=True) and MaxPool2d(2, 2, ceil_mode=True), no padding
    return MaxPoolSpec(kernel_size=kernel_size, stride=2, padding="valid", ceil_mode=True)


@register_model("googlenet", family="googlenet")
def googlenet() -> NetworkSpec:
    return NetworkSpec(
        name="googlenet",
        # Table 1: conv 7x7/2 (64), max pool 3x3/2, conv 1x1 (64) + conv 3x3 (192), max pool 3x3/2
        stem=(conv(64, 7, 2), _max_pool(), conv(64), conv(192, 3), _max_pool()),
        stages=(
            StageSpec(blocks=(inception(64, 96, 128, 16, 32, 32), inception(128, 128, 192, 32, 96, 64))),  # 3a, 3b
            StageSpec(
                blocks=(
                    _max_pool(),
                    inception(192, 96, 208, 16, 48, 64),  # 4a
                    inception(160, 112, 224, 24, 64, 64),  # 4b
                    inception(128, 128, 256, 24, 64, 64),  # 4c
                    inception(112, 144, 288, 32, 64, 64),  # 4d
                    inception(256, 160, 320, 32, 128, 128),  # 4e
                )
            ),
            StageSpec(
                blocks=(
                    _max_pool(2),
                    inception(256, 160, 320, 32, 128, 128),  # 5a
                    inception(384, 192, 384, 48, 128, 128),  # 5b
                )
            ),
        ),
        head=ClassifierHeadSpec(dropout=0.2),  # Table 1: avg pool 7x7, dropout (40% in the paper; torchvision 0.2), linear
        channel_divisor=1,
    )
