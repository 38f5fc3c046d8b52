"""ProxylessNAS (Cai et al., "ProxylessNAS: Direct Neural Architecture Search on Target Task and
Hardware", ICLR 2019).

Configuration: the searched networks of Fig. 4 (GPU, CPU, mobile), as released by the authors as
net configs (mit-han-lab/proxylessnas, ``proxyless_{gpu,cpu,mobile}.config``, loaded by
``proxyless_nas/model_zoo.py``). Each searched layer is an MBConv (inverted residual) with kernel
3, 5 or 7 and expansion 3 or 6, or the zero op: a ``ZeroLayer`` with an identity shortcut, i.e. the
identity, so it has no block here (``SKIP`` keeps its place in the tables).

Released details followed here: 3x3 stem with BN and ReLU6; a fixed first block (MBConv, e = 1,
k = 3, stride 1); ReLU6 in every block; expanded width = round(C_in * e) (every width is a multiple
of 8, so make_divisible changes nothing); shortcut where stride 1 and widths agree; 1x1 "feature mix"
conv with BN and ReLU6; linear classifier with bias. BatchNorm eps 1e-3: the released net configs
say ``"bn": {"momentum": 0.1, "eps": 0.001}`` (applied by ``model_zoo.proxyless_base`` through
``set_bn_param``; the search code's default ``bn_param=(0.1, 1e-3)``), so the spec carries it
(``NetworkSpec.norm_eps``): values only, counts unchanged. timm 1.0.31 and torchvision 0.28 have no
ProxylessNAS, so no library eps is carried by an import.
Published: top-1 75.1 (GPU, Table 3 / README), 75.3 (CPU, Fig. 4 / README), 74.6 (mobile, Table 2).
"""

from __future__ import annotations

from ..blocks import ClassifierHeadSpec, ConvNormActSpec, InvertedResidualSpec
from ..network import NetworkSpec, StageSpec
from ..registry import register_model

RELEASE_BATCHNORM_EPS = 1e-3  # the released net configs' "bn" eps (module docstring)

SKIP = None  # the zero op with identity shortcut: no module


def _mb(c: int, k: int, e: int, s: int = 1) -> InvertedResidualSpec:
    """One searched MBConv: "MB{e} {k}x{k}" of Fig. 4."""
    return InvertedResidualSpec(out_channels=c, kernel_size=k, stride=s, expansion_ratio=e, activation="relu6")


def _stages(*stages: tuple[InvertedResidualSpec | None, ...]) -> tuple[StageSpec, ...]:
    return tuple(StageSpec(blocks=tuple(block for block in stage if block is not SKIP)) for stage in stages)


# Fig. 4 (top) / proxyless_gpu.config: first block, then one tuple per resolution (56, 28, 14, 7)
_GPU = _stages(
    (_mb(24, 3, 1),),
    (_mb(32, 5, 3, s=2), SKIP, SKIP, SKIP),
    (_mb(56, 7, 3, s=2), SKIP, SKIP, _mb(56, 3, 3)),
    (_mb(112, 7, 6, s=2), SKIP, SKIP, _mb(112, 5, 3), _mb(128, 5, 6), SKIP, _mb(128, 3, 3), _mb(128, 5, 3)),
    (_mb(256, 7, 6, s=2), _mb(256, 7, 6), _mb(256, 7, 6), _mb(256, 5, 6), _mb(432, 7, 6)),
)

# Fig. 4 (middle) / proxyless_cpu.config
_CPU = _stages(
    (_mb(24, 3, 1),),
    (_mb(32, 3, 6, s=2), _mb(32, 3, 3), _mb(32, 3, 3), _mb(32, 3, 3)),
    (_mb(48, 3, 6, s=2), _mb(48, 3, 3), _mb(48, 3, 3), _mb(48, 5, 3)),
    (_mb(88, 3, 6, s=2), SKIP, SKIP, _mb(88, 3, 3), _mb(104, 5, 6), _mb(104, 3, 3), _mb(104, 3, 3), _mb(104, 3, 3)),
    (_mb(216, 5, 6, s=2), _mb(216, 5, 3), _mb(216, 5, 3), _mb(216, 3, 3), _mb(360, 5, 6)),
)

# Fig. 4 (bottom) / proxyless_mobile.config
_MOBILE = _stages(
    (_mb(16, 3, 1),),
    (_mb(32, 5, 3, s=2), _mb(32, 3, 3), SKIP, SKIP),
    (_mb(40, 7, 3, s=2), _mb(40, 3, 3), _mb(40, 5, 3), _mb(40, 5, 3)),
    (_mb(80, 7, 6, s=2), _mb(80, 5, 3), _mb(80, 5, 3), _mb(80, 5, 3), _mb(96, 5, 6), _mb(96, 5, 3), _mb(96, 5, 3), _mb(96, 5, 3)),
    (_mb(192, 7, 6, s=2), _mb(192, 7, 6), _mb(192, 7, 3), _mb(192, 7, 3), _mb(320, 7, 6)),
)


def proxylessnas(name: str, stem_channels: int, stages: tuple[StageSpec, ...], last_channels: int) -> NetworkSpec:
    feature_mix = ConvNormActSpec(out_channels=last_channels, kernel_size=1, activation="relu6")
    return NetworkSpec(
        name=name,
        stem=(ConvNormActSpec(out_channels=stem_channels, kernel_size=3, stride=2, activation="relu6"),),
        stages=stages + (StageSpec(blocks=(feature_mix,)),),
        head=ClassifierHeadSpec(dropout=0.1),
        pre_logits_stages=1,  # the last 1x1 conv feeds the classifier: not a feature level (as timm)
        channel_divisor=8,
        norm_eps=RELEASE_BATCHNORM_EPS,
    )


@register_model("proxylessnas_cpu", family="proxylessnas")
def proxylessnas_cpu() -> NetworkSpec:
    return proxylessnas("proxylessnas_cpu", 40, _CPU, 1432)


@register_model("proxylessnas_gpu", family="proxylessnas")
def proxylessnas_gpu() -> NetworkSpec:
    return proxylessnas("proxylessnas_gpu", 40, _GPU, 1728)


@register_model("proxylessnas_mobile", family="proxylessnas")
def proxylessnas_mobile() -> NetworkSpec:
    return proxylessnas("proxylessnas_mobile", 32, _MOBILE, 1280)
