"""Ghost and RepGhost blocks: widths, shapes, shortcuts, validation, and RepGhost re-parameterization."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgevision import reparameterize
from edgevision.blocks import ChannelScale, GhostBottleneckSpec, RepGhostBottleneckSpec
from edgevision.blocks.ghost import GhostBottleneck, GhostModule
from edgevision.blocks.repghost import RepGhostModule
from edgevision.layers import ConvNormAct
from edgevision.spec import Spec

from helpers import max_relative_error, randomize_batchnorm

torch.manual_seed(0)


def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


# ---- specs ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec_cls", [GhostBottleneckSpec, RepGhostBottleneckSpec])
def test_widths_scale_absolute_mid_and_se_with_divisor(spec_cls):
    spec = spec_cls(out_channels=112, mid_channels=672, kernel_size=3, se_ratio=0.25)
    widths = spec.widths(in_channels=56, scale=ChannelScale(0.5, 4))
    # mid is the table's absolute width scaled (not in_channels * ratio); SE = make_divisible(mid / 4, 4)
    assert (widths.out_channels, widths.mid_channels, widths.se_channels) == (56, 336, 84)
    widths = spec.widths(in_channels=72, scale=ChannelScale(1.3, 4))
    assert (widths.out_channels, widths.mid_channels, widths.se_channels) == (144, 872, 220)
    assert spec.replace(se_ratio=0.0).widths(56, ChannelScale()).se_channels is None


@pytest.mark.parametrize(
    "spec_cls, changes, message",
    [
        (GhostBottleneckSpec, {"kernel_size": 4}, "GhostBottleneckSpec.kernel_size must be 3, 5 or 7, got 4"),
        (GhostBottleneckSpec, {"stride": 3}, "GhostBottleneckSpec.stride must be 1 or 2, got 3"),
        (GhostBottleneckSpec, {"ghost_ratio": 1}, "GhostBottleneckSpec.ghost_ratio must be >= 2"),
        (GhostBottleneckSpec, {"mid_channels": 0}, "GhostBottleneckSpec.mid_channels must be a positive number, got 0"),
        (GhostBottleneckSpec, {"se_ratio": 1.0}, "GhostBottleneckSpec.se_ratio must be in [0, 1)"),
        (GhostBottleneckSpec, {"activation": "swish"}, "GhostBottleneckSpec.activation must be one of"),
        (
            RepGhostBottleneckSpec,
            {"feature_reuse": "concat"},
            "RepGhostBottleneckSpec.feature_reuse must be 'batchnorm', 'identity' or 'none', got 'concat'",
        ),
        (RepGhostBottleneckSpec, {"cheap_kernel_size": 1}, "RepGhostBottleneckSpec.cheap_kernel_size must be 3, 5 or 7, got 1"),
    ],
)
def test_validation_messages_name_class_field_and_value(spec_cls, changes, message):
    fields = {"out_channels": 16, "mid_channels": 48} | changes
    with pytest.raises(ValueError) as error:
        spec_cls(**fields)
    assert message in str(error.value)


@pytest.mark.parametrize("spec_cls", [GhostBottleneckSpec, RepGhostBottleneckSpec])
def test_spec_json_round_trip(spec_cls):
    spec = spec_cls(out_channels=40, mid_channels=120, kernel_size=5, stride=2, se_ratio=0.25)
    assert Spec.from_json(spec.to_json()) == spec


# ---- Ghost module and bottleneck ------------------------------------------------------------
@pytest.mark.parametrize("out_channels, ratio", [(16, 2), (7, 2), (10, 3)])
def test_ghost_module_concatenates_then_slices(out_channels, ratio):
    module = GhostModule(5, out_channels, ratio=ratio).eval()
    intrinsic = -(-out_channels // ratio)
    assert module.primary.conv.out_channels == intrinsic
    assert module.cheap.conv.out_channels == intrinsic * (ratio - 1)
    assert module.cheap.conv.groups == intrinsic
    x = torch.randn(2, 5, 9, 9)
    out = module(x)
    assert out.shape == (2, out_channels, 9, 9)
    # the first channels are the intrinsic maps themselves
    torch.testing.assert_close(out[:, :intrinsic], module.primary(x))


def test_ghost_bottleneck_stride_two_has_depthwise_and_projection_shortcut():
    block = GhostBottleneck(16, 48, 24, kernel_size=5, stride=2, se_channels=12).eval()
    assert isinstance(block.depthwise, ConvNormAct) and block.depthwise.conv.stride == (2, 2)
    assert block.depthwise.conv.kernel_size == (5, 5)
    assert isinstance(block.shortcut, nn.Sequential) and block.shortcut[0].conv.groups == 16
    assert block.se.reduce.out_channels == 12
    assert isinstance(block.project.cheap.act, nn.Identity)  # the second module is linear
    assert block(torch.randn(2, 16, 15, 15)).shape == (2, 24, 8, 8)


@pytest.mark.parametrize("module", [GhostModule, RepGhostModule])
def test_identity_shortcut_when_shape_is_kept(module):
    block = GhostBottleneck(16, 32, 16, module=module).eval()
    assert isinstance(block.shortcut, nn.Identity) and isinstance(block.depthwise, nn.Identity)
    with torch.no_grad():  # silence the projecting module: the block must then return its input
        for m in block.project.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.zero_()
                m.bias.zero_()
    x = torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(x), x)


def test_channel_change_at_stride_one_uses_projection_shortcut():
    block = GhostBottleneck(80, 480, 112).eval()
    assert isinstance(block.shortcut, nn.Sequential)
    assert block(torch.randn(1, 80, 7, 7)).shape == (1, 112, 7, 7)


def test_spec_build_uses_resolved_widths():
    from edgevision.blocks import ResolvedBlock

    spec = GhostBottleneckSpec(out_channels=40, mid_channels=120, kernel_size=5, stride=2, se_ratio=0.25, ghost_ratio=3)
    widths = spec.widths(24, ChannelScale(1.0, 4))
    resolved = ResolvedBlock(
        section="stages", stage_index=0, block_index=0, spec=spec, in_channels=24, out_channels=widths.out_channels,
        mid_channels=widths.mid_channels, se_channels=widths.se_channels, stride=2, input_size=(16, 16), output_size=(8, 8),
    )  # fmt: skip
    block = spec.build(resolved)
    assert block.expand.primary.conv.out_channels == 40  # ceil(120 / 3)
    assert block.se.reduce.out_channels == 32
    assert block(torch.randn(1, 24, 16, 16)).shape == (1, 40, 8, 8)


# ---- RepGhost module: train form vs deploy form -----------------------------------------------
@pytest.mark.parametrize("feature_reuse", ["batchnorm", "identity", "none"])
@pytest.mark.parametrize("act", [nn.ReLU, None])
@pytest.mark.parametrize("via_walker", [True, False])
def test_repghost_module_fuses_into_one_depthwise_conv(feature_reuse, act, via_walker):
    module = randomize_batchnorm(RepGhostModule(6, 12, kernel_size=3, act=act, feature_reuse=feature_reuse), seed=1).eval()
    assert _count(module, nn.BatchNorm2d) == (3 if feature_reuse == "batchnorm" else 2)
    x = torch.randn(2, 6, 10, 10)
    expected = module(x)
    if via_walker:  # children first: ConvNormAct folds its BN before the module fuses its branch
        deployed = reparameterize(module)
    else:  # called directly, the module folds its own children first
        deployed = module
        deployed.reparameterize()
    assert _count(deployed, nn.BatchNorm2d) == 0
    assert deployed.reuse is None
    assert _count(deployed, nn.Conv2d) == 2  # primary 1x1 and ONE fused depthwise conv
    assert deployed.cheap.conv.bias is not None and deployed.cheap.conv.groups == 12
    assert max_relative_error(expected, deployed(x)) <= 1e-5


def test_repghost_module_without_act_is_linear_and_keeps_width():
    module = RepGhostModule(8, 20, act=None).eval()
    assert isinstance(module.act, nn.Identity)
    assert module.primary.conv.out_channels == 20 and module.cheap.conv.out_channels == 20  # no concatenation
    assert module(torch.randn(1, 8, 5, 5)).shape == (1, 20, 5, 5)


@pytest.mark.parametrize("stride, in_channels, out_channels", [(1, 24, 24), (2, 16, 40)])
def test_repghost_bottleneck_deploy_matches_train(stride, in_channels, out_channels):
    spec = RepGhostBottleneckSpec(out_channels=out_channels, mid_channels=36, kernel_size=5, stride=stride, se_ratio=0.25)
    block = GhostBottleneck(in_channels, 36, out_channels, 5, stride, se_channels=12, module=spec.feature_module())
    assert isinstance(block.expand, RepGhostModule) and isinstance(block.project, RepGhostModule)
    block = randomize_batchnorm(block, seed=2).eval()
    assert _count(block, nn.BatchNorm2d) > 0
    x = torch.randn(2, in_channels, 14, 14)
    expected = block(x)
    deployed = reparameterize(block)
    assert _count(deployed, nn.BatchNorm2d) == 0
    for module in (deployed.expand, deployed.project):
        assert module.reuse is None
    assert max_relative_error(expected, deployed(x)) <= 1e-5
    assert sum(p.numel() for p in deployed.parameters()) < sum(p.numel() for p in block.parameters())


def test_repghost_deploy_param_count():
    # train: primary conv + BN, cheap dw conv + BN, reuse BN; deploy: primary conv + bias, dw conv + bias
    module = RepGhostModule(4, 8)
    assert sum(p.numel() for p in module.parameters()) == 4 * 8 + 2 * 8 + 8 * 9 + 2 * 8 + 2 * 8
    deployed = reparameterize(module)
    assert sum(p.numel() for p in deployed.parameters()) == 4 * 8 + 8 + 8 * 9 + 8
