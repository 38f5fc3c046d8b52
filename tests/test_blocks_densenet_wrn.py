"""Block-level tests: DenseNet's dense layer and transition, Wide ResNet's pre-activation block, and
the pre-activation BN that becomes a ChannelAffine in the deploy form."""

from __future__ import annotations

import pytest
import torch
from helpers import build_block, max_relative_error, randomize_batchnorm
from torch import nn

import edgevision as ev
from edgevision.blocks import (
    BareConvSpec,
    ChannelScale,
    DenseLayer,
    DenseLayerSpec,
    DenseTransitionSpec,
    NormActSpec,
    PreActivation,
    WideBasicBlock,
    WideBasicSpec,
)
from edgevision.layers import ChannelAffine
from edgevision.models.wide_resnet import wide_resnet_cifar
from edgevision.spec import Spec

SCALE = ChannelScale(1.0, 1)


def build(spec, in_channels: int, size: int = 8) -> nn.Module:
    return build_block(spec, in_channels, size, SCALE)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def deploy_and_compare(block: nn.Module, x: torch.Tensor) -> nn.Module:
    randomize_batchnorm(block, seed=3).eval()
    with torch.no_grad():
        reference = block(x)
        deployed = ev.reparameterize(block)
        assert ev.is_deploy_form(deployed)
        assert max_relative_error(reference, deployed(x)) <= 1e-4
    return deployed


# ---- pre-activation -------------------------------------------------------------------------
def test_pre_activation_becomes_channel_affine():
    block = randomize_batchnorm(PreActivation(6)).eval()
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        reference = block(x)
        block.reparameterize()
        assert isinstance(block.norm, ChannelAffine)
        torch.testing.assert_close(block(x), reference)
    assert params(block) == 12  # scale and shift stand where gamma and beta stood


# ---- DenseNet -------------------------------------------------------------------------------
def test_dense_layer_appends_growth_channels_and_keeps_its_input():
    spec = DenseLayerSpec(growth_rate=8, bottleneck_channels=32)
    widths = spec.widths(20, SCALE)
    assert (widths.out_channels, widths.mid_channels) == (28, 32)  # out = in + k
    layer = build(spec, 20).eval()
    x = torch.randn(2, 20, 7, 7)
    with torch.no_grad():
        out = layer(x)
    assert out.shape == (2, 28, 7, 7)
    torch.testing.assert_close(out[:, :20], x)  # concatenation: earlier features pass through untouched


def test_dense_layer_params_match_torchvision_formula():
    # torchvision _DenseLayer(num_input_features=C, growth_rate=k, bn_size=4): norm1 2C, conv1 C*4k, norm2 2*4k, conv2 4k*k*9
    c, k = 160, 32
    layer = build(DenseLayerSpec(growth_rate=k, bottleneck_channels=4 * k), c)
    assert isinstance(layer, DenseLayer)
    assert params(layer) == 2 * c + c * 4 * k + 2 * 4 * k + 4 * k * k * 9
    assert layer.conv1.conv.bias is None and layer.conv2.conv.bias is None


