"""SSDLite (Sandler et al. 2018, MobileNetV2 Sec. 6.2; Howard et al. 2019, MobileNetV3 Sec. 6.2).

SSD (Liu et al. 2016) with every prediction and extra-layer 3x3 conv replaced by a depthwise-
separable one. Structure and module names follow torchvision's ``ssdlite320_mobilenet_v3_large``
(3,440,060 parameters at 91 logits) so its state dict loads key for key: the backbone is split at
the expansion conv of the first stride-32 block (C4, stride 16: 672 channels on MobileNetV3-Large,
576 on MobileNetV2), the rest of the backbone gives C5 (480 on the reduced-tail V3, 1280 on V2),
four extra blocks (1x1 -> depthwise 3x3 stride 2 -> 1x1) give 512, 256, 256, 128 channels; six
levels of 20, 10, 5, 3, 2, 1 cells at 320 px, 6 priors per cell (aspect ratios 2 and 3).

Classes: ``num_classes`` counts foreground classes (labels 0..K-1); the head predicts K+1 logits with
background at index 0, as SSD and torchvision do (torchvision's 91 = 90 COCO ids + background).
The model takes images already normalized with mean = std = 0.5 (torchvision's SSDLite transform).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.make_divisible import make_divisible
from ..task_spec import TaskModelSpec
from .anchors import BoxCoder, halving_grid_sizes, ssd_anchor_counts, ssd_default_boxes
from .boxes import box_iou, clip_boxes
from .export import ExportsWithNMS
from .nms import batched_nms, onnx_non_max_suppression

__all__ = ["SSDLite", "SSDLiteSpec", "SSDLiteDeployed", "match_priors"]

_BACKBONES = ("mobilenet_v3_large", "mobilenet_v2")

# (in, kernel, expanded, out, squeeze-excite, activation, stride) per inverted-residual block.
# MobileNetV3-Large, Table 1 of Howard et al., with torchvision's reduce_tail (the last stage halved:
# 160 -> 80, 960 -> 480) as its SSDLite uses; block 12 (0-based) is the C4 split.
_V3_LARGE_REDUCED = (
    (16, 3, 16, 16, False, "relu", 1), (16, 3, 64, 24, False, "relu", 2), (24, 3, 72, 24, False, "relu", 1),
    (24, 5, 72, 40, True, "relu", 2), (40, 5, 120, 40, True, "relu", 1), (40, 5, 120, 40, True, "relu", 1),
    (40, 3, 240, 80, False, "hard_swish", 2), (80, 3, 200, 80, False, "hard_swish", 1),
    (80, 3, 184, 80, False, "hard_swish", 1), (80, 3, 184, 80, False, "hard_swish", 1),
    (80, 3, 480, 112, True, "hard_swish", 1), (112, 3, 672, 112, True, "hard_swish", 1),
    (112, 5, 672, 80, True, "hard_swish", 2), (80, 5, 480, 80, True, "hard_swish", 1), (80, 5, 480, 80, True, "hard_swish", 1),
)


def _v2_rows():
    """MobileNetV2, Table 2 of Sandler et al.: (t, c, n, s) rows expanded to blocks (ReLU6, no SE)."""
    rows, width = [], 32
    for expansion, out, repeats, stride in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for index in range(repeats):
            rows.append((width, 3, width * expansion, out, False, "relu6", stride if index == 0 else 1))
            width = out
    return tuple(rows)


#: backbone -> (stem channels, stem activation, blocks, last conv channels, index of the C4 block)
_BACKBONE_TABLES = {
    "mobilenet_v3_large": (16, "hard_swish", _V3_LARGE_REDUCED, 480, 12),
    "mobilenet_v2": (32, "relu6", _v2_rows(), 1280, 13),
}


def _activation(name: str | None) -> nn.Module | None:
    return {"relu": lambda: nn.ReLU(inplace=True), "relu6": lambda: nn.ReLU6(inplace=True),
            "hard_swish": nn.Hardswish, None: lambda: None}[name]()


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=0.001, momentum=0.03)  # torchvision's SSDLite norm settings


class ConvNormAct(nn.Sequential):
    """conv (0), batch norm (1), activation (2): torchvision's Conv2dNormActivation layout."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, groups=1, activation="relu6"):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                  _batch_norm(out_channels)]
        act = _activation(activation)
        super().__init__(*layers, *([act] if act is not None else []))


