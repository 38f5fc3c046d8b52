"""Zero-init of the last normalization in each residual branch (Bag of Tricks Sec. 3.1; Goyal et al. 2017).

Rule: a block whose output is ``branch(x) + x`` (identity shortcut) gets gamma = 0 in the last
BatchNorm of ``branch``, so at initialization the block is the identity and the network behaves
as a shallower one. Blocks that *add* to a projection shortcut (ResNet's downsampling blocks)
are zeroed too, as in the paper and torchvision. In our zoo that is:

* ResNet basic/bottleneck blocks: ``last_norm`` (every block),
* MobileNetV2/V3 inverted residuals with ``use_residual`` (stride 1, same width): ``project.norm``,
* Ghost/RepGhost bottlenecks with an identity shortcut: ``project.primary.norm``. The branch ends in
  a concatenation (Ghost) or a sum with a BN branch (RepGhost) fed by that primary conv, and
  nothing between has a bias or activation, so gamma = 0 there zeroes the whole branch output,
* ShuffleNet V1 stride-1 units: ``pointwise2.norm``.

Not zeroed: ShuffleNet V2 units (concatenate, never add), MobileOne/RepVGG blocks (their
branches are summed with each other, there is no un-normalized identity path to fall back on;
their own identity branch is a BatchNorm, not a shortcut).
"""

from __future__ import annotations

from torch import nn

from ..blocks.ghost import GhostBottleneck
from ..blocks.inverted_residual import InvertedResidual
from ..blocks.resnet import ResNetBasicBlock, ResNetBottleneck
from ..blocks.shufflenet_v1 import ShuffleNetV1Unit

__all__ = ["residual_branch_last_norm", "zero_init_residual_norms"]


def residual_branch_last_norm(block: nn.Module) -> nn.Module | None:
    """The norm whose gamma zero-init sets to 0 for ``block``, or None if ``block`` is not residual."""
    if isinstance(block, (ResNetBasicBlock, ResNetBottleneck)):
        return block.last_norm
    if isinstance(block, InvertedResidual) and block.use_residual:
        return block.project.norm
    if isinstance(block, GhostBottleneck) and isinstance(block.shortcut, nn.Identity):
        return block.project.primary.norm
    if isinstance(block, ShuffleNetV1Unit) and block.stride == 1:
        return block.pointwise2.norm
    return None


def zero_init_residual_norms(model: nn.Module) -> list[str]:
    """Set gamma = 0 in the last norm of every residual branch; returns the zeroed norms' module paths."""
    names = {id(m): name for name, m in model.named_modules()}
    zeroed = []
    for module in model.modules():
        norm = residual_branch_last_norm(module)
        if norm is not None and getattr(norm, "weight", None) is not None:
            nn.init.zeros_(norm.weight)
            zeroed.append(names[id(norm)])
    return zeroed
