"""Block-level tests of Diverse Branch Block, the RMNet reserve-and-merge block, GSConv, VoV-GSCSP and MGIC."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import edgevision as ev
from edgevision.blocks import (
    DiverseBranchConvSpec,
    DiverseBranchResNetBasicSpec,
    GSConvSpec,
    MGICBlockSpec,
    RMResNetBasicSpec,
    VoVGSCSPSpec,
)
from edgevision.blocks.diverse_branch import DiverseBranchConv, IdentityInitConv1x1, pad_with_bias_value
from edgevision.blocks.mgic import MultigridCycle, ResidualSmoother, multigrid_levels

from helpers import build_block, max_relative_error, randomize_batchnorm


def resolve_block(spec, in_channels: int, size: int = 12):
    return ev.resolve_block(spec, in_channels, (size, size))


@torch.no_grad()
def perturb_weights(module: nn.Module, seed: int) -> nn.Module:
    """Random non-trivial weights everywhere (the identity-initialized 1x1 starts at zero otherwise)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return module


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---- Diverse Branch Block ---------------------------------------------------------------------
# (spec, in_channels): kernel 3/5, stride 1/2, dense / grouped / depthwise, identity-initialized or
# widened 1x1 of the 1x1 -> k x k branch (depthwise widens it to 2 C_in by default)
DBB_CASES = {
    "k3_s1_dense": (DiverseBranchConvSpec(out_channels=16), 8),
    "k3_s2_dense": (DiverseBranchConvSpec(out_channels=16, stride=2), 8),
    "k5_s1_dense": (DiverseBranchConvSpec(out_channels=12, kernel_size=5), 8),
    "k5_s2_groups4": (DiverseBranchConvSpec(out_channels=16, kernel_size=5, stride=2, groups=4), 8),
    "k3_s1_groups2": (DiverseBranchConvSpec(out_channels=16, groups=2), 8),
    "k3_s1_depthwise": (DiverseBranchConvSpec(out_channels=8, groups=8), 8),
    "k5_s2_depthwise": (DiverseBranchConvSpec(out_channels=8, kernel_size=5, stride=2, groups=8), 8),
    "k3_s1_widened_1x1": (DiverseBranchConvSpec(out_channels=16, internal_expansion=3), 8),
    "k3_s1_silu": (DiverseBranchConvSpec(out_channels=16, activation="silu"), 8),
}


