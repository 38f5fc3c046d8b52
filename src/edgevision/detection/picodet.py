"""PP-PicoDet (Yu et al. 2021, arXiv 2111.00902; PaddleDetection's 2021.10 "legacy" release): an anchor-free
mobile detector — ESNet backbone, CSP-PAN neck, GFL-style head trained with Quality Focal, Distribution
Focal and GIoU losses on SimOTA-assigned points.

Structure follows the release config ``picodet_s_320_coco.yml`` (0.99M parameters, 0.73 GFLOPs at 320):

- **ESNet** (Sec. 3.1, Fig. 3): a ShuffleNetV2 with SE, a ghost-like concat of the 1x1 and depthwise
  outputs in the stride-1 block, and a depthwise + pointwise fusion after the stride-2 block; scale
  0.75 gives stage widths 96 / 192 / 384 (strides 8 / 16 / 32), 3 / 7 / 3 blocks, and each block's
  middle width is the searched ``channel_ratio`` times the stage width.
- **CSP-PAN** (Sec. 3.2): 1x1 convs bring every level to 96 channels, a top-down then bottom-up PAN
  whose merges are CSP layers with depthwise-separable 5x5 bottlenecks, plus a fourth, stride-64 level
  (a depthwise-separable stride-2 conv of the top input plus one of the top output).
- **Head**: per level, a tower of 2 depthwise 5x5 + pointwise convs shared by classification and
  regression (``share_cls_reg``), then one 1x1 conv giving K class-quality logits (sigmoid; the score
  *is* the IoU estimate: GFL's joint representation) and 4 x (reg_max + 1) = 32 edge-distribution logits.

Points are the cell centres ``((j + 0.5) s, (i + 0.5) s)`` of every level (2,125 at 320 px); a box is
``point -/+ E[distribution] * stride`` per edge. Losses (release weights): QFL 1.0 over all points divided
by the positive count, GIoU 2.0 and DFL 0.25 on positives weighted by their (detached) best class score.
The release trains with Varifocal Loss in place of QFL (``use_vfl``); this module implements QFL, the
GFL head's loss the paper starts from. The model takes images normalized with mean = std = 0.5 (the
detection pipeline's preprocessing; the release uses ImageNet statistics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..task_spec import TaskModelSpec
from .anchors import halving_grid_sizes
from .boxes import clip_boxes
from .export import ExportsWithNMS
from .gfl import (bbox_to_distance, distance_to_bbox, distribution_focal_loss, distribution_to_distance, giou_loss,
                  quality_focal_loss, simota_assign)
from .nms import batched_nms, onnx_non_max_suppression

__all__ = ["GFLDetector", "GFLDetectorSpec", "PicoDet", "PicoDetDeployed", "PicoDetSpec"]

#: PicoDet-S's searched middle-width ratios, one per ESNet block (release config, 13 blocks)
PICODET_S_CHANNEL_RATIO = (0.875, 0.5, 0.5, 0.5, 0.625, 0.5, 0.625, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
_STAGE_REPEATS = (3, 7, 3)


def _divisible(value: float, divisor: int = 16) -> int:
    """ESNet's rounding: nearest multiple of ``divisor``, at least ``divisor``, never below 90% of ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def stage_outputs(stem: nn.Module, stages, x: torch.Tensor) -> list[torch.Tensor]:
    """A detector backbone's forward: the stem, then every stage's output in order (strides 4, 8, 16, 32 ...)."""
    x = stem(x)
    features = []
    for stage in stages:
        x = stage(x)
        features.append(x)
    return features