class SqueezeExcitation(nn.Module):
    """Hu et al. 2018 as MobileNetV3 uses it: ReLU inside, hard-sigmoid gate."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))


class InvertedResidual(nn.Module):
    """Expansion 1x1 (if any), depthwise kxk, SE (if any), projection 1x1; residual when shapes allow."""

    def __init__(self, in_channels, kernel, expanded, out_channels, use_se, activation, stride) -> None:
        super().__init__()
        layers = [] if expanded == in_channels else [ConvNormAct(in_channels, expanded, 1, activation=activation)]
        layers.append(ConvNormAct(expanded, expanded, kernel, stride, groups=expanded, activation=activation))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(ConvNormAct(expanded, out_channels, 1, activation=None))
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class _SSDLiteBackbone(nn.Module):
    def __init__(self, backbone: str, extra_channels: tuple[int, ...], in_channels: int = 3) -> None:
        super().__init__()
        stem, stem_act, rows, last, c4 = _BACKBONE_TABLES[backbone]
        blocks = [InvertedResidual(*row) for row in rows]
        split = blocks[c4]
        tail = nn.Sequential()  # the C4 block after its expansion conv, keeping torchvision's indices (1, 2, 3)
        for name, layer in list(split.block.named_children())[1:]:
            tail.add_module(name, layer)
        self.features = nn.Sequential(
            nn.Sequential(ConvNormAct(in_channels, stem, 3, 2, activation=stem_act), *blocks[:c4], split.block[0]),  # -> C4, stride 16
            nn.Sequential(tail, *blocks[c4 + 1:], ConvNormAct(rows[-1][3], last, 1, activation=stem_act)),  # -> C5, stride 32
        )
        self.out_channels = [rows[c4][2], last, *extra_channels]
        self.extra = nn.ModuleList()
        for in_channels, out_channels in zip(self.out_channels[1:-1], extra_channels):
            middle = out_channels // 2
            self.extra.append(nn.Sequential(
                ConvNormAct(in_channels, middle, 1), ConvNormAct(middle, middle, 3, 2, groups=middle), ConvNormAct(middle, out_channels, 1)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for stage in self.features:
            x = stage(x)
            outputs.append(x)
        for block in self.extra:
            x = block(x)
            outputs.append(x)
        return outputs


class _PredictionHead(nn.Module):
    def __init__(self, in_channels: list[int], anchors: list[int], columns: int) -> None:
        super().__init__()
        self.columns = columns
        self.module_list = nn.ModuleList(
            nn.Sequential(ConvNormAct(c, c, 3, groups=c), nn.Conv2d(c, a * columns, 1)) for c, a in zip(in_channels, anchors))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for feature, module in zip(features, self.module_list):
            result = module(feature)  # (N, A*C, H, W) -> (N, H*W*A, C): location-major like the priors
            n, _, h, w = result.shape
            outputs.append(result.view(n, -1, self.columns, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, self.columns))
        return torch.cat(outputs, dim=1)


class _SSDLiteHead(nn.Module):
    def __init__(self, in_channels, anchors, num_logits) -> None:
        super().__init__()
        self.classification_head = _PredictionHead(in_channels, anchors, num_logits)
        self.regression_head = _PredictionHead(in_channels, anchors, 4)


@dataclass(frozen=True, kw_only=True)
class SSDLiteSpec(TaskModelSpec):
    """An SSDLite detector: backbone table, extra layers, priors and post-processing settings."""

    kind: ClassVar[str] = "ssdlite"
    task: ClassVar[str] = "detection"
    name: str
    backbone: str = "mobilenet_v3_large"
    in_channels: int = 3
    input_size: int = 320
    num_classes: int = 90
    extra_channels: tuple[int, ...] = (512, 256, 256, 128)
    aspect_ratios: tuple[float, ...] = (2.0, 3.0)
    min_ratio: float = 0.2
    max_ratio: float = 0.95
    score_threshold: float = 0.001
    nms_iou: float = 0.55
    detections_per_image: int = 300
    topk_candidates: int = 300

    def __post_init__(self) -> None:
        if self.backbone not in _BACKBONES:
            raise ValueError(f"SSDLiteSpec.backbone must be one of {', '.join(_BACKBONES)}, got {self.backbone!r}")
        if self.num_classes < 1:
            raise ValueError(f"SSDLiteSpec.num_classes must be >= 1 (foreground classes), got {self.num_classes}")
        if self.in_channels < 1:
            raise ValueError(f"SSDLiteSpec.in_channels must be >= 1, got {self.in_channels}")

    def with_classes(self, num_classes: int) -> "SSDLiteSpec":
        from dataclasses import replace

        return replace(self, num_classes=num_classes)

    def with_input_channels(self, in_channels: int) -> "SSDLiteSpec":
        from dataclasses import replace

        return replace(self, in_channels=in_channels)

    def build(self) -> "SSDLite":
        return SSDLite(self)


def match_priors(boxes: torch.Tensor, priors: torch.Tensor, iou_threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """SSD matching (Liu et al. 2016, Sec. 2.2): boxes (M >= 1, 4) and priors (A, 4) xyxy ->
    (foreground (A,) bool, matched box index (A,)). A prior takes the box it overlaps most when that
    IoU >= ``iou_threshold``, and every box claims its best prior whatever the IoU."""
    overlaps = box_iou(boxes, priors)  # (M, A)
    best_overlap, best_box = overlaps.max(dim=0)
    best_box[overlaps.argmax(dim=1)] = torch.arange(len(boxes), device=boxes.device)
    best_overlap[overlaps.argmax(dim=1)] = 1.0
    return best_overlap >= iou_threshold, best_box


def _feature_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Cell grids of the six levels: stride 16 and 32, then one stride-2 conv per extra (ceil halving)."""
    return halving_grid_sizes(height, width, halvings_before=4, levels=levels)