@pytest.mark.parametrize("case", DBB_CASES)
def test_dbb_fuses_to_one_conv_with_random_batchnorm(case):
    spec, in_channels = DBB_CASES[case]
    torch.manual_seed(0)
    block = randomize_batchnorm(perturb_weights(build_block(spec, in_channels, size=11), seed=2), seed=3).eval()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in block.modules()) >= 4  # one BN per branch at least
    x = torch.randn(2, in_channels, 11, 11)  # odd size: the stride-2 border windows and the padding both matter
    with torch.no_grad():
        reference = block(x)
        deployed = ev.reparameterize(block)
        fused = deployed(x)
    convs = [m for m in deployed.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 and convs[0].kernel_size == (spec.kernel_size,) * 2 and convs[0].groups == spec.groups
    assert ev.is_deploy_form(deployed)
    out_channels = reference.shape[1]
    assert count(deployed) == out_channels * (in_channels // spec.groups) * spec.kernel_size**2 + out_channels
    assert max_relative_error(reference, fused) <= 1e-5


def test_dbb_parameter_count_equals_the_authors_block():
    """Authors' DiverseBranchBlock(C, C', 3) at groups 1: 20 C C' (3x3 + 1x1 + avg 1x1 + 1x1->3x3)
    + C^2 (identity-based 1x1) + 2 C (its BN) + 10 C' (five BNs of width C')."""
    c_in, c_out = 8, 16
    block = DiverseBranchConv(c_in, c_out, 3)
    assert count(block) == 20 * c_in * c_out + c_in**2 + 2 * c_in + 10 * c_out
    # depthwise: 3x3-BN, no 1x1 branch, BN of the average of x, 1x1 (C -> 2C, groups C)-BN -> 3x3 (2C -> C)-BN
    depthwise = DiverseBranchConv(c_in, c_in, 3, groups=c_in)
    assert count(depthwise) == (9 * c_in + 2 * c_in) + 2 * c_in + (2 * c_in + 2 * 2 * c_in) + (9 * 2 * c_in + 2 * c_in)
    assert (count(block), count(depthwise)) == (2800, 312)  # the authors' DiverseBranchBlock, counted


def test_identity_initialized_1x1_starts_as_identity_and_learns():
    conv = IdentityInitConv1x1(6, groups=2)
    x = torch.randn(1, 6, 4, 4)
    assert torch.equal(conv(x), x)
    assert count(conv) == 6 * 3  # the identity is a buffer, not a parameter
    assert "identity" not in conv.state_dict()  # non-persistent: checkpoints hold what the authors' do
    conv(x).sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_bn_and_pad_equals_bn_of_a_zero_padded_input():
    """The trick that lets the 1x1 -> k x k sequence run unpadded (Sec. 3.2, Transform III)."""
    torch.manual_seed(0)
    conv, norm = nn.Conv2d(4, 6, 1, bias=False), randomize_batchnorm(nn.BatchNorm2d(6), seed=5).eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        padded_after = pad_with_bias_value(norm(conv(x)), norm, 2)
        padded_before = norm(conv(F.pad(x, [2, 2, 2, 2])))
    assert padded_after.shape == (2, 6, 9, 9)
    torch.testing.assert_close(padded_after, padded_before)


def test_dbb_resnet_block_deploys_to_a_plain_basic_block():
    spec = DiverseBranchResNetBasicSpec(out_channels=16, stride=2)
    block = randomize_batchnorm(perturb_weights(build_block(spec, 8, size=10), seed=1), seed=2).eval()
    x = torch.randn(2, 8, 10, 10)
    with torch.no_grad():
        reference = block(x)
        deployed = ev.reparameterize(block)
        fused = deployed(x)
    assert reference.shape == (2, 16, 5, 5)
    # conv1 (3x3), conv2 (3x3) and the projection (1x1): a ResNet basic block whose convs carry biases
    kernels = sorted(m.kernel_size for m in deployed.modules() if isinstance(m, nn.Conv2d))
    assert kernels == [(1, 1), (3, 3), (3, 3)]
    assert max_relative_error(reference, fused) <= 1e-5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kernel_size": 1}, "kernel_size must be an odd kernel size >= 3"),
        ({"kernel_size": 4}, "kernel_size must be an odd kernel size >= 3"),
        ({"groups": 5}, "out_channels must be divisible by groups=5"),
        ({"internal_expansion": 0}, "internal_expansion must be a positive number"),
        ({"activation": "swish"}, "activation must be one of"),
    ],
)
def test_dbb_spec_rejects_impossible_values(changes, message):
    with pytest.raises(ValueError, match=message):
        DiverseBranchConvSpec(out_channels=12, **changes)


def test_dbb_depthwise_must_keep_its_width():
    with pytest.raises(ValueError, match="groups=8 is depthwise and must keep its width"):
        resolve_block(DiverseBranchConvSpec(out_channels=8, groups=8), in_channels=16)


# ---- RMNet reserve-and-merge --------------------------------------------------------------------
@pytest.mark.parametrize(("in_channels", "out_channels", "stride"), [(8, 8, 1), (8, 16, 2)])
def test_rm_block_removes_the_residual_equivalently(in_channels, out_channels, stride):
    spec = RMResNetBasicSpec(out_channels=out_channels, stride=stride)
    block = randomize_batchnorm(perturb_weights(build_block(spec, in_channels, size=9), seed=4), seed=5).eval()
    x = torch.relu(torch.randn(2, in_channels, 9, 9))  # a block's input is a ReLU output
    with torch.no_grad():
        reference = block(x)
        deployed = ev.reparameterize(block)
        plain = deployed(x)
    assert ev.is_deploy_form(deployed)
    assert max_relative_error(reference, plain) <= 1e-5
    # conv(C -> C + C') -> ReLU -> conv(C + C' -> C') -> ReLU, nothing else: no shortcut is left
    layers = list(deployed.plain)
    assert [type(m) for m in layers] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU]
    reserve, merge = layers[0], layers[2]
    assert (reserve.in_channels, reserve.out_channels, reserve.stride) == (in_channels, in_channels + out_channels, (stride, stride))
    assert (merge.in_channels, merge.out_channels) == (in_channels + out_channels, out_channels)
    assert deployed.shortcut is None
    # the reserved filters are an exact identity: they copy (and subsample) the input
    with torch.no_grad():
        reserved = reserve(x)[:, :in_channels]
    torch.testing.assert_close(reserved, x[:, :, ::stride, ::stride])


