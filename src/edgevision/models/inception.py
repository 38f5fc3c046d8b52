"""Inception v3, Inception v4 and Inception-ResNet v2, at their native 299x299.

Inception v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
2016): Table 1 of the paper (stem of valid 3x3 convs; 3 x Fig. 5 modules at 35x35, grid reduction
Fig. 10, 4 x Fig. 6 modules with 1x7 / 7x1 factorization at 17x17, reduction, 2 x Fig. 7 expanded
modules at 8x8), widths as the reference PyTorch release (torchvision ``inception.py``: modules
InceptionA-E; BN eps 1e-3; the pool branch averages with ``count_include_pad``; dropout 0.5).
The auxiliary classifier (Sec. 4) is training-only and not built: torchvision's ``_meta``
num_params 27161264 *includes* it (its weights keep ``AuxLogits``: 1x1 conv 768 -> 128 + BN,
5x5 conv 128 -> 768 + BN, fc 768 -> 1000, together 3326696), so the inference network has
27161264 - 3326696 = 23834568 parameters, which is what we count.

Inception v4 and Inception-ResNet v2 (Szegedy et al., "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", AAAI 2017): Figs. 3-8 (v4: stem, 4 x Inception-A,
Reduction-A, 7 x Inception-B, Reduction-B, 3 x Inception-C) and Figs. 16-18 with the v2 stem of
the authors' release (Inception-ResNet v2: 10 x block35, 20 x block17, 9 + 1 x block8). Official
definition: the authors' TF-slim release (tensorflow/models ``research/slim/nets/inception_v4.py``,
``inception_resnet_v2.py``): BatchNorm with eps 1e-3 and *no* scale (``slim.batch_norm``'s default
``scale=False``), 'SAME' average pooling that excludes the padding, residual scales 0.17 / 0.10 /
0.20 and a last block8 without ReLU, dropout keep 0.8. Its auxiliary logits are not built and its
1001-way classifier (background class) is counted at 1000 classes.
"""

from __future__ import annotations

from ..blocks import (
    ClassifierHeadSpec,
    InceptionBranchSpec,
    InceptionConvSpec,
    InceptionModuleSpec,
    InceptionPoolSpec,
)
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

Layer = InceptionConvSpec | InceptionPoolSpec


def c(width: int, kernel: int | tuple[int, int] = 1, stride: int = 1, padding: str = "same") -> InceptionConvSpec:
    """conv -> BN -> ReLU; ``kernel`` 3 means 3x3, (1, 7) means 1 high x 7 wide."""
    kernel_size = (kernel, kernel) if isinstance(kernel, int) else kernel
    return InceptionConvSpec(out_channels=width, kernel_size=kernel_size, stride=stride, padding=padding)


def _branch(*layers: Layer, split: tuple[InceptionConvSpec, ...] = ()) -> InceptionBranchSpec:
    return InceptionBranchSpec(layers=layers, split=split)


MAX_POOL_3X3_S2 = InceptionPoolSpec(mode="max", kernel_size=3, stride=2, padding="valid")
AVG_POOL_TORCHVISION = InceptionPoolSpec(mode="avg", kernel_size=3, stride=1, count_include_pad=True)
AVG_POOL_TF_SAME = InceptionPoolSpec(mode="avg", kernel_size=3, stride=1, count_include_pad=False)


# ---- Inception v3 (torchvision layout) ------------------------------------------------------
def _v3(*branches: InceptionBranchSpec) -> InceptionModuleSpec:
    return InceptionModuleSpec(branches=branches)


def _v3_conv(width: int, kernel: int = 1, stride: int = 1, padding: str = "same") -> InceptionModuleSpec:
    return _v3(_branch(c(width, kernel, stride, padding)))


def inception_v3_a(pool_features: int) -> InceptionModuleSpec:
    """Fig. 5 (35x35): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1 (torchvision InceptionA)."""
    return _v3(
        _branch(c(64)),
        _branch(c(48), c(64, 5)),
        _branch(c(64), c(96, 3), c(96, 3)),
        _branch(AVG_POOL_TORCHVISION, c(pool_features)),
    )


def inception_v3_reduction_a() -> InceptionModuleSpec:
    """Fig. 10 (35 -> 17): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool /2 (torchvision InceptionB)."""
    return _v3(
        _branch(c(384, 3, 2, "valid")),
        _branch(c(64), c(96, 3), c(96, 3, 2, "valid")),
        _branch(MAX_POOL_3X3_S2),
    )


def inception_v3_b(channels_7x7: int) -> InceptionModuleSpec:
    """Fig. 6 with n = 7 (17x17): factorized 7x7 branches (torchvision InceptionC)."""
    c7 = channels_7x7
    return _v3(
        _branch(c(192)),
        _branch(c(c7), c(c7, (1, 7)), c(192, (7, 1))),
        _branch(c(c7), c(c7, (7, 1)), c(c7, (1, 7)), c(c7, (7, 1)), c(192, (1, 7))),
        _branch(AVG_POOL_TORCHVISION, c(192)),
    )


