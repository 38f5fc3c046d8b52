"""Segmentation model specs: a zoo backbone's feature maps (by block path) plus a head spec.

One frozen spec per model, read by the builder (``spec.build()``), the checkpoint (JSON round trip)
and the weight importer (the module paths below are the backbone's own, so the family key maps of
the backbones apply unchanged):

* :class:`LRASPPSpec` — LR-ASPP (Howard et al. 2019, Sec. 6.2): taps ``low_tap`` (1/8) and
  ``high_tap`` (1/16 with ``output_stride=16``).
* :class:`DeepLabV3Spec` — DeepLabv3 (Chen et al. 2017) with ASPP at output stride 16 or 8; with
  ``atrous_rates=()`` the Mobile DeepLabv3 of Sandler et al. 2018 (Table 7); optional FCN aux head.
* :class:`UNetSpec` — a real-time U-Net: the backbone's pyramid levels as skips, a (depthwise-separable)
  decoder, logits at 1/2 upsampled to the input.

Built modules (:class:`SegmentationModel`) have ``stem``/``stages`` exactly as the backbone network,
then ``head`` (and ``aux_head``). ``forward(x)`` returns logits ``(N, K, H, W)`` at the input
resolution; ``forward_with_aux(x)`` returns ``(logits, aux_logits or None)`` for training.

``dilation_style``: where ``output_stride`` turns a stride into dilation, ``"deeplab"`` keeps the
formerly strided block's own conv undilated (Chen et al. 2017; timm), ``"torchvision"`` dilates it
too (torchvision's ``mobilenet_v3_large(dilated=True)``), which its segmentation weights need.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..network import NetworkSpec
from ..spec import check, check_choice, check_positive
from ..task_spec import TaskModelSpec

__all__ = ["SegmentationSpec", "LRASPPSpec", "DeepLabV3Spec", "UNetSpec", "SegmentationModel", "block_path_at", "DILATION_STYLES"]

DILATION_STYLES = ("deeplab", "torchvision")


def block_path_at(backbone: NetworkSpec, reduction: int, *, first: bool = False) -> str:
    """Module path of the first (or last) backbone block whose output is at ``reduction`` (nominal strides)."""
    from ..resolve import resolve

    resolved = resolve(backbone.with_head(None))
    nominal, found = 1, []
    for block in resolved.blocks:
        if block.section == "head":
            continue
        nominal *= getattr(block.spec, "stride", 1)
        if nominal == reduction:
            found.append(block.path)
    if not found:
        raise ValueError(f"{backbone.name} has no block at reduction {reduction}")
    return found[0] if first else found[-1]


@dataclass(frozen=True, kw_only=True)
class SegmentationSpec(TaskModelSpec):
    """Fields every segmentation model has; subclasses add the head and say which blocks they tap."""

    task: ClassVar[str] = "segmentation"

    name: str
    backbone: NetworkSpec  # the classification spec; the model cuts it after its last tap
    num_classes: int = 21
    in_channels: int = 3
    input_size: int = 520  # torchvision's evaluation size for its VOC-category models
    output_stride: int = 16
    dilation_style: str = "deeplab"
    # BatchNorm eps of the backbone's norms (None: the builder's 1e-5); torchvision's MobileNetV3 uses 1e-3,
    # which its segmentation weights were trained with (a 1e-3 relative change per layer otherwise)
    backbone_norm_eps: float | None = None

    def validate(self) -> None:
        check(self, "name", bool(self.name), "a non-empty string")
        check_positive(self, "num_classes", "in_channels", "input_size")
        check(self, "backbone_norm_eps", self.backbone_norm_eps is None or self.backbone_norm_eps > 0, "None or > 0")
        check_choice(self, "output_stride", (8, 16, 32))
        check_choice(self, "dilation_style", DILATION_STYLES)

    def taps(self) -> tuple[str, ...]:
        """Backbone block paths whose outputs the head reads, fine to coarse."""
        raise NotImplementedError

    def with_classes(self, num_classes: int) -> "SegmentationSpec":
        return dataclasses.replace(self, num_classes=num_classes)

    def with_input_channels(self, in_channels: int) -> "SegmentationSpec":
        return dataclasses.replace(self, in_channels=in_channels)

    def backbone_spec(self) -> NetworkSpec:
        """The backbone cut after its last tap, without head, at ``output_stride``."""
        from ..resolve import resolve

        spec = dataclasses.replace(
            self.backbone, head=None, pre_logits_stages=0, in_channels=self.in_channels,
            output_stride=None if self.output_stride == 32 else self.output_stride,
        )
        paths = {block.path: block for block in resolve(spec).blocks if block.section != "head"}
        for tap in self.taps():
            if tap not in paths:
                raise ValueError(f"{self.name}: {tap!r} is not a block of {self.backbone.name} (blocks: {', '.join(list(paths)[:3])} ... {list(paths)[-1]})")
        last = max((paths[tap] for tap in self.taps()), key=lambda b: (b.section == "stages", b.stage_index, b.block_index))
        if last.section == "stem":
            return dataclasses.replace(spec, stem=spec.stem[: last.block_index + 1], stages=())
        kept = spec.stages[: last.stage_index + 1]
        return dataclasses.replace(spec, stages=kept[:-1] + (dataclasses.replace(kept[-1], blocks=kept[-1].blocks[: last.block_index + 1]),))

    def build_head(self, channels: tuple[int, ...]) -> tuple[nn.Module, nn.Module | None]:
        """(head, aux head or None) for the tapped maps' channel counts."""
        raise NotImplementedError

    def decode(self, head: nn.Module, features: list[torch.Tensor]) -> torch.Tensor:
        return head(*features)

    def build(self) -> "SegmentationModel":
        return SegmentationModel(self)