def test_rm_block_needs_a_non_negative_input():
    """The reserved copy passes the ReLU only because ReLU(x) = x for x >= 0 (the paper's precondition)."""
    block = randomize_batchnorm(build_block(RMResNetBasicSpec(out_channels=8), 8, size=8), seed=1).eval()
    x = torch.randn(1, 8, 8, 8)  # negative values: the deploy form would clip the reserved copy
    with torch.no_grad():
        reference = block(x)
        deployed = ev.reparameterize(block)
    assert max_relative_error(reference, deployed(x)) > 1e-2


def test_rm_spec_requires_relu():
    with pytest.raises(ValueError, match="RMResNetBasicSpec.activation must be 'relu'"):
        RMResNetBasicSpec(out_channels=8, activation="silu")


# ---- GSConv and VoV-GSCSP -----------------------------------------------------------------------
def test_gsconv_interleaves_dense_and_depthwise_halves():
    spec = GSConvSpec(out_channels=12, kernel_size=3, stride=2)
    block = build_block(spec, 5, size=9).eval()
    x = torch.randn(2, 5, 9, 9)
    with torch.no_grad():
        out = block(x)
        dense = block.dense(x)
        cheap = block.cheap(dense)
    assert out.shape == (2, 12, 5, 5)
    assert block.cheap.conv.groups == 6 and block.cheap.conv.kernel_size == (5, 5)  # 5x5 depthwise on the half
    torch.testing.assert_close(out[:, 0::2], dense)  # channel 2i: the dense conv's i-th channel
    torch.testing.assert_close(out[:, 1::2], cheap)  # channel 2i + 1: its depthwise companion
    # dense k x k conv-BN (C -> C'/2) + 5x5 depthwise conv-BN (C'/2)
    assert count(block) == (5 * 6 * 9 + 2 * 6) + (6 * 25 + 2 * 6)


def test_gsconv_spec_errors_name_the_field():
    with pytest.raises(ValueError, match="GSConvSpec.out_channels must be even"):
        GSConvSpec(out_channels=7)
    with pytest.raises(ValueError, match="GSConvSpec.kernel_size must be odd"):
        GSConvSpec(out_channels=8, kernel_size=2)
    with pytest.raises(ValueError, match=r"GSConvSpec.groups=4 must divide the resolved channels \(6 -> 4\)"):
        resolve_block(GSConvSpec(out_channels=8, groups=4), in_channels=6)


@pytest.mark.parametrize(("in_channels", "out_channels"), [(64, 128), (96, 64)])
def test_vov_gscsp_shapes_and_the_authors_parameter_count(in_channels, out_channels):
    """Counts from the authors' models_inPaper.py VoVGSCSP(c1, c2), counted without its unused ``res`` conv."""
    authors = {(64, 128): 40944, (96, 64): 14840}
    spec = VoVGSCSPSpec(out_channels=out_channels)
    resolved = resolve_block(spec, in_channels, size=8)
    assert resolved.mid_channels == out_channels // 2
    block = spec.build(resolved).eval()
    with torch.no_grad():
        out = block(torch.randn(1, in_channels, 8, 8))
    assert out.shape == (1, out_channels, 8, 8)
    assert count(block) == authors[(in_channels, out_channels)]
    bottleneck = block.bottlenecks[0]
    assert bottleneck.gsconv1.dense.conv.out_channels * 2 == out_channels // 4  # C_b = C_h // 2, split in halves
    assert bottleneck.gsconv2.dense.conv.kernel_size == (3, 3)
    assert isinstance(bottleneck.gsconv2.dense.act, nn.Identity)  # the last GSConv has no activation


def test_vov_gscsp_stacks_bottlenecks_and_checks_widths():
    block = build_block(VoVGSCSPSpec(out_channels=32, num_bottlenecks=3, bottleneck_expansion=1.0), 16, size=6)
    assert len(block.bottlenecks) == 3
    assert block.bottlenecks[0].gsconv1.dense.conv.out_channels == 8  # C_b = C_h = 16, GSConv halves it
    block(torch.randn(1, 16, 6, 6)).sum().backward()
    assert all(p.grad is not None for p in block.parameters())
    with pytest.raises(ValueError, match="VoVGSCSPSpec.stride must be 1"):
        VoVGSCSPSpec(out_channels=32, stride=2)
    with pytest.raises(ValueError, match=r"hidden width int\(out_channels \* expansion\) = 5 must be even"):
        resolve_block(VoVGSCSPSpec(out_channels=10), in_channels=8)
    with pytest.raises(ValueError, match="bottleneck width int\\(6 \\* bottleneck_expansion\\) = 3 must be even"):
        resolve_block(VoVGSCSPSpec(out_channels=12), in_channels=8)