class ConvBN(nn.Sequential):
    """conv (no bias), batch norm, optional hard-swish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(out_channels), *([nn.Hardswish()] if act else []))


class DepthwiseSeparable(nn.Sequential):
    """depthwise kxk + BN + act, pointwise 1x1 + BN + act (CSP-PAN's DP module)."""

    def __init__(self, channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(ConvBN(channels, channels, kernel_size, stride, groups=channels), ConvBN(channels, out_channels, 1))


class SqueezeExcite(nn.Module):
    """SE with a quarter-width bottleneck, ReLU inside and a hard-sigmoid gate (ESNet's SE module)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, channels // 4, 1)
        self.expand = nn.Conv2d(channels // 4, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(self.expand(F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))))


def _channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ESBlock(nn.Module):
    """ESNet stride-1 block (Fig. 3a): half the channels pass through; the other half goes 1x1 -> depthwise
    3x3, the two are concatenated (ghost-style), SE, 1x1; then the halves are concatenated and shuffled."""

    def __init__(self, channels: int, middle: int) -> None:
        super().__init__()
        self.pointwise = ConvBN(channels // 2, middle // 2)
        self.depthwise = ConvBN(middle // 2, middle // 2, 3, groups=middle // 2, act=False)
        self.se = SqueezeExcite(middle)
        self.project = ConvBN(middle, channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept, branch = x.chunk(2, dim=1)
        branch = self.pointwise(branch)
        branch = self.project(self.se(torch.cat((branch, self.depthwise(branch)), dim=1)))
        return _channel_shuffle(torch.cat((kept, branch), dim=1))


class ESDownBlock(nn.Module):
    """ESNet stride-2 block (Fig. 3b): ShuffleNetV2's two-branch downsampling with SE on the second
    branch, then a depthwise 3x3 + pointwise 1x1 (both hard-swish) fusing the concatenated halves."""

    def __init__(self, in_channels: int, middle: int, out_channels: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(ConvBN(in_channels, in_channels, 3, 2, groups=in_channels, act=False), ConvBN(in_channels, out_channels // 2))
        self.branch = nn.Sequential(ConvBN(in_channels, middle // 2), ConvBN(middle // 2, middle // 2, 3, 2, groups=middle // 2, act=False),
                                    SqueezeExcite(middle // 2), ConvBN(middle // 2, out_channels // 2))
        self.fuse = nn.Sequential(ConvBN(out_channels, out_channels, 3, groups=out_channels), ConvBN(out_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat((self.shortcut(x), self.branch(x)), dim=1))


class ESNet(nn.Module):
    """stem 3x3/2 -> 24, max-pool 3x3/2, three stages -> features at strides 8, 16, 32."""

    def __init__(self, scale: float, channel_ratio: tuple[float, ...], in_channels: int = 3) -> None:
        super().__init__()
        widths = [24] + [_divisible(base * scale) for base in (128, 256, 512)]
        self.stem = nn.Sequential(ConvBN(in_channels, widths[0], 3, 2), nn.MaxPool2d(3, 2, 1))
        self.stages = nn.ModuleList()
        index = 0
        for stage, repeats in enumerate(_STAGE_REPEATS):
            blocks = []
            for position in range(repeats):
                middle = _divisible(int(widths[stage + 1] * channel_ratio[index]), 8)
                blocks.append(ESDownBlock(widths[stage], middle, widths[stage + 1]) if position == 0 else ESBlock(widths[stage + 1], middle))
                index += 1
            self.stages.append(nn.Sequential(*blocks))
        self.out_channels = widths[1:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return stage_outputs(self.stem, self.stages, x)


class CSPLayer(nn.Module):
    """Cross-stage partial layer: two 1x1 halves, one through a (1x1 -> depthwise-separable kxk) bottleneck
    without identity, concatenated and fused by a 1x1 (CSP-PAN's merge block)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        middle = out_channels // 2
        self.main = nn.Sequential(ConvBN(in_channels, middle), ConvBN(middle, middle), DepthwiseSeparable(middle, middle, kernel_size))
        self.short = ConvBN(in_channels, middle)
        self.fuse = ConvBN(2 * middle, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat((self.main(x), self.short(x)), dim=1))


class CSPPAN(nn.Module):
    """inputs at strides 8/16/32 -> ``levels`` outputs of ``channels`` each (strides 8, 16, 32[, 64])."""

    def __init__(self, in_channels: list[int], channels: int, kernel_size: int, levels: int) -> None:
        super().__init__()
        self.reduce = nn.ModuleList(ConvBN(c, channels) for c in in_channels)
        count = len(in_channels)
        self.top_down = nn.ModuleList(CSPLayer(2 * channels, channels, kernel_size) for _ in range(count - 1))
        self.downsample = nn.ModuleList(DepthwiseSeparable(channels, channels, kernel_size, 2) for _ in range(count - 1))
        self.bottom_up = nn.ModuleList(CSPLayer(2 * channels, channels, kernel_size) for _ in range(count - 1))
        self.extra = levels > count
        if self.extra:
            self.extra_from_input = DepthwiseSeparable(channels, channels, kernel_size, 2)
            self.extra_from_output = DepthwiseSeparable(channels, channels, kernel_size, 2)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        inputs = [reduce(x) for reduce, x in zip(self.reduce, features)]
        inner = [inputs[-1]]  # top-down: upsample the coarser result, merge with the finer input
        for step, finer in enumerate(reversed(inputs[:-1])):
            upsampled = F.interpolate(inner[0], size=finer.shape[-2:], mode="nearest")
            inner.insert(0, self.top_down[step](torch.cat((upsampled, finer), dim=1)))
        outputs = [inner[0]]  # bottom-up: downsample the finer result, merge with the coarser top-down one
        for step, coarser in enumerate(inner[1:]):
            outputs.append(self.bottom_up[step](torch.cat((self.downsample[step](outputs[-1]), coarser), dim=1)))
        if self.extra:
            outputs.append(self.extra_from_input(inputs[-1]) + self.extra_from_output(outputs[-1]))
        return outputs


class PicoHead(nn.Module):
    """Per level (``channels`` each): a shared cls/reg tower of ``convs`` depthwise kxk + pointwise convs (none:
    YOLO's Detect layer), then one 1x1 prediction conv giving K class-quality logits and 4(R+1) edge logits."""

    def __init__(self, channels: list[int], convs: int, kernel_size: int, num_classes: int, reg_max: int) -> None:
        super().__init__()
        self.num_classes, self.box_columns = num_classes, 4 * (reg_max + 1)
        self.towers = nn.ModuleList(
            nn.Sequential(*[layer for _ in range(convs) for layer in DepthwiseSeparable(c, c, kernel_size)]) for c in channels)
        self.predict = nn.ModuleList(nn.Conv2d(c, num_classes + self.box_columns, 1) for c in channels)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, logits = [], []
        for feature, tower, predict in zip(features, self.towers, self.predict):
            out = predict(tower(feature))  # (N, K + 4(R+1), H, W) -> (N, H*W, K + 4(R+1)): point-major like points()
            out = out.flatten(2).transpose(1, 2)
            logits.append(out[..., : self.num_classes])
            boxes.append(out[..., self.num_classes:])
        return torch.cat(boxes, dim=1), torch.cat(logits, dim=1)


@dataclass(frozen=True, kw_only=True)
class GFLDetectorSpec(TaskModelSpec):
    """Fields every anchor-free GFL detector here shares: points, head outputs, losses, SimOTA, post-processing.

    Subclasses (:class:`PicoDetSpec`, ``YOLOGSConvSpec``) add their backbone and neck and a ``kind``.
    """

    task: ClassVar[str] = "detection"
    name: str
    in_channels: int = 3
    input_size: int = 320
    num_classes: int = 80
    strides: tuple[int, ...] = (8, 16, 32, 64)
    reg_max: int = 7
    qfl_weight: float = 1.0
    giou_weight: float = 2.0
    dfl_weight: float = 0.25
    center_radius: float = 2.5
    candidate_topk: int = 10
    iou_weight: float = 6.0  # the PicoDet release's SimOTA iou_weight
    score_threshold: float = 0.025
    nms_iou: float = 0.6
    detections_per_image: int = 100
    topk_candidates: int = 1000

    def _problems(self) -> list[str]:
        problems = []
        if self.num_classes < 1:
            problems.append(f"num_classes must be >= 1 (foreground classes), got {self.num_classes}")
        if self.reg_max < 1:
            problems.append(f"reg_max must be >= 1, got {self.reg_max}")
        if self.in_channels < 1:
            problems.append(f"in_channels must be >= 1, got {self.in_channels}")
        return problems

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ValueError(f"{type(self).__name__} {self.name!r}: " + "; ".join(problems))

    def with_classes(self, num_classes: int) -> "GFLDetectorSpec":
        return replace(self, num_classes=num_classes)

    def with_input_channels(self, in_channels: int) -> "GFLDetectorSpec":
        return replace(self, in_channels=in_channels)


@dataclass(frozen=True, kw_only=True)
class PicoDetSpec(GFLDetectorSpec):
    """A PP-PicoDet detector: ESNet scale and block ratios, neck width, head tower (+ the GFL/SimOTA fields)."""

    kind: ClassVar[str] = "picodet"
    backbone_scale: float = 0.75
    channel_ratio: tuple[float, ...] = PICODET_S_CHANNEL_RATIO
    neck_channels: int = 96
    kernel_size: int = 5
    head_convs: int = 2

    def _problems(self) -> list[str]:
        problems = super()._problems()
        if len(self.channel_ratio) != sum(_STAGE_REPEATS):
            problems.append(f"channel_ratio needs {sum(_STAGE_REPEATS)} ratios (one per ESNet block), got {len(self.channel_ratio)}")
        if self.strides not in ((8, 16, 32), (8, 16, 32, 64)):
            problems.append(f"strides must be (8, 16, 32) or (8, 16, 32, 64), got {self.strides}")
        if self.neck_channels < 2 or self.neck_channels % 2:
            problems.append(f"neck_channels must be even, got {self.neck_channels}")
        return problems

    def build(self) -> "PicoDet":
        return PicoDet(self)


def _grid_sizes(height: int, width: int, levels: int) -> list[tuple[int, int]]:
    """Cells per level: every stride-2 op here (3x3/p1, max-pool 3/p1, 5x5/p2) maps n -> ceil(n / 2)."""
    return halving_grid_sizes(height, width, halvings_before=3, levels=levels)  # stem, max-pool, first stage -> stride 8


class GFLDetector(ExportsWithNMS, nn.Module):
    """An anchor-free GFL detector: ``backbone`` -> ``neck`` -> ``head`` (built by :meth:`_build`), with points,
    decoding, the QFL/DFL/GIoU loss on SimOTA positives, post-processing and the deployable graph.

    forward(images (N, C, H, W)) -> (edge distributions (N, A, 4(R+1)), class-quality logits (N, A, K)).
    The head holds one prediction conv per level in ``head.predict`` (class logits first).
    """

    def __init__(self, spec: GFLDetectorSpec) -> None:
        super().__init__()
        self.spec = spec
        self._build(spec)
        self._initialize()

    def _build(self, spec) -> None:
        raise NotImplementedError

    def _initialize(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        prior = -math.log((1 - 0.01) / 0.01)  # class prior 0.01 (Lin et al. 2017), as the release's head
        for predict in self.head.predict:
            nn.init.normal_(predict.weight, 0.0, 0.01)
            nn.init.zeros_(predict.bias)
            with torch.no_grad():
                predict.bias[: self.spec.num_classes] = prior

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.neck(self.backbone(images)))

    def points(self, image_size, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, 2) cell-centre xy in pixels and (A,) their strides, level by level, row-major."""
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        centres, strides = [], []
        for (rows, cols), stride in zip(_grid_sizes(height, width, len(self.spec.strides)), self.spec.strides):
            y, x = torch.meshgrid(torch.arange(rows, dtype=torch.float32), torch.arange(cols, dtype=torch.float32), indexing="ij")
            centres.append(torch.stack(((x.flatten() + 0.5) * stride, (y.flatten() + 0.5) * stride), dim=1))
            strides.append(torch.full((rows * cols,), float(stride)))
        return torch.cat(centres).to(device), torch.cat(strides).to(device)

    def decode(self, distributions: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
        """(..., A, 4(R+1)) -> (..., A, 4) xyxy pixel boxes: expected edge distances times the stride."""
        return distance_to_bbox(points, distribution_to_distance(distributions, self.spec.reg_max) * strides[:, None])

    @property
    def _input_size(self):
        return getattr(self, "_last_size", None) or self.spec.input_size

    def set_input_size(self, image_size) -> None:
        """The (H, W) the targets of :meth:`loss` refer to (default: the spec's input size)."""
        self._last_size = image_size

    def loss(self, outputs, targets: list[dict]) -> dict[str, torch.Tensor]:
        """QFL over every point / positives + GIoU and DFL on SimOTA positives, weighted by the detached best
        class score and divided by that weight's sum (GFL's normalization)."""
        distributions, logits = outputs
        spec = self.spec
        points, strides = self.points(self._input_size, logits.device)
        boxes = self.decode(distributions, points, strides)  # (N, A, 4)
        zero = logits.new_zeros(())
        qfl, giou, dfl, positives, weight_total = zero, zero, zero, 0, zero
        for index, target in enumerate(targets):
            gt_boxes, gt_labels = target["boxes"].to(boxes), target["labels"].to(logits.device)
            assignment = simota_assign(logits[index].detach().sigmoid(), boxes[index].detach(), points, strides, gt_boxes, gt_labels,
                                       center_radius=spec.center_radius, candidate_topk=spec.candidate_topk, iou_weight=spec.iou_weight)
            qfl = qfl + quality_focal_loss(logits[index], assignment.labels, assignment.ious).sum()
            positive = torch.nonzero(assignment.positive).flatten()
            if len(positive) == 0:
                continue
            matched = gt_boxes[assignment.matched[positive]]
            weight = logits[index, positive].detach().sigmoid().max(dim=1).values  # (P,)
            giou = giou + (giou_loss(boxes[index, positive], matched) * weight).sum()
            edges = bbox_to_distance(points[positive], matched) / strides[positive, None]  # (P, 4) in stride units
            edge_logits = distributions[index, positive].reshape(-1, 4, spec.reg_max + 1)
            dfl = dfl + (distribution_focal_loss(edge_logits, edges.clamp(0, spec.reg_max - 0.01)).mean(dim=1) * weight).sum()
            positives += len(positive)
            weight_total = weight_total + weight.sum()
        weight_total = weight_total.clamp(min=torch.finfo(weight_total.dtype).eps)
        losses = {"quality_focal": spec.qfl_weight * qfl / max(positives, 1), "giou": spec.giou_weight * giou / weight_total,
                  "distribution_focal": spec.dfl_weight * dfl / weight_total}
        return {"loss": sum(losses.values()), **losses, "positives": torch.tensor(positives)}

    @torch.no_grad()
    def postprocess(self, outputs, image_size) -> list[dict[str, torch.Tensor]]:
        """Per image: sigmoid, score filter and top-k over (point, class) pairs, decode, clip, class-aware NMS, best N."""
        distributions, logits = outputs
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        points, strides = self.points((height, width), logits.device)
        all_boxes = clip_boxes(self.decode(distributions, points, strides), height, width)
        results = []
        for boxes, scores in zip(all_boxes, logits.sigmoid()):
            flat = scores.flatten()
            candidates = torch.nonzero(flat > self.spec.score_threshold).flatten()
            candidates = candidates[flat[candidates].topk(min(self.spec.topk_candidates, len(candidates))).indices]
            point, label = candidates // scores.shape[1], candidates % scores.shape[1]
            boxes, scores = boxes[point], flat[candidates]
            keep = batched_nms(boxes, scores, label, self.spec.nms_iou)[: self.spec.detections_per_image]
            results.append({"boxes": boxes[keep], "scores": scores[keep], "labels": label[keep]})
        return results

    def deployable(self, image_size=None) -> "PicoDetDeployed":
        return PicoDetDeployed(self, image_size or self.spec.input_size)


class PicoDet(GFLDetector):
    """PP-PicoDet: ESNet -> CSP-PAN -> the shared-tower GFL head (see the module docstring)."""

    def _build(self, spec: PicoDetSpec) -> None:
        levels = len(spec.strides)
        self.backbone = ESNet(spec.backbone_scale, spec.channel_ratio, spec.in_channels)
        self.neck = CSPPAN(self.backbone.out_channels, spec.neck_channels, spec.kernel_size, levels)
        self.head = PicoHead([spec.neck_channels] * levels, spec.head_convs, spec.kernel_size, spec.num_classes, spec.reg_max)


class PicoDetDeployed(nn.Module):
    """The detector with its post-processing in the graph: integral decode, sigmoid, ``NonMaxSuppression``.

    forward(images) -> (batch index (K,), boxes (K, 4) xyxy pixels, scores (K,), labels (K,)); rows by image,
    class, descending score; at most ``detections_per_image`` per class (no cross-class top-N).
    """

    def __init__(self, model: GFLDetector, image_size) -> None:
        super().__init__()
        self.model = model
        self.spec = model.spec
        self.image_size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        points, strides = model.points(self.image_size)
        self.register_buffer("points", points, persistent=False)
        self.register_buffer("strides", strides, persistent=False)

    #: ``postprocess`` caps the (point, class) candidates of the whole image before NMS
    candidates_per_class = False

    def boxes_and_scores(self, distributions: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw head outputs -> decoded, clipped boxes (N, A, 4) and class scores (N, K, A)."""
        height, width = self.image_size
        boxes = clip_boxes(self.model.decode(distributions, self.points, self.strides), height, width)
        return boxes, logits.sigmoid().transpose(1, 2)

    def forward(self, images: torch.Tensor):
        boxes, scores = self.boxes_and_scores(*self.model(images))
        rows = onnx_non_max_suppression(boxes, scores, max_per_class=self.spec.detections_per_image,
                                        iou_threshold=self.spec.nms_iou, score_threshold=self.spec.score_threshold)
        batch, label, point = rows[:, 0], rows[:, 1], rows[:, 2]
        return batch, boxes[batch, point], scores[batch, label, point], label