class SSDLite(ExportsWithNMS, nn.Module):
    """forward(images (N, 3, H, W)) -> (box deltas (N, A, 4), class logits (N, A, K+1))."""

    def __init__(self, spec: SSDLiteSpec) -> None:
        super().__init__()
        self.spec = spec
        self.backbone = _SSDLiteBackbone(spec.backbone, spec.extra_channels, spec.in_channels)
        levels = len(self.backbone.out_channels)
        self.anchors_per_cell = ssd_anchor_counts([spec.aspect_ratios] * levels)
        self.head = _SSDLiteHead(self.backbone.out_channels, self.anchors_per_cell, spec.num_classes + 1)
        self.coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self._initialize()

    def _initialize(self) -> None:
        for name, module in self.named_modules():
            if isinstance(module, nn.Conv2d):
                if name.startswith(("head.", "backbone.extra.")):
                    nn.init.normal_(module.weight, 0.0, 0.03)  # torchvision's SSDLite init for extras and heads
                else:
                    nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.backbone(images)
        return self.head.regression_head(features), self.head.classification_head(features)

    def priors(self, image_size, device=None) -> torch.Tensor:
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        levels = len(self.backbone.out_channels)
        return ssd_default_boxes(_feature_sizes(height, width, levels), (height, width), aspect_ratios=[self.spec.aspect_ratios] * levels,
                                 min_ratio=self.spec.min_ratio, max_ratio=self.spec.max_ratio).to(device)

    def loss(self, outputs, targets: list[dict]) -> dict[str, torch.Tensor]:
        """SSD loss (Liu et al. 2016, Eq. 1-3): smooth-L1 on matched priors plus cross-entropy with 3:1
        hard-negative mining, both divided by the number of matched priors. A prior matches the box it
        overlaps most when IoU >= 0.5, and every box claims its best prior."""
        deltas, logits = outputs
        priors = self.priors(self._input_size, deltas.device)
        regression, classification, matched_total = deltas.new_zeros(()), deltas.new_zeros(()), 0
        for index, target in enumerate(targets):
            boxes, labels = target["boxes"].to(deltas), target["labels"].to(deltas.device)
            class_targets = torch.zeros(len(priors), dtype=torch.long, device=deltas.device)
            if len(boxes):
                foreground, best_box = match_priors(boxes, priors)
                class_targets[foreground] = labels[best_box[foreground]] + 1
                encoded = self.coder.encode(boxes[best_box[foreground]], priors[foreground])
                regression = regression + F.smooth_l1_loss(deltas[index, foreground], encoded, reduction="sum")
            else:
                foreground = torch.zeros(len(priors), dtype=torch.bool, device=deltas.device)
            per_prior = F.cross_entropy(logits[index], class_targets, reduction="none")
            negatives = per_prior.masked_fill(foreground, float("-inf"))
            hard = negatives.topk(min(3 * max(int(foreground.sum()), 1), len(priors) - int(foreground.sum()))).indices
            classification = classification + per_prior[foreground].sum() + per_prior[hard].sum()
            matched_total += int(foreground.sum())
        scale = 1.0 / max(matched_total, 1)
        return {"loss": (regression + classification) * scale, "bbox_regression": regression * scale, "classification": classification * scale}

    @property
    def _input_size(self):
        return getattr(self, "_last_size", None) or self.spec.input_size

    def set_input_size(self, image_size) -> None:
        """The (H, W) the targets of :meth:`loss` refer to (default: the spec's input size)."""
        self._last_size = image_size

    @torch.no_grad()
    def postprocess(self, outputs, image_size) -> list[dict[str, torch.Tensor]]:
        """Per image: softmax, per-class score filter and top-k, decode, clip, class-aware NMS, best N."""
        deltas, logits = outputs
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        priors = self.priors((height, width), deltas.device)
        results = []
        for image_deltas, image_logits in zip(deltas, logits):
            boxes = clip_boxes(self.coder.decode(image_deltas, priors), height, width)
            scores = F.softmax(image_logits, dim=-1)
            kept_boxes, kept_scores, kept_labels = [], [], []
            for label in range(1, scores.shape[-1]):
                class_scores = scores[:, label]
                candidates = torch.nonzero(class_scores > self.spec.score_threshold).flatten()
                top = class_scores[candidates].topk(min(self.spec.topk_candidates, len(candidates))).indices
                chosen = candidates[top]
                kept_boxes.append(boxes[chosen])
                kept_scores.append(class_scores[chosen])
                kept_labels.append(torch.full_like(chosen, label - 1))
            boxes, scores, labels = torch.cat(kept_boxes), torch.cat(kept_scores), torch.cat(kept_labels)
            keep = batched_nms(boxes, scores, labels, self.spec.nms_iou)[: self.spec.detections_per_image]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        return results

    def deployable(self, image_size=None) -> "SSDLiteDeployed":
        return SSDLiteDeployed(self, image_size or self.spec.input_size)