# ---- MGIC ---------------------------------------------------------------------------------------
def test_mgic_levels_halve_channels_down_to_the_dense_coarsest_level():
    # the release's rule: keep restricting while C / 2 >= mgFcChannel; the coarse solve runs at the last C / 2
    assert multigrid_levels(256, group_size=32, coarsest_channels=32) == [(256, 8), (128, 4), (64, 2), (32, 1)]
    block = build_block(MGICBlockSpec(out_channels=128), 128, size=6)
    cycle = block.cycle
    assert isinstance(block.connector, nn.Identity)
    assert (cycle.restrict.in_channels, cycle.restrict.out_channels, cycle.restrict.groups) == (128, 64, 4)
    assert cycle.smooth.conv1.conv.groups == 4  # grouped 3x3 convs: 32 channels per group
    middle = cycle.coarse.coarse
    assert isinstance(middle, MultigridCycle) and middle.restrict.groups == 1  # 32 channels: one group
    assert isinstance(middle.coarse, ResidualSmoother) and middle.coarse.conv1.conv.in_channels == 16  # dense at 16


@pytest.mark.parametrize(("in_channels", "out_channels", "stride", "authors"), [(64, 64, 1, 63616), (64, 128, 2, 143616)])
def test_mgic_block_matches_the_authors_parameter_count(in_channels, out_channels, stride, authors):
    """Counted from the authors' resnetMG.MgBlockDwGroup (pwGroup, no bottleneck, numberOfFixGroup=mgFcChannel=32)."""
    spec = MGICBlockSpec(out_channels=out_channels, stride=stride)
    block = build_block(spec, in_channels, size=8)
    assert count(block) == authors
    assert block(torch.randn(1, in_channels, 8, 8)).shape == (1, out_channels, 8 // stride, 8 // stride)


def test_mgic_cycle_couples_the_groups_that_grouped_convs_keep_apart():
    """A grouped smoother alone never lets channel group 0 see the last group; the V-cycle does."""
    torch.manual_seed(0)
    channels = 64
    x = torch.randn(1, channels, 6, 6)
    probe = x.clone()
    probe[:, -1] += 1.0  # change only the last channel (group 1 of 2)
    smoother = ResidualSmoother(channels, groups=2).eval()
    cycle = MultigridCycle(channels, group_size=32, coarsest_channels=32).eval()
    with torch.no_grad():
        assert torch.equal(smoother(x)[:, :32], smoother(probe)[:, :32])
        assert (cycle(x)[:, :32] - cycle(probe)[:, :32]).abs().max() > 1e-4


def test_mgic_deploys_by_folding_batchnorm():
    block = randomize_batchnorm(build_block(MGICBlockSpec(out_channels=64, stride=2), 32, size=8), seed=3).eval()
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        reference = block(x)
        deployed = ev.reparameterize(block)
    assert ev.is_deploy_form(deployed)
    assert max_relative_error(reference, deployed(x)) <= 1e-5


def test_mgic_spec_errors():
    with pytest.raises(ValueError, match="MGICBlockSpec.group_size must be even"):
        MGICBlockSpec(out_channels=64, group_size=15)
    with pytest.raises(ValueError, match="out_channels \\(96\\) must be a multiple of the input width \\(64\\)"):
        resolve_block(MGICBlockSpec(out_channels=96, stride=2), in_channels=64)
    with pytest.raises(ValueError, match="level of 66 channels cannot be halved into 2 groups"):
        resolve_block(MGICBlockSpec(out_channels=66), in_channels=66)


def test_specs_round_trip_through_json():
    for spec in (
        DiverseBranchConvSpec(out_channels=16, kernel_size=5, groups=2, internal_expansion=2),
        DiverseBranchResNetBasicSpec(out_channels=16, stride=2),
        RMResNetBasicSpec(out_channels=32, stride=2),
        GSConvSpec(out_channels=16, kernel_size=3),
        VoVGSCSPSpec(out_channels=64, num_bottlenecks=2, bottleneck_expansion=1.0),
        MGICBlockSpec(out_channels=128, stride=2, group_size=16, coarsest_channels=16),
    ):
        assert type(spec).from_json(spec.to_json()) == spec
