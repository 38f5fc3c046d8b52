"""ShuffleNet V1 / V2 units: shapes, shortcut and shuffle behaviour, validation, deploy form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgevision import reparameterize
from edgevision.blocks import ChannelScale, ClassifierHeadSpec, ConvNormActSpec, ShuffleNetV1UnitSpec, ShuffleNetV2UnitSpec
from edgevision.blocks.base import BlockSpec
from edgevision.blocks.shufflenet_v1 import ShuffleNetV1Unit
from edgevision.blocks.shufflenet_v2 import ShuffleNetV2Unit
from edgevision.layers import channel_shuffle
from edgevision.network import NetworkSpec, StageSpec
from edgevision.registry import get_spec
from edgevision.resolve import resolve
from edgevision.spec import Spec
from helpers import max_relative_error, randomize_batchnorm

SCALE = ChannelScale(1.0, 1)


def _build(spec: BlockSpec, in_channels: int, size: int = 8) -> nn.Module:
    """Resolve one block after a stem conv of ``in_channels`` and build it."""
    network = NetworkSpec(
        name="probe",
        stem=(ConvNormActSpec(out_channels=in_channels, kernel_size=1),),
        stages=(StageSpec(blocks=(spec,)),),
        head=ClassifierHeadSpec(),
        channel_divisor=1,
        input_size=size,
    )
    block = resolve(network).stage(0)[0]
    return spec.build(block)


def _deploy_matches(module: nn.Module, x: torch.Tensor) -> nn.Module:
    randomize_batchnorm(module)
    module.eval()
    deployed = reparameterize(module)
    with torch.no_grad():
        assert max_relative_error(module(x), deployed(x)) <= 1e-4
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in deployed.modules())
    return deployed


# ---- ShuffleNet V1 ----------------------------------------------------------------------------
@pytest.mark.parametrize("stride, in_channels, size, expected", [(1, 240, 8, (240, 8)), (2, 240, 7, (480, 4)), (2, 24, 9, (240, 5))])
def test_v1_shapes_match_resolve(stride, in_channels, size, expected):
    spec = ShuffleNetV1UnitSpec(out_channels=expected[0], stride=stride, groups=3, group_first_pointwise=in_channels != 24)
    unit = _build(spec, in_channels, size)
    out = unit(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, expected[0], expected[1], expected[1])
    assert spec.output_size((size, size)) == (expected[1], expected[1])


def test_v1_widths_follow_the_release():
    widths = ShuffleNetV1UnitSpec(out_channels=240, stride=2, groups=3).widths(24, SCALE)
    assert (widths.out_channels, widths.mid_channels) == (240, 60)  # bottleneck = out / 4
    unit = ShuffleNetV1Unit(24, 240, 60, groups=3, group_first_pointwise=False, stride=2)
    assert unit.pointwise1.conv.groups == 1 and unit.pointwise2.conv.groups == 3
    assert unit.pointwise2.conv.out_channels == 240 - 24  # the branch fills what the pooled shortcut does not
    assert unit.depthwise.conv.groups == 60


def test_v1_stride1_is_relu_of_residual_sum():
    unit = ShuffleNetV1Unit(48, 48, 12, groups=4).eval()
    nn.init.zeros_(unit.pointwise2.norm.weight)  # branch output = BN bias = 0
    x = torch.randn(1, 48, 6, 6)
    assert torch.equal(unit(x), torch.relu(x))


def test_v1_stride2_concatenates_pooled_input_without_relu():
    unit = ShuffleNetV1Unit(24, 96, 24, groups=3, stride=2).eval()
    x = torch.randn(1, 24, 7, 7)
    out = unit(x)
    assert torch.allclose(out[:, :24], nn.functional.avg_pool2d(x, 3, 2, 1))
    assert (out[:, 24:] >= 0).all()


def test_v1_shuffle_lets_every_group_see_every_group():
    groups, channels = 4, 32
    unit = ShuffleNetV1Unit(channels, channels, 16, groups=groups).eval()
    branch_outputs = []
    unit.pointwise2.register_forward_hook(lambda module, args, out: branch_outputs.append(out))
    x = torch.randn(1, channels, 5, 5)
    moved = x.clone()
    moved[:, : channels // groups] += 1.0  # touch input group 0 only
    with torch.no_grad():
        unit(x), unit(moved)
    change = (branch_outputs[1] - branch_outputs[0]).abs().sum((0, 2, 3)).reshape(groups, -1).sum(1)
    assert (change > 0).all()  # with grouped 1x1 convs and no shuffle, only output group 0 would move


def test_v1_shuffle_order_is_the_released_one():
    """(C/g, g) -> (g, C/g): output channel i*(C/g) + j comes from input channel j*g + i."""
    groups, channels = 3, 12
    x = torch.arange(channels, dtype=torch.float32).reshape(1, channels, 1, 1)
    released = x.reshape(1, channels // groups, groups, 1, 1).permute(0, 2, 1, 3, 4).reshape(1, channels, 1, 1)
    assert torch.equal(channel_shuffle(x, channels // groups), released)


@pytest.mark.parametrize("stride, in_channels, out_channels, first", [(1, 96, 96, True), (2, 96, 192, True), (2, 24, 200, False)])
def test_v1_deploy_form_matches(stride, in_channels, out_channels, first):
    unit = ShuffleNetV1Unit(in_channels, out_channels, out_channels // 4, groups=2, group_first_pointwise=first, stride=stride)
    deployed = _deploy_matches(unit, torch.randn(2, in_channels, 9, 9))
    convs = [m for m in deployed.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 and all(c.bias is not None for c in convs)


def test_v1_validation_messages():
    with pytest.raises(ValueError, match=r"ShuffleNetV1UnitSpec.groups must be one of 1, 2, 3, 4, 8, got 5"):
        ShuffleNetV1UnitSpec(out_channels=240, groups=5)
    with pytest.raises(ValueError, match=r"ShuffleNetV1UnitSpec.out_channels must be divisible by groups=3, got 100"):
        ShuffleNetV1UnitSpec(out_channels=100, groups=3)
    with pytest.raises(ValueError, match=r"ShuffleNetV1UnitSpec.stride must be 1 or 2, got 3"):
        ShuffleNetV1UnitSpec(out_channels=240, stride=3)
    with pytest.raises(ValueError, match=r"ShuffleNetV1UnitSpec.bottleneck_ratio must be in \(0, 1\], got 0"):
        ShuffleNetV1UnitSpec(out_channels=240, bottleneck_ratio=0)


@pytest.mark.parametrize(
    "spec, in_channels, message",
    [
        (ShuffleNetV1UnitSpec(out_channels=24, groups=8), 24, r"groups=8 must divide the resolved bottleneck channels, got 6"),
        (ShuffleNetV1UnitSpec(out_channels=256, stride=2, groups=8), 20, r"groups=8 must divide the resolved in channels, got 20"),
        (
            ShuffleNetV1UnitSpec(out_channels=256, stride=2, groups=8, group_first_pointwise=False),
            20,
            r"groups=8 must divide the resolved branch output \(out - in\) channels, got 236",
        ),
        (ShuffleNetV1UnitSpec(out_channels=240, groups=3), 120, r"stride 1 adds its input, .* got 120 -> 240"),
        (ShuffleNetV1UnitSpec(out_channels=120, stride=2, groups=3), 120, r"needs out_channels > in_channels, got 120 -> 120"),
    ],
)
def test_v1_resolve_time_checks(spec, in_channels, message):
    with pytest.raises(ValueError, match=message):
        _build(spec, in_channels)


# ---- ShuffleNet V2 ----------------------------------------------------------------------------
@pytest.mark.parametrize("stride, in_channels, out_channels, size", [(1, 116, 116, 8), (2, 116, 232, 7), (2, 24, 116, 9)])
def test_v2_shapes_match_resolve(stride, in_channels, out_channels, size):
    spec = ShuffleNetV2UnitSpec(out_channels=out_channels, stride=stride)
    unit = _build(spec, in_channels, size)
    out = unit(torch.randn(2, in_channels, size, size))
    expected = spec.output_size((size, size))
    assert out.shape == (2, out_channels, *expected)


def test_v2_widths_follow_the_release():
    widths = ShuffleNetV2UnitSpec(out_channels=116, stride=2).widths(24, SCALE)
    assert (widths.out_channels, widths.mid_channels) == (116, 58)
    unit = ShuffleNetV2Unit(24, 116, 58, stride=2)
    assert [m.conv.out_channels for m in unit.branch] == [58, 58, 116 - 24]  # right branch fills out - in
    assert [m.conv.out_channels for m in unit.left] == [24, 24]  # left branch keeps the input width
    assert unit.left[0].conv.groups == 24 and unit.branch[1].conv.groups == 58
    unit = ShuffleNetV2Unit(116, 116, 58)
    assert isinstance(unit.left, nn.Identity) and unit.branch[0].conv.in_channels == 58


def test_v2_stride1_keeps_even_channels_and_transforms_odd_ones():
    unit = ShuffleNetV2Unit(16, 16, 8).eval()
    x = torch.randn(1, 16, 5, 5)
    out = unit(x)
    assert torch.equal(out[:, :8], x[:, 0::2])  # shuffle + split of the released code
    x_even_moved = x.clone()
    x_even_moved[:, 0::2] += 1.0
    assert torch.equal(unit(x_even_moved)[:, 8:], out[:, 8:])  # the branch reads only the odd channels


def test_v2_stride2_concatenates_both_branches():
    unit = ShuffleNetV2Unit(8, 24, 12, stride=2).eval()
    x = torch.randn(1, 8, 6, 6)
    out = unit(x)
    assert out.shape == (1, 24, 3, 3)
    assert torch.equal(out[:, :8], unit.left(x)) and torch.equal(out[:, 8:], unit.branch(x))
    assert (out >= 0).all()  # both branches end in ReLU


@pytest.mark.parametrize("stride, in_channels, out_channels", [(1, 48, 48), (2, 48, 96), (2, 24, 116)])
def test_v2_deploy_form_matches(stride, in_channels, out_channels):
    unit = ShuffleNetV2Unit(in_channels, out_channels, out_channels // 2, stride=stride)
    deployed = _deploy_matches(unit, torch.randn(2, in_channels, 9, 9))
    convs = [m for m in deployed.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == (3 if stride == 1 else 5) and all(c.bias is not None for c in convs)


def test_v2_validation_messages():
    odd = r"ShuffleNetV2UnitSpec.out_channels must be even \(the unit concatenates two halves\), got 115"
    with pytest.raises(ValueError, match=odd):
        ShuffleNetV2UnitSpec(out_channels=115)
    with pytest.raises(ValueError, match=r"ShuffleNetV2UnitSpec.kernel_size must be 3, 5 or 7, got 4"):
        ShuffleNetV2UnitSpec(out_channels=116, kernel_size=4)
    with pytest.raises(ValueError, match=r"in_channels must be even, got 15"):
        _build(ShuffleNetV2UnitSpec(out_channels=16), 15)
    with pytest.raises(ValueError, match=r"out_channels must exceed the 116 channels .*the left branch.*got 116 -> 116"):
        _build(ShuffleNetV2UnitSpec(out_channels=116, stride=2), 116)


# ---- specs, head and the published tables ----------------------------------------------------
@pytest.mark.parametrize(
    "spec",
    [
        ShuffleNetV1UnitSpec(out_channels=240, stride=2, groups=3, group_first_pointwise=False),
        ShuffleNetV2UnitSpec(out_channels=116, stride=2),
        ClassifierHeadSpec(bias=False, dropout=0.2),
    ],
)
def test_specs_round_trip_json(spec):
    assert Spec.from_json(spec.to_json()) == spec


def test_head_without_bias():
    stages = (StageSpec(blocks=(ConvNormActSpec(out_channels=8),)),)
    spec = NetworkSpec(name="probe", stem=(ConvNormActSpec(out_channels=8),), stages=stages, head=ClassifierHeadSpec(bias=False))
    head = spec.head.build(resolve(spec).head)
    assert head.classifier.bias is None and head.classifier.weight.shape == (1000, 8)
    assert ClassifierHeadSpec().build(resolve(spec).head).classifier.bias is not None


@pytest.mark.parametrize(
    "name, stem, widths",
    [
        ("shufflenet_v1_g3_x0_5", 12, (120, 240, 480)),
        ("shufflenet_v1_g8_x1_0", 24, (384, 768, 1536)),
        ("shufflenet_v2_x2_0", 24, (244, 488, 976, 2048)),
    ],
)
def test_resolved_widths_equal_the_release(name, stem, widths):
    resolved = resolve(get_spec(name))
    assert resolved.section("stem")[0].out_channels == stem
    assert tuple(resolved.stage(i)[-1].out_channels for i in range(resolved.num_stages)) == widths
    first = resolved.stage(0)[0]
    if isinstance(first.spec, ShuffleNetV1UnitSpec):
        assert not first.spec.group_first_pointwise and all(b.spec.group_first_pointwise for b in resolved.blocks[3:-1])
        assert [len(resolved.stage(i)) for i in range(3)] == [4, 8, 4]