@dataclass(frozen=True, kw_only=True)
class LRASPPSpec(SegmentationSpec):
    kind: ClassVar[str] = "lraspp"

    low_tap: str
    high_tap: str
    inter_channels: int = 128

    def validate(self) -> None:
        super().validate()
        check_positive(self, "inter_channels")

    def taps(self) -> tuple[str, ...]:
        return (self.low_tap, self.high_tap)

    def build_head(self, channels):
        from .heads import LRASPPHead

        return LRASPPHead(channels[0], channels[1], self.num_classes, self.inter_channels), None


@dataclass(frozen=True, kw_only=True)
class DeepLabV3Spec(SegmentationSpec):
    kind: ClassVar[str] = "deeplabv3"

    tap: str
    aux_tap: str | None = None  # an FCN head on this block's output, for the training loss only
    atrous_rates: tuple[int, ...] = (12, 24, 36)  # at output stride 16 (torchvision; Chen et al. use 6, 12, 18 at 16)
    channels: int = 256
    # the 3x3 conv-BN-ReLU after ASPP (torchvision's DeepLabHead); the Mobile DeepLabv3 of Sandler et al.
    # (2.11M params with MobileNetV2, Table 7) classifies the ASPP output directly
    head_conv: bool = True

    def validate(self) -> None:
        super().validate()
        check_positive(self, "channels")
        check(self, "atrous_rates", all(r >= 1 for r in self.atrous_rates), "a tuple of dilation rates >= 1")

    def taps(self) -> tuple[str, ...]:
        return (self.tap,) if self.aux_tap is None else (self.aux_tap, self.tap)

    def build_head(self, channels):
        from .heads import DeepLabV3Head, FCNHead

        head = DeepLabV3Head(channels[-1], self.num_classes, self.atrous_rates, self.channels, head_conv=self.head_conv)
        return head, (FCNHead(channels[0], self.num_classes) if self.aux_tap is not None else None)

    def decode(self, head, features):
        return head(features[-1])


@dataclass(frozen=True, kw_only=True)
class UNetSpec(SegmentationSpec):
    kind: ClassVar[str] = "unet"

    skip_taps: tuple[str, ...]  # fine to coarse; the last is the bottleneck
    decoder_channels: tuple[int, ...]
    separable: bool = True  # depthwise-separable decoder convs (the real-time variant)

    def validate(self) -> None:
        super().validate()
        check(self, "skip_taps", len(self.skip_taps) >= 2, "at least two block paths (skips + bottleneck)")
        check(self, "decoder_channels", len(self.decoder_channels) == len(self.skip_taps) - 1, f"{len(self.skip_taps) - 1} widths (one per skip)")

    def taps(self) -> tuple[str, ...]:
        return self.skip_taps

    def build_head(self, channels):
        from .heads import UNetDecoder

        return UNetDecoder(channels, self.decoder_channels, self.num_classes, self.separable), None

    def decode(self, head, features):
        return head(features)


class SegmentationModel(nn.Module):
    """Backbone blocks (``stem``, ``stages``) + ``head`` [+ ``aux_head``]; logits at the input size."""

    def __init__(self, spec: SegmentationSpec) -> None:
        super().__init__()
        from ..builder import build

        network = build(spec.backbone_spec())
        self.spec = spec
        self.resolved = network.resolved
        self.stem, self.stages = network.stem, network.stages
        by_path = {block.path: index for index, block in enumerate(self.resolved.blocks)}
        self._tap_indices = tuple(by_path[tap] for tap in spec.taps())
        if spec.dilation_style == "torchvision":
            _dilate_converted_blocks(self)
        if spec.backbone_norm_eps is not None:
            for norm in (*self.stem.modules(), *self.stages.modules()):
                if isinstance(norm, nn.modules.batchnorm._BatchNorm):
                    norm.eps = spec.backbone_norm_eps
        channels = tuple(self.resolved.blocks[index].out_channels for index in self._tap_indices)
        self.head, aux = spec.build_head(channels)
        if aux is not None:
            self.aux_head = aux

    def _body(self):
        yield from self.stem
        for stage in self.stages:
            yield from stage

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The tapped maps, in ``spec.taps()`` order."""
        wanted = {index: position for position, index in enumerate(self._tap_indices)}
        out: list[torch.Tensor | None] = [None] * len(wanted)
        for index, module in enumerate(self._body()):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
        return out  # type: ignore[return-value]

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits, aux_logits)`` (N, K, H, W) each; aux is None without an aux head. The trainer's path."""
        size = x.shape[-2:]
        features = self.forward_features(x)
        logits = F.interpolate(self.spec.decode(self.head, features), size=size, mode="bilinear", align_corners=False)
        aux = None
        if hasattr(self, "aux_head"):
            aux = F.interpolate(self.aux_head(features[0]), size=size, mode="bilinear", align_corners=False)
        return logits, aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> logits (N, num_classes, H, W); the aux head does not run."""
        size = x.shape[-2:]
        logits = self.spec.decode(self.head, self.forward_features(x))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def _dilate_converted_blocks(model: SegmentationModel) -> None:
    """torchvision's convention: a block whose stride became dilation dilates its own spatial convs too."""
    for block, module in zip(model.resolved.blocks, model._body()):
        spec_stride = getattr(block.spec, "stride", 1)
        if spec_stride > 1 and block.stride == 1:
            rate = block.dilation * spec_stride
            for conv in module.modules():
                if isinstance(conv, nn.Conv2d) and conv.kernel_size[0] > 1 and conv.dilation == (block.dilation, block.dilation):
                    conv.stride = (1, 1)
                    conv.dilation = (rate, rate)
                    conv.padding = tuple(rate * (k - 1) // 2 for k in conv.kernel_size)
