"""Depth models (Laina et al. 2016, FCRN): spec tables and registered builders (``task='depth'``).

``fcrn_resnet50`` is the paper's "ResNet-UpProj" (Table 1/2): ResNet-50 up to res5 (no pooling/FC),
1x1 conv 2048 -> 1024 + BN, four up-projection blocks 1024 -> 512 -> 256 -> 128 -> 64 in the fast
interleaved form, 3x3 conv to depth; 63.6M parameters (Sec. 3.1: "63.6 M").
``fcrn_mobilenetv2_100`` is the lightweight variant (ours, in the spirit of FastDepth, Wofk et al.
2019): MobileNetV2-1.0 features to the 320-channel reduction-32 level (the 1280-d pre-logits conv is
not a level), 1x1 conv to 256, four fast up-projections 256 -> 128 -> 64 -> 32 -> 16.
"""

from __future__ import annotations

from ..blocks.up_projection import UpProjectionSpec
from ..depth.spec import DepthModelSpec
from ..features import features_spec
from ..registry import get_spec, register_model
from ..resolve import resolve

__all__ = ["fcrn", "FCRN_DECODER_WIDTHS"]

#: Laina et al. 2016 Fig. 1: the widths after the bottleneck and after each up-projection
FCRN_DECODER_WIDTHS = (1024, 512, 256, 128, 64)
LIGHT_DECODER_WIDTHS = (256, 128, 64, 32, 16)


def fcrn(name: str, backbone: str, widths: tuple[int, ...], form: str = "fast") -> DepthModelSpec:
    """An FCRN depth spec on the reduction-32 level of the registered classifier ``backbone``."""
    encoder = features_spec(get_spec(backbone), out_indices=(-1,))
    channels = resolve(encoder).feature_info()[-1].channels
    decoder = tuple(UpProjectionSpec(in_channels=a, out_channels=b, form=form) for a, b in zip(widths[:-1], widths[1:]))
    return DepthModelSpec(name=name, backbone=encoder, backbone_channels=channels, bottleneck_channels=widths[0], decoder=decoder)


@register_model("fcrn_resnet50", family="fcrn", task="depth")
def fcrn_resnet50() -> DepthModelSpec:
    return fcrn("fcrn_resnet50", "resnet50", FCRN_DECODER_WIDTHS)


@register_model("fcrn_mobilenetv2_100", family="fcrn", task="depth")
def fcrn_mobilenetv2_100() -> DepthModelSpec:
    return fcrn("fcrn_mobilenetv2_100", "mobilenetv2_100", LIGHT_DECODER_WIDTHS)
