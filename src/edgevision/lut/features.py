"""Per-block and per-network features for the learned predictors, from the resolved block and the cost model.

A block's features are what a latency model can see without running it: kind (one-hot), widths,
kernel, stride, input H x W, and from :func:`edgevision.analysis.analyze` of the module in the
measured form its MACs, bytes moved, arithmetic intensity and operator count (nn-Meter, Zhang et
al. 2021, Sec. 4.2 uses the same kind of kernel features for its random forests).
"""

from __future__ import annotations

import functools
import json

from ..blocks.base import ResolvedBlock
from .key import MeasurementSetting, block_description, block_from_description
from .space import SPACE_BLOCK_KINDS

__all__ = ["BLOCK_FEATURE_NAMES", "KNOWN_BLOCK_KINDS", "block_features", "block_module"]

#: kinds with their own one-hot column; any other kind sets "kind_other"
KNOWN_BLOCK_KINDS = ("conv_norm_act", "classifier_head", *SPACE_BLOCK_KINDS)

BLOCK_FEATURE_NAMES = (
    *(f"kind_{name}" for name in KNOWN_BLOCK_KINDS),
    "kind_other",
    "in_channels",
    "out_channels",
    "mid_channels",
    "se_channels",
    "kernel_size",
    "stride",
    "input_height",
    "input_width",
    "batch",
    "macs",
    "bytes",
    "arithmetic_intensity",
    "operators",
)


def block_module(block: ResolvedBlock, model_form: str = "deploy"):
    """The block as an ``nn.Module`` in eval mode: the deploy form (what ships) unless ``model_form="train"``."""
    from ..reparam import reparameterize

    module = block.build().eval()
    return reparameterize(module, inplace=True) if model_form == "deploy" else module


def block_features(block: ResolvedBlock, setting: MeasurementSetting) -> dict[str, float]:
    """Feature name -> value for one block under ``setting`` (batch and form matter; cached)."""
    description = json.dumps(block_description(block), sort_keys=True)
    return dict(_features(description, setting.batch, setting.model_form))


@functools.lru_cache(maxsize=4096)
def _features(description: str, batch: int, model_form: str) -> tuple[tuple[str, float], ...]:
    from ..analysis import analyze

    block = block_from_description(json.loads(description))
    spec = block.spec
    height, width = block.input_size
    report = analyze(block_module(block, model_form), (batch, block.in_channels, height, width), peaks=None)
    total = report.total
    values = {f"kind_{name}": float(spec.kind == name) for name in KNOWN_BLOCK_KINDS}
    values["kind_other"] = float(spec.kind not in KNOWN_BLOCK_KINDS)
    values.update(
        in_channels=block.in_channels,
        out_channels=block.out_channels,
        mid_channels=block.mid_channels or 0,
        se_channels=block.se_channels or 0,
        kernel_size=getattr(spec, "kernel_size", 3 if spec.kind in ("repvgg_block", "resnet_basic") else 1),
        stride=block.stride,
        input_height=height,
        input_width=width,
        batch=batch,
        macs=total.macs,
        bytes=total.bytes,
        arithmetic_intensity=total.intensity,
        operators=total.operators,
    )
    return tuple((name, float(values[name])) for name in BLOCK_FEATURE_NAMES)
