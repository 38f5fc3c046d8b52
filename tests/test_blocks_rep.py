"""Block-level tests of the structurally re-parameterizable convs: RepVGG block and MobileOne layer."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import edgevision as ev
from edgevision.blocks import ChannelScale, MobileOneConvSpec, RepVGGBlockSpec
from edgevision.blocks.repvgg import RepConv
from edgevision.layers import SqueezeExcite
from edgevision.spec import Spec

from helpers import build_block, max_relative_error, randomize_batchnorm


def convs_outside_se(module: nn.Module) -> list[nn.Conv2d]:
    se_convs = {id(m) for se in module.modules() if isinstance(se, SqueezeExcite) for m in se.modules()}
    return [m for m in module.modules() if isinstance(m, nn.Conv2d) and id(m) not in se_convs]


# (spec, in_channels): every kind of branch set -- stride 1/2, in == out / in != out,
# dense / grouped / depthwise, 1 and 4 conv branches, with and without squeeze-excite
CASES = {
    "repvgg_identity": (RepVGGBlockSpec(out_channels=16, stride=1), 16),
    "repvgg_widen": (RepVGGBlockSpec(out_channels=24, stride=1), 16),
    "repvgg_stride2": (RepVGGBlockSpec(out_channels=16, stride=2), 16),
    "repvgg_stem": (RepVGGBlockSpec(out_channels=8, stride=2), 3),
    "repvgg_groups2": (RepVGGBlockSpec(out_channels=16, stride=1, groups=2), 16),
    "dw_k1_s1": (MobileOneConvSpec(out_channels=16, kernel_size=3, depthwise=True), 16),
    "dw_k4_s1": (MobileOneConvSpec(out_channels=16, kernel_size=3, depthwise=True, num_conv_branches=4), 16),
    "dw_k4_s2": (MobileOneConvSpec(out_channels=16, kernel_size=3, stride=2, depthwise=True, num_conv_branches=4), 16),
    "dw_k1_s2_se": (MobileOneConvSpec(out_channels=32, kernel_size=3, stride=2, depthwise=True, se_ratio=1 / 16), 32),
    "dw_k4_s1_se": (MobileOneConvSpec(out_channels=32, kernel_size=3, depthwise=True, num_conv_branches=4, se_ratio=1 / 16), 32),
    "pw_k1_same": (MobileOneConvSpec(out_channels=16, kernel_size=1), 16),
    "pw_k4_same": (MobileOneConvSpec(out_channels=16, kernel_size=1, num_conv_branches=4), 16),
    "pw_k4_widen": (MobileOneConvSpec(out_channels=32, kernel_size=1, num_conv_branches=4), 16),
    "pw_k1_widen_se": (MobileOneConvSpec(out_channels=32, kernel_size=1, se_ratio=1 / 16), 16),
    "pw_k4_same_se": (MobileOneConvSpec(out_channels=32, kernel_size=1, num_conv_branches=4, se_ratio=1 / 16), 32),
    "dense_k3_k4": (MobileOneConvSpec(out_channels=16, kernel_size=3, num_conv_branches=4), 16),
    "dense_k5_s2": (MobileOneConvSpec(out_channels=24, kernel_size=5, stride=2, num_conv_branches=2), 16),
}


@pytest.mark.parametrize("via_walker", [True, False], ids=["walker", "lone_block"])
@pytest.mark.parametrize("case", list(CASES))
def test_fused_block_equals_train_form(case: str, via_walker: bool) -> None:
    spec, in_channels = CASES[case]
    torch.manual_seed(0)
    block = randomize_batchnorm(build_block(spec, in_channels)).eval()
    x = torch.randn(2, in_channels, 13, 13)  # odd size: stride-2 padding must line up across branches
    with torch.no_grad():
        train_out = block(x)
        if via_walker:  # children first: the branches' BatchNorms are folded before the block fuses
            deployed = ev.reparameterize(block)
        else:  # the block folds its branches itself
            deployed = copy.deepcopy(block)
            deployed.reparameterize()
        deploy_out = deployed(x)
    assert deploy_out.shape == train_out.shape
    assert max_relative_error(train_out, deploy_out) <= 1e-5
    # deploy form: exactly one conv (plus the SE's own 1x1s), no BatchNorm, no branches left
    assert len(convs_outside_se(deployed)) == 1
    assert ev.is_deploy_form(deployed)
    assert deployed.branches is None and deployed.scale is None and deployed.identity is None
    assert deployed.fused.bias is not None


@pytest.mark.parametrize("case", list(CASES))
def test_train_form_branches(case: str) -> None:
    spec, in_channels = CASES[case]
    block = build_block(spec, in_channels)
    out_channels = spec.widths(in_channels, ChannelScale(1.0, 1)).out_channels
    kernel_size = getattr(spec, "kernel_size", 3)
    assert len(block.branches) == getattr(spec, "num_conv_branches", 1)
    assert (block.scale is not None) == (kernel_size > 1)
    assert (block.identity is not None) == (in_channels == out_channels and spec.stride == 1)
    assert isinstance(block.se, SqueezeExcite) == (getattr(spec, "se_ratio", 0.0) > 0)
    assert block.fused is None
    x = torch.randn(2, in_channels, 13, 13)
    size = 13 if spec.stride == 1 else 7
    assert block(x).shape == (2, out_channels, size, size)


def test_depthwise_layer_is_grouped_per_channel() -> None:
    block = build_block(MobileOneConvSpec(out_channels=16, kernel_size=3, depthwise=True, num_conv_branches=4), 16)
    assert all(branch.conv.groups == 16 for branch in block.branches)
    assert ev.reparameterize(block).fused.weight.shape == (16, 1, 3, 3)


def test_identity_branch_is_a_residual() -> None:
    """With zeroed conv branches and an identity BatchNorm, the block is ReLU(x)."""
    block = build_block(RepVGGBlockSpec(out_channels=8), 8).eval()
    with torch.no_grad():
        for branch in [*block.branches, block.scale]:
            branch.conv.weight.zero_()
            branch.norm.bias.zero_()
    x = torch.randn(1, 8, 6, 6)
    torch.testing.assert_close(block(x), torch.relu(x), rtol=1e-4, atol=1e-4)  # BN eps: x / sqrt(1 + eps)
    torch.testing.assert_close(ev.reparameterize(block)(x), torch.relu(x), rtol=1e-4, atol=1e-4)


def test_reparameterize_twice_is_a_no_op() -> None:
    block = randomize_batchnorm(build_block(MobileOneConvSpec(out_channels=8, kernel_size=3, num_conv_branches=4), 8)).eval()
    deployed = ev.reparameterize(block)
    weight = deployed.fused.weight.clone()
    deployed.reparameterize()
    torch.testing.assert_close(deployed.fused.weight, weight)


def test_se_width_is_the_authors_floor() -> None:
    scale = ChannelScale(1.0, 1)
    spec = MobileOneConvSpec(out_channels=896, kernel_size=1, se_ratio=1 / 16)
    assert spec.widths(896, scale).se_channels == 56
    assert MobileOneConvSpec(out_channels=100, kernel_size=1, se_ratio=1 / 16).widths(100, scale).se_channels == 6  # int(6.25)
    assert MobileOneConvSpec(out_channels=100, kernel_size=1).widths(100, scale).se_channels is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RepVGGBlockSpec(out_channels=16, stride=3), "RepVGGBlockSpec.stride must be 1 or 2, got 3"),
        (lambda: RepVGGBlockSpec(out_channels=0), "RepVGGBlockSpec.out_channels must be a positive number, got 0"),
        (lambda: RepVGGBlockSpec(out_channels=16, groups=0), "RepVGGBlockSpec.groups must be a positive number, got 0"),
        (lambda: RepVGGBlockSpec(out_channels=16, activation="tanh"), "RepVGGBlockSpec.activation must be one of"),
        (lambda: MobileOneConvSpec(out_channels=16, kernel_size=2), "MobileOneConvSpec.kernel_size must be one of 1, 3, 5, 7, got 2"),
        (lambda: MobileOneConvSpec(out_channels=16, num_conv_branches=0), "MobileOneConvSpec.num_conv_branches must be a positive number, got 0"),
        (lambda: MobileOneConvSpec(out_channels=16, se_ratio=1.0), "MobileOneConvSpec.se_ratio must be in [0, 1)"),
        (lambda: MobileOneConvSpec(out_channels=16, stride=4), "MobileOneConvSpec.stride must be 1 or 2, got 4"),
    ],
)
def test_validation_messages(make, message: str) -> None:
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)


def test_resolved_width_checks() -> None:
    with pytest.raises(ValueError, match=r"MobileOneConvSpec.depthwise=True keeps the width, but resolves 16 -> 32"):
        build_block(MobileOneConvSpec(out_channels=32, depthwise=True), 16)
    with pytest.raises(ValueError, match=r"RepVGGBlockSpec.groups=4 must divide the resolved channels \(3 -> 16\)"):
        build_block(RepVGGBlockSpec(out_channels=16, groups=4), 3)


def test_repconv_needs_a_branch() -> None:
    with pytest.raises(ValueError, match="at least one conv branch"):
        RepConv(8, 8, num_conv_branches=0)


@pytest.mark.parametrize("spec", [spec for spec, _ in CASES.values()][:3] + [CASES["dw_k4_s1_se"][0]])
def test_spec_json_round_trip(spec) -> None:
    assert Spec.from_json(spec.to_json()) == spec


def test_fused_kernel_leaves_the_train_form_alone() -> None:
    block = randomize_batchnorm(build_block(RepVGGBlockSpec(out_channels=8), 8)).eval()
    weight, bias = block.fused_kernel()
    assert weight.shape == (8, 8, 3, 3) and bias.shape == (8,)
    assert all(isinstance(branch.norm, nn.BatchNorm2d) for branch in [*block.branches, block.scale])
    assert block.fused is None