def inception_v3_reduction_b() -> InceptionModuleSpec:
    """17 -> 8 reduction (torchvision InceptionD)."""
    return _v3(
        _branch(c(192), c(320, 3, 2, "valid")),
        _branch(c(192), c(192, (1, 7)), c(192, (7, 1)), c(192, 3, 2, "valid")),
        _branch(MAX_POOL_3X3_S2),
    )


def inception_v3_c() -> InceptionModuleSpec:
    """Fig. 7 (8x8): expanded filter bank, branches ending in parallel 1x3 / 3x1 (torchvision InceptionE)."""
    split = (c(384, (1, 3)), c(384, (3, 1)))
    return _v3(
        _branch(c(320)),
        _branch(c(384), split=split),
        _branch(c(448), c(384, 3), split=split),
        _branch(AVG_POOL_TORCHVISION, c(192)),
    )


@register_model("inception_v3", family="inception")
def inception_v3() -> NetworkSpec:
    pool = _v3(_branch(MAX_POOL_3X3_S2))
    return NetworkSpec(
        name="inception_v3",
        # Table 1: conv 3x3/2 (32), conv 3x3 (32), conv padded 3x3 (64), pool 3x3/2, conv 1x1 (80), conv 3x3 (192), pool
        stem=(
            _v3_conv(32, 3, 2, "valid"),  # 299 -> 149
            _v3_conv(32, 3, 1, "valid"),  # -> 147
            _v3_conv(64, 3),  # -> 147
            pool,  # -> 73
            _v3_conv(80, 1, 1, "valid"),
            _v3_conv(192, 3, 1, "valid"),  # -> 71
            pool,  # -> 35
        ),
        stages=(
            StageSpec(blocks=(inception_v3_a(32), inception_v3_a(64), inception_v3_a(64))),  # 35x35: 256, 288, 288
            StageSpec(
                blocks=(
                    inception_v3_reduction_a(),  # -> 17x17x768
                    inception_v3_b(128),
                    inception_v3_b(160),
                    inception_v3_b(160),
                    inception_v3_b(192),
                )
            ),
            StageSpec(blocks=(inception_v3_reduction_b(), inception_v3_c(), inception_v3_c())),  # -> 8x8x1280 -> 2048
        ),
        head=ClassifierHeadSpec(dropout=0.5),
        channel_divisor=1,
        input_size=299,
    )


# ---- Inception v4 and Inception-ResNet v2 (TF-slim layout) ------------------------------------
def _slim(*branches: InceptionBranchSpec, residual_scale: float | None = None, activation: bool = True) -> InceptionModuleSpec:
    """A TF-slim module: BN eps 1e-3 without scale (gamma)."""
    return InceptionModuleSpec(
        branches=branches, residual_scale=residual_scale, residual_activation=activation, norm_scale=False
    )


def _slim_conv(width: int, kernel: int = 1, stride: int = 1, padding: str = "same") -> InceptionModuleSpec:
    return _slim(_branch(c(width, kernel, stride, padding)))


_SLIM_MAX_POOL = _slim(_branch(MAX_POOL_3X3_S2))


def inception_v4_a() -> InceptionModuleSpec:
    """Fig. 4 (35x35, 384 wide)."""
    return _slim(
        _branch(c(96)),
        _branch(c(64), c(96, 3)),
        _branch(c(64), c(96, 3), c(96, 3)),
        _branch(AVG_POOL_TF_SAME, c(96)),
    )


def reduction_a(k: int, l: int, m: int, n: int) -> InceptionModuleSpec:
    """Fig. 7 (35 -> 17) with Table 1's k, l, m, n (v4: 192, 224, 256, 384; Inception-ResNet v2: 256, 256, 384, 384)."""
    return _slim(
        _branch(c(n, 3, 2, "valid")),
        _branch(c(k), c(l, 3), c(m, 3, 2, "valid")),
        _branch(MAX_POOL_3X3_S2),
    )


def inception_v4_b() -> InceptionModuleSpec:
    """Fig. 5 (17x17, 1024 wide)."""
    return _slim(
        _branch(c(384)),
        _branch(c(192), c(224, (1, 7)), c(256, (7, 1))),
        _branch(c(192), c(192, (7, 1)), c(224, (1, 7)), c(224, (7, 1)), c(256, (1, 7))),
        _branch(AVG_POOL_TF_SAME, c(128)),
    )


def inception_v4_reduction_b() -> InceptionModuleSpec:
    """Fig. 8 (17 -> 8)."""
    return _slim(
        _branch(c(192), c(192, 3, 2, "valid")),
        _branch(c(256), c(256, (1, 7)), c(320, (7, 1)), c(320, 3, 2, "valid")),
        _branch(MAX_POOL_3X3_S2),
    )


