"""Diverse Branch Block (Ding et al., "Diverse Branch Block: Building a Convolution as an Inception-like
Unit", CVPR 2021, Sec. 3), a drop-in replacement for one k x k conv-BN(-act).

Train form: four linear branches whose outputs add, then the activation::

    act(  BN(conv_kxk(x))                                  # the original conv
        + BN(conv_1x1(x))                                  # 1x1, same stride      (not when depthwise)
        + BN(conv_kxk(pad_bn(BN(conv_1x1(x)))))            # 1x1 -> k x k sequence
        + BN(avgpool_kxk(pad_bn(BN(conv_1x1(x))))) )       # 1x1 -> k x k average  (depthwise: avg of x)

Every branch keeps the k x k conv's stride and groups. Deploy form (Sec. 3.2, transforms I-VI):
ONE k x k conv with bias, ``act(conv(x))``. The two sequential branches use the paper's
"BN and pad" trick: the 1x1 conv's BN output is padded with the value that BN gives to a zero
input, so the following k x k conv / average pool runs unpadded and the sequence equals a
single zero-padded k x k conv (Transform III). The 1x1 of the sequential conv branch is
identity-initialized when it keeps the width (the authors' ``IdentityBasedConv1x1``: a learned
kernel added to a fixed identity); the authors widen it to 2 C_in for depthwise convs.

Layout, parameter count and fusion follow the authors' ``diversebranchblock.py``
(DingXiaoH/DiverseBranchBlock); :class:`DiverseBranchConvSpec` has the fields of
:class:`~edgevision.blocks.conv.ConvNormActSpec` so it can stand in any conv slot.
:class:`DiverseBranchResNetBasicSpec` is the paper's ResNet-18 unit (Sec. 4.1, ImageNet): both 3x3 convs are
DBBs, the 1x1 shortcut and the 7x7 stem stay conv-BN, as the authors' ``convnet_utils.conv_bn``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..initialization import init_last_norm
from ..layers import ConvNormAct, conv_from_kernel, fold_batchnorm, get_activation, identity_kernel, pad_kernel, same_padding
from ..layers.fusion import FusedKernel
from ..spec import OMIT_DEFAULT, check, check_choice, check_positive
from .base import WIDTH_SCALING, BlockSpec, BlockWidths, ChannelScale, ResolvedBlock, check_activation, check_groups_divide
from .resnet import ResNetBasicBlock, ResNetBasicSpec

__all__ = [
    "DBB_BRANCHES",
    "DiverseBranchConvSpec",
    "DiverseBranchResNetBasicSpec",
    "DiverseBranchConv",
    "DiverseBranchResNetBasicBlock",
    "IdentityInitConv1x1",
    "compose_1x1_kxk",
]


#: the four DBB branches, in forward order: k x k conv, 1x1 conv, 1x1 -> k x k sequence, (1x1 ->) average pool.
#: A depthwise DBB has no "1x1" branch (the authors' layout); naming it there is allowed and builds nothing.
DBB_BRANCHES = ("kxk", "1x1", "1x1_kxk", "avg")


@dataclass(frozen=True, kw_only=True)
class DiverseBranchConvSpec(BlockSpec):
    """A k x k conv-BN-act trained as a DBB; the same fields as ``ConvNormActSpec`` (padding "same" only).

    ``internal_expansion`` sets the width of the 1x1 -> k x k branch as a multiple of the input
    width; None is the authors' default: 1 (identity-initialized 1x1) for ordinary and grouped
    convs, 2 for depthwise ones (``groups >= out_channels``). ``branches`` keeps a subset of
    :data:`DBB_BRANCHES` (RepNAS, Zhang et al. 2021, searches it per layer: the "optimal DBB");
    every subset still fuses to one k x k conv. Left out of the JSON while it holds all four.
    """

    kind: ClassVar[str] = "diverse_branch_conv"

    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    groups: int = 1
    activation: str = "relu"
    width_scaling: str = "scaled"
    internal_expansion: int | None = None
    branches: tuple[str, ...] = field(default=DBB_BRANCHES, metadata={OMIT_DEFAULT: True})

    def validate(self) -> None:
        super().validate()
        check_positive(self, "groups", "internal_expansion")
        canonical = tuple(b for b in DBB_BRANCHES if b in self.branches)
        check(self, "branches", len(self.branches) >= 1 and canonical == tuple(self.branches), f"a non-empty subset of {DBB_BRANCHES} in that order")
        odd_and_spatial = self.kernel_size > 1 and self.kernel_size % 2 == 1
        check(self, "kernel_size", odd_and_spatial, "an odd kernel size >= 3 (a 1x1 conv has no branches to add)")
        check(self, "out_channels", self.out_channels % self.groups == 0, f"divisible by groups={self.groups}")
        check_activation(self)
        check_choice(self, "width_scaling", WIDTH_SCALING)

    def widths(self, in_channels: int, scale: ChannelScale) -> BlockWidths:
        out_channels = scale(self.out_channels, self.width_scaling)
        expansion = self.internal_expansion or (1 if self.groups < out_channels else 2)
        return BlockWidths(out_channels=out_channels, mid_channels=in_channels * expansion)

    def check_widths(self, in_channels: int, widths: BlockWidths) -> None:
        check_groups_divide(self, "channels", in_channels, widths.out_channels, widths.mid_channels)
        if self.groups >= widths.out_channels and in_channels != widths.out_channels:
            raise ValueError(
                f"DiverseBranchConvSpec with groups={self.groups} is depthwise and must keep its width "
                f"(resolved {in_channels} -> {widths.out_channels}); use groups < out_channels to change the width"
            )
        if self.groups >= widths.out_channels and self.branches == ("1x1",):
            raise ValueError("DiverseBranchConvSpec.branches ('1x1',) is empty for a depthwise DBB (it has no 1x1 branch); keep kxk, 1x1_kxk or avg")

    def build(self, block: ResolvedBlock) -> nn.Module:
        return DiverseBranchConv(
            block.in_channels,
            block.out_channels,
            self.kernel_size,
            self.stride,
            groups=self.groups,
            internal_channels=block.mid_channels,
            act=get_activation(self.activation),
            branches=self.branches,
        )

    def deploy_equivalent(self) -> "DiverseBranchConvSpec":
        # every branch subset fuses to the same k x k conv + bias + activation (Ding et al. 2021, Sec. 3.2), so
        # RepNAS's searched subsets are priced by the one table entry of the full DBB
        return self.replace(branches=DBB_BRANCHES)


@dataclass(frozen=True, kw_only=True)
class DiverseBranchResNetBasicSpec(ResNetBasicSpec):
    """ResNet basic block whose two 3x3 convs are DBBs (the paper's ResNet-18, Sec. 4.1); deploys to a plain basic block."""

    kind: ClassVar[str] = "diverse_branch_resnet_basic"
    supports_dilation: ClassVar[bool] = False  # its 1x1-kxk and average-pool branches are not dilated yet

    def build(self, block: ResolvedBlock) -> nn.Module:
        return DiverseBranchResNetBasicBlock(
            block.in_channels, block.out_channels, self.stride, act=get_activation(self.activation), identity_shortcut=block.identity_shortcut
        )


class IdentityInitConv1x1(nn.Conv2d):
    """1x1 conv (C -> C, groups) whose kernel is ``weight + identity``; ``weight`` starts at zero.

    The identity is a non-persistent buffer, so the parameter count is the plain conv's, as in the
    authors' ``IdentityBasedConv1x1``.
    """

    def __init__(self, channels: int, groups: int = 1) -> None:
        super().__init__(channels, channels, 1, groups=groups, bias=False)
        self.register_buffer("identity", identity_kernel(channels, groups, 1, like=self.weight), persistent=False)
        nn.init.zeros_(self.weight)

    def kernel(self) -> torch.Tensor:
        return self.weight + self.identity  # (C, C/g, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel(), None, groups=self.groups)


def pad_with_bias_value(x: torch.Tensor, norm: nn.BatchNorm2d, pad: int) -> torch.Tensor:
    """Pad (B, C, H, W) by ``pad`` on each side with what ``norm`` outputs for a zero input (eval statistics).

    BN(conv(zero padding)) is that constant, so BN(conv(x)) padded this way equals BN(conv(pad0(x))):
    the following k x k op may then run unpadded (the authors' ``BNAndPadLayer``).
    """
    if pad == 0:
        return x
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    value = (norm.bias - norm.running_mean * scale).detach().reshape(1, -1, 1, 1)
    return F.pad(x - value, [pad] * 4) + value  # (B, C, H, W) -> (B, C, H + 2p, W + 2p)


def compose_1x1_kxk(first: FusedKernel, second: FusedKernel, groups: int) -> FusedKernel:
    """One conv equal to a 1x1 conv (M, I/g, 1, 1) followed by a k x k conv (O, M/g, k, k), same groups.

    Transform III of the paper: kernel[o, i] = sum_m second[o, m] * first[m, i] within each group;
    the first conv's bias passes through the second kernel's taps: bias[o] = sum_{m, taps} second[o, m] * b1[m].
    """
    (w1, b1), (w2, b2) = first, second
    out_channels, mid_per_group, k, _ = w2.shape
    mid_channels, in_per_group = w1.shape[:2]
    w1_grouped = w1.reshape(groups, mid_channels // groups, in_per_group)  # (g, M/g, I/g)
    w2_grouped = w2.reshape(groups, out_channels // groups, mid_per_group, k, k)  # (g, O/g, M/g, k, k)
    weight = torch.einsum("gomhw,gmi->goihw", w2_grouped, w1_grouped).reshape(out_channels, in_per_group, k, k)
    b1_grouped = b1.reshape(groups, mid_channels // groups)
    bias = torch.einsum("gomhw,gm->go", w2_grouped, b1_grouped).reshape(out_channels) + b2
    return weight, bias


class DiverseBranchConv(nn.Module):
    """k x k conv trained as four branches (see the module docstring); ``reparameterize()`` -> one conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        internal_channels: int | None = None,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        branches: Sequence[str] = DBB_BRANCHES,
    ) -> None:
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"DiverseBranchConv needs an odd kernel_size >= 3, got {kernel_size}")
        unknown = sorted(set(branches) - set(DBB_BRANCHES))
        if unknown or not branches:
            raise ValueError(f"DiverseBranchConv branches must be a non-empty subset of {DBB_BRANCHES}, got {tuple(branches)}")
        depthwise = groups >= out_channels  # the authors' test: no 1x1 branch, average of the input itself
        if depthwise and in_channels != out_channels:
            raise ValueError(
                f"a depthwise DiverseBranchConv (groups={groups}) must keep its width, got {in_channels} -> {out_channels}"
            )
        if internal_channels is None:
            internal_channels = 2 * in_channels if depthwise else in_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        pad = kernel_size // 2
        keep = set(branches)
        # branch 1: the original k x k conv-BN
        self.kxk = ConvNormAct(in_channels, out_channels, kernel_size, stride, groups=groups, act=None) if "kxk" in keep else None
        # branch 2: 1x1 conv-BN at the same stride
        self.conv1x1 = None if depthwise or "1x1" not in keep else ConvNormAct(in_channels, out_channels, 1, stride, groups=groups, act=None)
        # branch 3: 1x1 (identity-initialized when it keeps the width) -> BN, padded -> k x k conv-BN, unpadded
        self.seq_expand = self.seq_expand_norm = self.seq_kxk = None
        if "1x1_kxk" in keep:
            if internal_channels == in_channels:
                self.seq_expand: nn.Conv2d | None = IdentityInitConv1x1(in_channels, groups)
            else:
                self.seq_expand = nn.Conv2d(in_channels, internal_channels, 1, groups=groups, bias=False)
            self.seq_expand_norm = nn.BatchNorm2d(internal_channels)
            self.seq_kxk = ConvNormAct(internal_channels, out_channels, kernel_size, stride, groups=groups, act=None, padding=0)
        # branch 4: [1x1 conv -> BN, padded] -> k x k average pool -> BN
        self.avg_conv = self.avg_conv_norm = self.avg_pool = self.avg_norm = None
        if "avg" in keep:
            self.avg_conv = None if depthwise else nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)
            self.avg_conv_norm = None if depthwise else nn.BatchNorm2d(out_channels)
            self.avg_pool = nn.AvgPool2d(kernel_size, stride, padding=pad if depthwise else 0)
            self.avg_norm = nn.BatchNorm2d(out_channels)
        self.branches = tuple(b for b in DBB_BRANCHES if b in keep and not (b == "1x1" and depthwise))
        if not self.branches:
            raise ValueError(f"a depthwise DiverseBranchConv (groups={groups}) has no 1x1 branch; keep kxk, 1x1_kxk or avg")
        # per-branch output scales (len(self.branches),) a branch search (RepNAS) sets; None: every branch counts 1
        self.branch_gates: torch.Tensor | None = None
        self.fused: nn.Conv2d | None = None  # the deploy-form conv, set by reparameterize()
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused is not None:  # deploy form: (B, C, H, W) -> (B, C', H/s, W/s)
            return self.act(self.fused(x))
        outputs = self.branch_outputs(x)  # each (B, C, H, W) -> (B, C', H/s, W/s)
        gates = self.branch_gates
        if gates is None:
            return self.act(sum(outputs))
        return self.act(sum(g * o for g, o in zip(gates, outputs)))

    def branch_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each kept branch's output in :attr:`branches` order (train form)."""
        pad = self.kernel_size // 2
        outputs = []
        if self.kxk is not None:
            outputs.append(self.kxk(x))
        if self.conv1x1 is not None:
            outputs.append(self.conv1x1(x))
        if self.seq_kxk is not None:
            seq = pad_with_bias_value(self.seq_expand_norm(self.seq_expand(x)), self.seq_expand_norm, pad)  # (B, M, H+2p, W+2p)
            outputs.append(self.seq_kxk(seq))
        if self.avg_norm is not None:
            avg = x
            if self.avg_conv is not None:
                avg = pad_with_bias_value(self.avg_conv_norm(self.avg_conv(x)), self.avg_conv_norm, pad)  # (B, C', H+2p, W+2p)
            outputs.append(self.avg_norm(self.avg_pool(avg)))
        return outputs

    def output_norms(self) -> list[nn.Module]:
        """The last BatchNorm of each branch (train form; empty once fused)."""
        if self.fused is not None:
            return []
        branches = (self.kxk, self.conv1x1, self.seq_kxk)
        return [b.norm for b in branches if b is not None] + ([self.avg_norm] if self.avg_norm is not None else [])

    @torch.no_grad()
    def fused_kernel(self) -> FusedKernel:
        """Weight (C', C/g, k, k) and bias (C',) of the single conv equal to the four branches (eval mode)."""
        k = self.kernel_size
        parts: list[FusedKernel] = []  # one (weight, bias) per kept branch, in ``branches`` order
        if self.kxk is not None:
            parts.append(self.kxk.fused_kernel())
        if self.conv1x1 is not None:
            w, b = self.conv1x1.fused_kernel()
            parts.append((pad_kernel(w, k), b))
        if self.seq_kxk is not None:
            expand = self.seq_expand.kernel() if isinstance(self.seq_expand, IdentityInitConv1x1) else self.seq_expand.weight
            parts.append(compose_1x1_kxk(fold_batchnorm(expand, None, self.seq_expand_norm), self.seq_kxk.fused_kernel(), self.groups))
        # average branch: a k x k window mean of a 1x1 conv (+BN) is that 1x1 kernel spread as 1/k^2 over
        # the window, its bias unchanged (Transforms III and V); depthwise: the mean of each input channel
        if self.avg_norm is not None:
            if self.avg_conv is not None:
                w, b = fold_batchnorm(self.avg_conv.weight, None, self.avg_conv_norm)  # (C', C/g, 1, 1)
            else:
                like = next(self.parameters())
                w, b = identity_kernel(self.out_channels, self.groups, 1, like=like), like.new_zeros(self.out_channels)
            parts.append(fold_batchnorm(w.expand(-1, -1, k, k) / k**2, b, self.avg_norm))
        gates = [1.0] * len(parts) if self.branch_gates is None else [float(g) for g in self.branch_gates]
        weight = sum(g * w for g, (w, _) in zip(gates, parts))
        bias = sum(g * b for g, (_, b) in zip(gates, parts))
        return weight, bias  # the branches are linear, so gates scale their kernels

    @torch.no_grad()
    def reparameterize(self) -> None:
        if self.fused is not None:
            return
        weight, bias = self.fused_kernel()
        self.fused = conv_from_kernel(weight, bias, self.stride, same_padding(self.kernel_size), self.groups)
        self.kxk = self.conv1x1 = self.seq_expand = self.seq_expand_norm = self.seq_kxk = None
        self.avg_conv = self.avg_conv_norm = self.avg_pool = self.avg_norm = None
        self.branch_gates = None  # folded into the kernel

    def extra_repr(self) -> str:
        form = "deploy" if self.fused is not None else "train"
        return f"kernel_size={self.kernel_size}, stride={self.stride}, groups={self.groups}, {form}"


class DiverseBranchResNetBasicBlock(ResNetBasicBlock):
    """ResNet basic block with DBB 3x3 convs; after ``reparameterize`` it is a plain basic block with biases."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        identity_shortcut: bool | None = None,
    ) -> None:
        super().__init__(in_channels, out_channels, stride, act=act, identity_shortcut=identity_shortcut)
        # the authors' ResNet-18 (convnet_utils.conv_bn): every 3x3 conv-BN is a DBB; 1x1 and 7x7 stay conv-BN
        self.conv1 = DiverseBranchConv(in_channels, out_channels, 3, stride, act=act)
        self.conv2 = DiverseBranchConv(out_channels, out_channels, 3, act=None)

    @property
    def last_norm(self) -> nn.Module:
        return self.conv2.kxk.norm

    def init_weights(self, zero_init_last: bool = False) -> tuple[nn.Parameter, ...]:
        # the branch is the sum of conv2's four branches: each one's last BN, or the kxk one alone stays live
        return tuple(p for norm in self.conv2.output_norms() for p in init_last_norm(norm, zero_init_last))
