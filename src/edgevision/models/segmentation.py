"""Segmentation models: spec tables and registered builders (``register_model(..., task='segmentation')``).

* ``lraspp_mobilenet_v3_large`` / ``deeplabv3_mobilenet_v3_large``: torchvision's structure (21 VOC
  classes, 520 px, taps at the first 1/8 block and the 960-ch 1x1 conv at output stride 16,
  torchvision's dilation) — 3,221,538 and 11,029,328 parameters (the latter with its FCN aux head),
  as torchvision's model cards; they load torchvision's weights (``edgevision.weights``).
* ``lraspp_mobilenet_v3_small``: LR-ASPP on MobileNetV3-Small (Howard et al. 2019, Table 7).
* ``deeplabv3_mobilenet_v2`` (output stride 16) / ``deeplabv3_mobilenet_v2_os8``: Mobile DeepLabv3
  (Sandler et al. 2018, Sec. 6.3, Table 7): ASPP reduced to 1x1 + image pooling on the 320-ch
  features, classified directly (no 3x3 conv); 513 px; 2.11M params at 21 classes as the paper's Table 7.
* ``unet_mobilenet_v2``: a real-time U-Net on MobileNetV2's pyramid (depthwise-separable decoder).
* ``binary_fcn``: a binarized FCN (binary weights and activations with learnable thresholds; 256 px,
  output stride 8), :mod:`edgevision.segmentation.binary`.
"""

from __future__ import annotations

from ..registry import get_spec, register_model
from ..segmentation.binary import BinaryFCNSpec
from ..segmentation.models import DeepLabV3Spec, LRASPPSpec, UNetSpec, block_path_at


def _lraspp(name: str, backbone: str, **fields) -> LRASPPSpec:
    net = get_spec(backbone)
    return LRASPPSpec(
        name=name, backbone=net, low_tap=block_path_at(net, 8, first=True), high_tap=f"stages.{len(net.stages) - 1}.0", **fields,
    )


@register_model("lraspp_mobilenet_v3_large", family="lraspp", task="segmentation")
def lraspp_mobilenet_v3_large() -> LRASPPSpec:
    return _lraspp("lraspp_mobilenet_v3_large", "mobilenetv3_large_100", dilation_style="torchvision", backbone_norm_eps=1e-3)


@register_model("lraspp_mobilenet_v3_small", family="lraspp", task="segmentation")
def lraspp_mobilenet_v3_small() -> LRASPPSpec:
    return _lraspp("lraspp_mobilenet_v3_small", "mobilenetv3_small_100", dilation_style="torchvision", backbone_norm_eps=1e-3)


@register_model("deeplabv3_mobilenet_v3_large", family="deeplabv3", task="segmentation")
def deeplabv3_mobilenet_v3_large() -> DeepLabV3Spec:
    net = get_spec("mobilenetv3_large_100")
    return DeepLabV3Spec(
        name="deeplabv3_mobilenet_v3_large", backbone=net, tap=f"stages.{len(net.stages) - 1}.0",
        aux_tap=block_path_at(net, 8, first=True), dilation_style="torchvision", backbone_norm_eps=1e-3,
    )


def _mobile_deeplab(name: str, output_stride: int) -> DeepLabV3Spec:
    net = get_spec("mobilenetv2_100")
    last_feature = f"stages.{len(net.stages) - 2}.0"  # the 320-ch block; the 1x1 conv to 1280 only feeds the classifier
    return DeepLabV3Spec(name=name, backbone=net, tap=last_feature, atrous_rates=(), head_conv=False, input_size=513, output_stride=output_stride)


@register_model("deeplabv3_mobilenet_v2", family="deeplabv3", task="segmentation")
def deeplabv3_mobilenet_v2() -> DeepLabV3Spec:
    return _mobile_deeplab("deeplabv3_mobilenet_v2", 16)


@register_model("deeplabv3_mobilenet_v2_os8", family="deeplabv3", task="segmentation")
def deeplabv3_mobilenet_v2_os8() -> DeepLabV3Spec:
    return _mobile_deeplab("deeplabv3_mobilenet_v2_os8", 8)


@register_model("unet_mobilenet_v2", family="unet", task="segmentation")
def unet_mobilenet_v2() -> UNetSpec:
    net = get_spec("mobilenetv2_100")
    skips = tuple(block_path_at(net, r) for r in (2, 4, 8, 16)) + (f"stages.{len(net.stages) - 2}.0",)
    return UNetSpec(name="unet_mobilenet_v2", backbone=net, skip_taps=skips, decoder_channels=(96, 64, 32, 16), output_stride=32, input_size=512)


@register_model("binary_fcn", family="binary_fcn", task="segmentation")
def binary_fcn() -> BinaryFCNSpec:
    # four 3x3 convs 32-64-128-256 at strides 2-2-2-1 (output stride 8): the first full precision, three binary
    return BinaryFCNSpec(name="binary_fcn")
