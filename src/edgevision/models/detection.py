"""Detection models: spec tables and registered builders (``register_model(..., task='detection')``).

SSDLite320 on MobileNetV3-Large is torchvision's ``ssdlite320_mobilenet_v3_large`` (3,440,060
parameters at 90 + 1 classes); SSDLite on MobileNetV2 is the MobileNetV2 paper's detector (Sec. 6.2,
Table 6: 4.3M parameters at COCO's 80 + 1 classes in the TF release, which puts 3 priors on the
first level; ours keeps 6 on every level as torchvision does: 4.48M).
"""

from __future__ import annotations

from ..detection.picodet import PicoDetSpec
from ..detection.ssdlite import SSDLiteSpec
from ..detection.yolo_gsconv import YOLOGSConvSpec
from ..registry import register_model


@register_model("ssdlite320_mobilenetv3_large", family="ssdlite", task="detection")
def ssdlite320_mobilenetv3_large() -> SSDLiteSpec:
    return SSDLiteSpec(name="ssdlite320_mobilenetv3_large", backbone="mobilenet_v3_large", num_classes=90)


@register_model("ssdlite320_mobilenetv2", family="ssdlite", task="detection")
def ssdlite320_mobilenetv2() -> SSDLiteSpec:
    return SSDLiteSpec(name="ssdlite320_mobilenetv2", backbone="mobilenet_v2", num_classes=80)


@register_model("picodet_s_320", family="picodet", task="detection")
def picodet_s_320() -> PicoDetSpec:
    # PP-PicoDet-S, PaddleDetection's 2021.10 release (picodet_s_320_coco.yml): ESNet x0.75, CSP-PAN 96, 0.99M params
    return PicoDetSpec(name="picodet_s_320", num_classes=80)


@register_model("yolov5n_gsconv", family="yolo_gsconv", task="detection")
def yolov5n_gsconv() -> YOLOGSConvSpec:
    # YOLOv5n's backbone (width 0.25, depth 0.33) + the GSConv slim-neck (Li et al. 2022), anchor-free GFL Detect
    return YOLOGSConvSpec(name="yolov5n_gsconv", input_size=640, width=0.25, depth=0.33, num_classes=80)


@register_model("yolov5s_gsconv", family="yolo_gsconv", task="detection")
def yolov5s_gsconv() -> YOLOGSConvSpec:
    # YOLOv5s's backbone (width 0.5, depth 0.33) + the slim-neck: the paper's YOLOv5s-based detector layout
    return YOLOGSConvSpec(name="yolov5s_gsconv", input_size=640, width=0.5, depth=0.33, num_classes=80)