class SSDLiteDeployed(nn.Module):
    """The detector with its post-processing in the graph, for ONNX: decode, softmax, ``NonMaxSuppression``.

    forward(images) -> (batch index (K,), boxes (K, 4) xyxy pixels, scores (K,), labels (K,) 0..K-1);
    rows are ordered by image, class, descending score. The per-class candidate cap is the spec's
    ``detections_per_image``; unlike :meth:`SSDLite.postprocess` there is no per-image top-N across classes.
    """

    def __init__(self, model: SSDLite, image_size) -> None:
        super().__init__()
        self.model = model
        self.spec = model.spec
        self.register_buffer("priors", model.priors(image_size), persistent=False)
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)

    #: ``postprocess`` caps the candidates of each class (not of the image) before NMS
    candidates_per_class = True

    def boxes_and_scores(self, deltas: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw head outputs -> decoded, clipped boxes (N, A, 4) and class scores (N, K, A), background dropped."""
        height, width = self.image_size
        boxes = clip_boxes(self.model.coder.decode(deltas, self.priors), height, width)
        return boxes, F.softmax(logits, dim=-1)[..., 1:].transpose(1, 2)

    def forward(self, images: torch.Tensor):
        boxes, scores = self.boxes_and_scores(*self.model(images))
        rows = onnx_non_max_suppression(boxes, scores, max_per_class=self.spec.detections_per_image,
                                        iou_threshold=self.spec.nms_iou, score_threshold=self.spec.score_threshold)
        batch, label, prior = rows[:, 0], rows[:, 1], rows[:, 2]
        return batch, boxes[batch, prior], scores[batch, label, prior], label
