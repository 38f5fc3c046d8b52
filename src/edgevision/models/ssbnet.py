"""SSBNet (Kwan & Song, "SSBNet: Improving Visual Recognition Efficiency by Adaptive Sampling",
arXiv 2207.11511, 2022): ResNet bottlenecks whose 3x3 conv runs on adaptively sampled features
(``blocks/ssbnet.py``).

``ssb_resnet50`` is torchvision's ResNet-50 (``models/resnet.py``, Table 1 of He et al. 2016) with
every stride-1 bottleneck of conv2_x .. conv4_x (56x56, 28x28, 14x14 at 224) turned into an SSB
bottleneck with sampling factor 2; the strided first block of each stage and the 7x7 conv5_x stay
plain bottlenecks.

CAVEAT: the paper's own models are SSB-ResNet-RS (ResNet-D stem + SE) and SSB-BoTNet; their table
(stages sampled, sampling sizes, printed params/FLOPs) was not readable in the session that wrote
this file, so this placement is our choice, not a paper row, and ``data/published.csv`` carries no
printed figures for it. Parameters over ResNet-50: one 1x1 saliency conv (mid -> 1) per SSB block.
"""

from __future__ import annotations

from dataclasses import fields, replace

from ..blocks import BlockSpec, ResNetBottleneckSpec, SSBBottleneckSpec
from ..network import NetworkSpec
from ..registry import register_model
from .resnet import RESNET50_DEPTHS, resnet

# conv2_x, conv3_x, conv4_x sampled; conv5_x (7x7 at 224) left plain
SSB_RESNET50_SAMPLED_STAGES = (True, True, True, False)
SAMPLING_FACTOR = 2


def with_sampling(spec: NetworkSpec, sampled_stages: tuple[bool, ...], sampling_factor: int, name: str) -> NetworkSpec:
    """Turn every stride-1 ``ResNetBottleneckSpec`` of the flagged stages into an ``SSBBottleneckSpec``."""
    if len(sampled_stages) != len(spec.stages):
        raise ValueError(f"sampled_stages needs one flag per stage ({len(spec.stages)}), got {len(sampled_stages)}")

    def convert(block: BlockSpec) -> BlockSpec:
        if type(block) is ResNetBottleneckSpec and block.stride == 1:
            values = {f.name: getattr(block, f.name) for f in fields(ResNetBottleneckSpec)}
            return SSBBottleneckSpec(**values, sampling_factor=sampling_factor)
        return block

    stages = tuple(
        replace(stage, blocks=tuple(convert(b) for b in stage.blocks)) if sampled else stage
        for stage, sampled in zip(spec.stages, sampled_stages, strict=True)
    )
    return replace(spec, name=name, stages=stages)


@register_model("ssb_resnet50", family="ssbnet")
def ssb_resnet50() -> NetworkSpec:
    base = resnet("resnet50", "bottleneck", RESNET50_DEPTHS)
    return with_sampling(base, SSB_RESNET50_SAMPLED_STAGES, SAMPLING_FACTOR, "ssb_resnet50")