def inception_v4_c() -> InceptionModuleSpec:
    """Fig. 6 (8x8, 1536 wide)."""
    split = (c(256, (1, 3)), c(256, (3, 1)))
    return _slim(
        _branch(c(256)),
        _branch(c(384), split=split),
        _branch(c(384), c(448, (3, 1)), c(512, (1, 3)), split=split),
        _branch(AVG_POOL_TF_SAME, c(256)),
    )


def _repeat(block: InceptionModuleSpec, count: int) -> tuple[InceptionModuleSpec, ...]:
    return (block,) * count


@register_model("inception_v4", family="inception")
def inception_v4() -> NetworkSpec:
    return NetworkSpec(
        name="inception_v4",
        # Fig. 3, the stem: 3 convs, then three two-branch mixed blocks
        stem=(
            _slim_conv(32, 3, 2, "valid"),  # 299 -> 149
            _slim_conv(32, 3, 1, "valid"),  # -> 147
            _slim_conv(64, 3),
            _slim(_branch(MAX_POOL_3X3_S2), _branch(c(96, 3, 2, "valid"))),  # Mixed_3a -> 73x73x160
            _slim(  # Mixed_4a -> 71x71x192
                _branch(c(64), c(96, 3, 1, "valid")),
                _branch(c(64), c(64, (1, 7)), c(64, (7, 1)), c(96, 3, 1, "valid")),
            ),
            _slim(_branch(c(192, 3, 2, "valid")), _branch(MAX_POOL_3X3_S2)),  # Mixed_5a -> 35x35x384
        ),
        stages=(
            StageSpec(blocks=_repeat(inception_v4_a(), 4)),
            StageSpec(blocks=(reduction_a(192, 224, 256, 384),) + _repeat(inception_v4_b(), 7)),  # -> 17x17x1024
            StageSpec(blocks=(inception_v4_reduction_b(),) + _repeat(inception_v4_c(), 3)),  # -> 8x8x1536
        ),
        head=ClassifierHeadSpec(dropout=0.2),  # TF-slim: dropout keep_prob 0.8
        channel_divisor=1,
        input_size=299,
    )


def block35() -> InceptionModuleSpec:
    """Fig. 16 (Inception-ResNet-A, 35x35x320), residual scale 0.17."""
    return _slim(
        _branch(c(32)),
        _branch(c(32), c(32, 3)),
        _branch(c(32), c(48, 3), c(64, 3)),
        residual_scale=0.17,
    )


def block17() -> InceptionModuleSpec:
    """Fig. 17 (Inception-ResNet-B, 17x17x1088), residual scale 0.10."""
    return _slim(_branch(c(192)), _branch(c(128), c(160, (1, 7)), c(192, (7, 1))), residual_scale=0.10)


def block8(scale: float = 0.20, activation: bool = True) -> InceptionModuleSpec:
    """Fig. 19 (Inception-ResNet-C, 8x8x2080), residual scale 0.20; the last one: scale 1.0, no ReLU."""
    return _slim(_branch(c(192)), _branch(c(192), c(224, (1, 3)), c(256, (3, 1))), residual_scale=scale, activation=activation)


@register_model("inception_resnet_v2", family="inception")
def inception_resnet_v2() -> NetworkSpec:
    return NetworkSpec(
        name="inception_resnet_v2",
        # the TF-slim release's stem (its Mixed_5b replaces Fig. 3's last mixed blocks)
        stem=(
            _slim_conv(32, 3, 2, "valid"),  # 299 -> 149
            _slim_conv(32, 3, 1, "valid"),  # -> 147
            _slim_conv(64, 3),
            _SLIM_MAX_POOL,  # -> 73
            _slim_conv(80, 1, 1, "valid"),
            _slim_conv(192, 3, 1, "valid"),  # -> 71
            _SLIM_MAX_POOL,  # -> 35
            _slim(  # Mixed_5b -> 35x35x320
                _branch(c(96)),
                _branch(c(48), c(64, 5)),
                _branch(c(64), c(96, 3), c(96, 3)),
                _branch(AVG_POOL_TF_SAME, c(64)),
            ),
        ),
        stages=(
            StageSpec(blocks=_repeat(block35(), 10)),
            StageSpec(blocks=(reduction_a(256, 256, 384, 384),) + _repeat(block17(), 20)),  # Mixed_6a -> 17x17x1088
            StageSpec(
                blocks=(
                    _slim(  # Mixed_7a -> 8x8x2080
                        _branch(c(256), c(384, 3, 2, "valid")),
                        _branch(c(256), c(288, 3, 2, "valid")),
                        _branch(c(256), c(288, 3), c(320, 3, 2, "valid")),
                        _branch(MAX_POOL_3X3_S2),
                    ),
                )
                + _repeat(block8(), 9)
                + (block8(scale=1.0, activation=False), _slim_conv(1536))  # Conv2d_7b_1x1
            ),
        ),
        head=ClassifierHeadSpec(dropout=0.2),  # TF-slim: dropout keep_prob 0.8
        channel_divisor=1,
        input_size=299,
    )