@pytest.mark.parametrize("size", [14, 15])
def test_transition_halves_width_and_floors_size(size):
    spec = DenseTransitionSpec()
    assert spec.widths(1024, SCALE).out_channels == 512 and spec.widths(33, SCALE).out_channels == 16
    transition = build(spec, 30, size)
    out = transition(torch.randn(1, 30, size, size))
    assert out.shape[1:] == (15, *spec.output_size((size, size))) == (15, size // 2, size // 2)


@pytest.mark.parametrize(
    "spec,in_channels", [(DenseLayerSpec(growth_rate=8, bottleneck_channels=16), 12), (DenseTransitionSpec(), 12)]
)
def test_dense_blocks_deploy_equivalence(spec, in_channels):
    block = build(spec, in_channels, 9)
    deployed = deploy_and_compare(block, torch.randn(2, in_channels, 9, 9))
    assert isinstance(deployed.preact.norm, ChannelAffine)
    # the pre-activation BN keeps 2C as an affine map; a BN after a conv (2C) folds into a bias (C)
    folded = sum(m.num_features for name, m in block.named_modules() if isinstance(m, nn.BatchNorm2d) and "preact" not in name)
    assert params(deployed) == params(block) - folded


def test_densenet121_table_1_widths():
    resolved = ev.resolve(ev.get_spec("densenet121"))
    transitions = [b for b in resolved if isinstance(b.spec, DenseTransitionSpec)]
    # 64 + 6*32 = 256 -> 128; 128 + 12*32 = 512 -> 256; 256 + 24*32 = 1024 -> 512
    assert [(b.in_channels, b.out_channels, b.output_size) for b in transitions] == [
        (256, 128, (28, 28)),
        (512, 256, (14, 14)),
        (1024, 512, (7, 7)),
    ]
    assert [s.depth for s in resolved.spec.stages] == [7, 13, 25, 17]  # 6, 12, 24, 16 layers + transition / BN-ReLU
    assert resolved.head.in_channels == 512 + 16 * 32 == 1024
    assert isinstance(resolved.spec.stages[-1].blocks[-1], NormActSpec)


# ---- Wide ResNet ----------------------------------------------------------------------------
def test_wide_basic_params_match_release_layout():
    # pytorch/resnet.py gen_block_params(ni, no): conv0 ni*no*9, conv1 no*no*9, bn0 2ni, bn1 2no, convdim ni*no (ni != no)
    block = build(WideBasicSpec(out_channels=160), 16)
    assert isinstance(block, WideBasicBlock) and block.projects
    assert params(block) == 16 * 160 * 9 + 160 * 160 * 9 + 2 * 16 + 2 * 160 + 16 * 160
    assert all(m.bias is None for m in block.modules() if isinstance(m, nn.Conv2d))  # utils.DisableBias
    assert params(build(WideBasicSpec(out_channels=160), 160)) == 2 * 160 * 160 * 9 + 4 * 160  # identity shortcut


def test_wide_basic_has_no_relu_after_the_addition_and_projects_the_preactivated_input():
    identity = build(WideBasicSpec(out_channels=8), 8).eval()
    projecting = build(WideBasicSpec(out_channels=16, stride=2), 8).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        for block in (identity, projecting):
            block.conv2.conv.weight.zero_()  # residual branch off
        torch.testing.assert_close(identity(x), x)  # negative values survive: no ReLU after the sum
        expected = projecting.shortcut(torch.relu(projecting.preact.norm(x)))  # 1x1 conv on BN-ReLU(x), not on x
        torch.testing.assert_close(projecting(x), expected)
        assert projecting(x).shape == (2, 16, 3, 3)


def test_wide_basic_deploy_equivalence():
    block = build(WideBasicSpec(out_channels=16, stride=2), 8)
    deployed = deploy_and_compare(block, torch.randn(2, 8, 9, 9))
    assert isinstance(deployed.preact.norm, ChannelAffine) and deployed.conv1.conv.bias is not None


def test_wrn_28_10_table_1_layout():
    spec = ev.get_spec("wrn_28_10")
    assert spec.input_size == 32 and spec.head.num_classes == 10
    resolved = ev.resolve(spec)
    wide = [b for b in resolved if isinstance(b.spec, WideBasicSpec)]
    assert len(wide) == 12  # n = (28 - 4) / 6 = 4 blocks in each of 3 groups
    assert [(wide[i].out_channels, wide[i].output_size) for i in (0, 4, 8)] == [(160, (32, 32)), (320, (16, 16)), (640, (8, 8))]
    with torch.device("meta"):  # shapes only: no 36M-parameter initialization
        model = ev.build(spec)
    kernels = [m.kernel_size for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert kernels.count((3, 3)) == 25 and kernels.count((1, 1)) == 3  # stem + 2 per block; one projection per group
    assert ev.count_params(model) == 36_479_194  # the authors' pytorch/resnet.py at 10 classes (paper: 36.5M)


def test_bare_conv_and_norm_act_specs():
    stem = build(BareConvSpec(out_channels=16), 3)
    assert stem.conv.bias is None and isinstance(stem.norm, nn.Identity) and isinstance(stem.act, nn.Identity)
    assert NormActSpec().widths(48, SCALE).out_channels == 48  # keeps the width


def test_spec_errors_name_the_field():
    with pytest.raises(ValueError, match=r"DenseLayerSpec.stride must be 1, got 2"):
        DenseLayerSpec(stride=2)
    with pytest.raises(ValueError, match=r"DenseLayerSpec.growth_rate must be a positive number, got 0"):
        DenseLayerSpec(growth_rate=0)
    with pytest.raises(ValueError, match=r"DenseTransitionSpec.compression must be in \(0, 1\], got 0"):
        DenseTransitionSpec(compression=0)
    with pytest.raises(ValueError, match=r"WideBasicSpec.dropout must be in \[0, 1\), got 1.0"):
        WideBasicSpec(out_channels=160, dropout=1.0)
    with pytest.raises(ValueError, match=r"BareConvSpec.norm must be False"):
        BareConvSpec(out_channels=16, norm=True)
    with pytest.raises(ValueError, match=r"Wide ResNet depth must be 6n \+ 4"):
        wide_resnet_cifar("wrn_27_10", depth=27, widen_factor=10)


@pytest.mark.parametrize(
    "spec",
    [
        DenseLayerSpec(),
        DenseTransitionSpec(compression=0.5),
        WideBasicSpec(out_channels=320, stride=2, dropout=0.3),
        NormActSpec(),
        BareConvSpec(out_channels=16),
    ],
)
def test_specs_json_round_trip(spec):
    assert Spec.from_json(spec.to_json()) == spec
