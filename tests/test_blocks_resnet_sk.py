"""Block-level tests: ResNet basic / bottleneck blocks (with SENet's SE and Caffe stride options) and the
Selective Kernel unit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from edgevision import reparameterize
from edgevision.blocks import (
    ChannelScale,
    ResNetBasicBlock,
    ResNetBasicSpec,
    ResNetBottleneck,
    ResNetBottleneckSpec,
    SelectiveKernelConv,
    SelectiveKernelSpec,
)
import edgevision as ev
from edgevision.layers import ConvNormAct, SqueezeExcite
from edgevision.models.resnet import CAFFE_STEM_POOL, resnet_block
from edgevision.spec import Spec
from helpers import build_block, max_relative_error, randomize_batchnorm


def build(spec, in_channels: int, size: int = 16, scale: ChannelScale = ChannelScale(1.0, 1)) -> nn.Module:
    return build_block(spec, in_channels, size, scale)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def assert_deploy_equivalent(block: nn.Module, x: torch.Tensor) -> nn.Module:
    randomize_batchnorm(block)
    block.eval()
    with torch.no_grad():
        reference = block(x)
        deployed = reparameterize(block)
        assert not has_batchnorm(deployed)
        assert max_relative_error(reference, deployed(x)) <= 1e-4
    return deployed


SK_UNIT = SelectiveKernelSpec(out_channels=256, mid_channels=128)  # SKNet-50 conv2_x unit (Table 1)


# ---- ResNet blocks ---------------------------------------------------------------------------
@pytest.mark.parametrize("in_channels,out_channels,stride,size", [(64, 64, 1, 16), (64, 128, 2, 15), (32, 64, 1, 9)])
def test_basic_block_shapes_and_shortcut(in_channels, out_channels, stride, size):
    block = build(ResNetBasicSpec(out_channels=out_channels, stride=stride), in_channels, size)
    assert isinstance(block, ResNetBasicBlock)
    out = block(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, out_channels, math.ceil(size / stride), math.ceil(size / stride))
    projects = stride != 1 or in_channels != out_channels
    assert isinstance(block.shortcut, ConvNormAct) == projects
    if projects:  # option B: 1x1 conv with the block's stride, then BN, no activation
        assert block.shortcut.conv.kernel_size == (1, 1) and block.shortcut.conv.stride == (stride, stride)
        assert isinstance(block.shortcut.norm, nn.BatchNorm2d) and isinstance(block.shortcut.act, nn.Identity)


def test_bottleneck_structure_v1_5():
    block = build(ResNetBottleneckSpec(out_channels=512, mid_channels=128, stride=2), 256, 15)
    assert isinstance(block, ResNetBottleneck)
    # stride on the 3x3 conv (torchvision "ResNet v1.5"), none on the 1x1 reduce
    assert block.conv1.conv.stride == (1, 1) and block.conv1.conv.kernel_size == (1, 1)
    assert block.conv2.conv.stride == (2, 2) and block.conv2.conv.kernel_size == (3, 3)
    assert block.conv3.conv.out_channels == 512 and isinstance(block.conv3.act, nn.Identity)
    assert block.last_norm is block.conv3.norm and isinstance(block.last_norm, nn.BatchNorm2d)
    assert block(torch.randn(2, 256, 15, 15)).shape == (2, 512, 8, 8)


def test_bottleneck_params_match_torchvision_formula():
    # torchvision Bottleneck(256, planes=128, stride=2, downsample) in resnet50's conv3_1:
    # conv1 256*128 + bn 2*128, conv2 128*128*9 + bn 2*128, conv3 128*512 + bn 2*512, downsample 256*512 + bn 2*512
    expected = 256 * 128 + 2 * 128 + 128 * 128 * 9 + 2 * 128 + 128 * 512 + 2 * 512 + 256 * 512 + 2 * 512
    assert params(build(ResNetBottleneckSpec(out_channels=512, mid_channels=128, stride=2), 256)) == expected


def test_grouped_bottleneck_resnext():
    block = build(ResNetBottleneckSpec(out_channels=256, mid_channels=128, groups=32), 64)
    assert block.conv2.conv.groups == 32 and block.conv2.conv.weight.shape == (128, 4, 3, 3)
    assert block(torch.randn(2, 64, 8, 8)).shape == (2, 256, 8, 8)


@pytest.mark.parametrize(
    "spec",
    [
        ResNetBasicSpec(out_channels=32),
        ResNetBottleneckSpec(out_channels=32, mid_channels=8),
        ResNetBottleneckSpec(out_channels=32, mid_channels=8, se_reduction=4),
        SelectiveKernelSpec(out_channels=32, mid_channels=32),
    ],
)
def test_residual_identity_when_last_norm_is_zero(spec):
    block = build(spec, spec.out_channels).eval()
    with torch.no_grad():
        block.last_norm.weight.zero_()
        block.last_norm.bias.zero_()
        x = torch.randn(2, spec.out_channels, 8, 8)
        torch.testing.assert_close(block(x), torch.relu(x))  # relu(0 + identity)


@pytest.mark.parametrize(
    "spec,in_channels,stride",
    [
        (ResNetBasicSpec(out_channels=32, stride=2), 16, 2),
        (ResNetBottleneckSpec(out_channels=64, mid_channels=16, stride=2), 32, 2),
        (ResNetBottleneckSpec(out_channels=64, mid_channels=32, groups=8), 64, 1),
        (ResNetBottleneckSpec(out_channels=64, mid_channels=16, stride=2, stride_on="reduce", se_reduction=16), 32, 2),
    ],
)
def test_resnet_blocks_deploy_equivalence(spec, in_channels, stride):
    block = build(spec, in_channels)
    deployed = assert_deploy_equivalent(block, torch.randn(2, in_channels, 17, 17))
    bn_channels = sum(m.num_features for m in block.modules() if isinstance(m, nn.BatchNorm2d))
    assert params(deployed) == params(block) - bn_channels  # each BN (2C) becomes a conv bias (C)


def test_resnet_spec_validation_messages():
    with pytest.raises(ValueError, match=r"ResNetBasicSpec.stride must be 1 or 2, got 3"):
        ResNetBasicSpec(out_channels=64, stride=3)
    with pytest.raises(ValueError, match=r"ResNetBottleneckSpec.mid_channels must be divisible by groups=32, got 100"):
        ResNetBottleneckSpec(out_channels=256, mid_channels=100, groups=32)
    with pytest.raises(ValueError, match=r"ResNetBottleneckSpec.mid_channels must be a positive number, got 0"):
        ResNetBottleneckSpec(out_channels=256, mid_channels=0)
    with pytest.raises(ValueError, match=r"ResNetBasicSpec.activation must be one of"):
        ResNetBasicSpec(out_channels=64, activation="swish")
    spec = ResNetBottleneckSpec(out_channels=256, mid_channels=128, groups=32)
    with pytest.raises(ValueError, match=r"groups=32 must divide the resolved mid_channels \(80\)"):
        spec.check_widths(64, spec.widths(64, ChannelScale(0.625, 1)))


def test_resnet_block_helper_widths():
    # torchvision: width = int(planes * width_per_group / 64) * groups
    assert resnet_block("bottleneck", 64, 1) == ResNetBottleneckSpec(out_channels=256, mid_channels=64)
    assert resnet_block("bottleneck", 64, 1, groups=32, width_per_group=4).mid_channels == 128  # ResNeXt 32x4d
    assert resnet_block("bottleneck", 512, 2, width_per_group=128).mid_channels == 1024  # Wide ResNet-50-2
    sk = resnet_block("selective_kernel", 128, 2, groups=32, width_per_group=4)
    assert (sk.out_channels, sk.mid_channels, sk.stride, sk.groups) == (512, 256, 2, 32)
    with pytest.raises(ValueError, match="basic ResNet blocks have groups=1"):
        resnet_block("basic", 64, 1, groups=32)
    with pytest.raises(ValueError, match="resnet block kind must be one of"):
        resnet_block("dense", 64, 1)


@pytest.mark.parametrize(
    "spec",
    [
        ResNetBasicSpec(out_channels=64, stride=2),
        ResNetBottleneckSpec(out_channels=256, mid_channels=128, groups=32),
        ResNetBottleneckSpec(out_channels=256, mid_channels=64, stride=2, stride_on="reduce", se_reduction=16),
        SK_UNIT,
    ],
)
def test_specs_json_round_trip(spec):
    assert Spec.from_json(spec.to_json()) == spec


# ---- SENet options of the bottleneck -----------------------------------------------------------
def test_se_bottleneck_params_match_caffe_release():
    # SE-ResNet-50 conv3_1 (SE-ResNet-50.prototxt): the plain bottleneck plus fc 512 -> 32 (bias) and 32 -> 512 (bias)
    plain = build(ResNetBottleneckSpec(out_channels=512, mid_channels=128, stride=2), 256)
    se_spec = ResNetBottleneckSpec(out_channels=512, mid_channels=128, stride=2, se_reduction=16)
    assert se_spec.widths(256, ChannelScale(1.0, 1)).se_channels == 32
    block = build(se_spec, 256)
    assert isinstance(block.se, SqueezeExcite) and block.se.reduce.out_channels == 32
    assert params(block) - params(plain) == (512 * 32 + 32) + (32 * 512 + 512)


def test_se_gates_the_residual_branch_before_the_addition():
    block = build(ResNetBottleneckSpec(out_channels=32, mid_channels=8, se_reduction=4), 32).eval()
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        block.se.expand.bias.fill_(-1e4)  # sigmoid -> 0: the branch is switched off, the shortcut is not
        torch.testing.assert_close(block(x), torch.relu(x))
        block.se.expand.weight.zero_()
        block.se.expand.bias.fill_(1e4)  # sigmoid -> 1: the plain bottleneck
        residual = block.conv3(block.conv2(block.conv1(x)))
        torch.testing.assert_close(block(x), torch.relu(residual + x))


def test_stride_on_reduce_moves_the_downsampling_to_the_first_1x1():
    caffe = build(ResNetBottleneckSpec(out_channels=512, mid_channels=128, stride=2, stride_on="reduce"), 256, 16)
    assert caffe.conv1.conv.stride == (2, 2) and caffe.conv2.conv.stride == (1, 1)
    torchvision = build(ResNetBottleneckSpec(out_channels=512, mid_channels=128, stride=2), 256, 16)
    x = torch.randn(1, 256, 16, 16)
    assert caffe(x).shape == torchvision(x).shape == (1, 512, 8, 8)
    assert params(caffe) == params(torchvision)  # same weights, the 3x3 runs on a 4x smaller map
    assert ev.count_macs(caffe, 16, in_channels=256) < ev.count_macs(torchvision, 16, in_channels=256)


def test_seresnet50_and_sknet50_follow_their_caffe_releases():
    se = ev.get_spec("seresnet50")
    assert se.stem[1] == CAFFE_STEM_POOL
    first = [stage.blocks[0] for stage in se.stages]
    assert [(b.stride, b.stride_on, b.se_reduction) for b in first] == [(1, "reduce", 16)] + [(2, "reduce", 16)] * 3
    sk = ev.get_spec("skresnext50_32x4d")
    assert sk.stem[1] == CAFFE_STEM_POOL and all(isinstance(s.blocks[0], SelectiveKernelSpec) for s in sk.stages)
    assert [s.depth for s in sk.stages] == [3, 4, 6, 3]
    assert [b.output_size for b in ev.resolve(sk).blocks[:2]] == [(112, 112), (56, 56)]


def test_bottleneck_option_errors():
    with pytest.raises(ValueError, match=r"ResNetBottleneckSpec.stride_on must be 'spatial' or 'reduce', got 'middle'"):
        ResNetBottleneckSpec(out_channels=256, mid_channels=64, stride_on="middle")
    with pytest.raises(ValueError, match=r"ResNetBottleneckSpec.se_reduction must be a positive number, got 0"):
        ResNetBottleneckSpec(out_channels=256, mid_channels=64, se_reduction=0)
    with pytest.raises(ValueError, match=r"ResNetBottleneckSpec.se_reduction must be a divisor of out_channels=256, got 24"):
        ResNetBottleneckSpec(out_channels=256, mid_channels=64, se_reduction=24)
    with pytest.raises(ValueError, match="stride_on='reduce' needs the default 3x3 conv"):
        ResNetBottleneck(64, 256, 64, 2, stride_on="reduce", spatial_conv=nn.Identity())


# ---- Selective Kernel ------------------------------------------------------------------------
def sk_unit_params(c_in: int, c_out: int, mid: int, groups: int, branches: int, d: int, project: bool) -> int:
    """Parameters of one SKNet-50 unit, layer by layer as in the authors' sknet50.prototxt / timm's
    SelectiveKernelBottleneck (split_input=False); every conv is bias-free, every BN has 2C params."""
    conv1 = c_in * mid + 2 * mid  # 1x1 reduce + BN
    branch = mid * (mid // groups) * 3 * 3 + 2 * mid  # 3x3 grouped conv (dilation 1 or 2) + BN
    fc_reduce = mid * d + 2 * d  # fc1 (1x1 conv) + BN
    fc_select = d * branches * mid  # fc2 (1x1 conv) to M x C
    conv3 = mid * c_out + 2 * c_out  # 1x1 expand + BN
    shortcut = c_in * c_out + 2 * c_out if project else 0  # 1x1 projection + BN
    return conv1 + branches * branch + fc_reduce + fc_select + conv3 + shortcut


@pytest.mark.parametrize(
    "spec,c_in,d,project",
    [
        (SK_UNIT, 256, 32, False),  # conv2_2: identity shortcut
        (SelectiveKernelSpec(out_channels=256, mid_channels=128), 64, 32, True),  # conv2_1: projection
        (SelectiveKernelSpec(out_channels=2048, mid_channels=1024, stride=2), 1024, 64, True),  # conv5_1: d = 1024/16
    ],
)
def test_sk_unit_params_match_official_structure(spec, c_in, d, project):
    unit = build(spec, c_in)
    assert isinstance(unit, ResNetBottleneck) and isinstance(unit.conv2, SelectiveKernelConv)
    assert unit.last_norm is unit.conv3.norm
    assert unit.conv2.attention.reduce.conv.out_channels == d
    assert params(unit) == sk_unit_params(c_in, spec.out_channels, spec.mid_channels, 32, 2, d, project)


def test_sk_attention_width_rule():
    # d = max(C / r, L) with r = 16, L = 32 (Sec. 3.1); SKNet-50 widths 128, 256, 512, 1024
    assert [SK_UNIT.attention_channels(c) for c in (128, 256, 512, 1024)] == [32, 32, 32, 64]
    assert SK_UNIT.widths(256, ChannelScale(1.0, 1)).se_channels == 32


def test_sk_branches_3x3_and_dilated_3x3():
    unit = build(SK_UNIT, 256)
    (small, large) = unit.conv2.branches
    for branch, dilation in ((small, 1), (large, 2)):
        conv = branch.conv
        assert conv.kernel_size == (3, 3) and conv.dilation == (dilation, dilation)
        assert conv.padding == (dilation, dilation) and conv.groups == 32  # padding = dilation keeps 'same' size
        assert isinstance(branch.act, nn.ReLU)
    plain = build(SelectiveKernelSpec(out_channels=256, mid_channels=128, dilated_kernels=False), 256)
    assert plain.conv2.branches[1].conv.kernel_size == (5, 5) and plain.conv2.branches[1].conv.padding == (2, 2)


@pytest.mark.parametrize("size", [7, 8, 15, 16])
@pytest.mark.parametrize("stride", [1, 2])
def test_sk_output_size_is_ceil(size, stride):
    spec = SelectiveKernelSpec(out_channels=128, mid_channels=64, stride=stride, kernel_sizes=(3, 5, 7))
    unit = build(spec, 64, size)
    out = unit(torch.randn(2, 64, size, size))
    assert out.shape[-2:] == spec.output_size((size, size)) == (math.ceil(size / stride),) * 2


def test_sk_attention_is_a_softmax_over_branches():
    unit = build(SelectiveKernelSpec(out_channels=64, mid_channels=64, kernel_sizes=(3, 5, 7)), 64).eval()
    x = torch.randn(2, 64, 9, 9)
    with torch.no_grad():
        sk = unit.conv2
        branches = torch.stack([b(x) for b in sk.branches], dim=1)
        weights = sk.attention(branches)
        assert weights.shape == (2, 3, 64, 1, 1)
        torch.testing.assert_close(weights.sum(1), torch.ones(2, 64, 1, 1))
        torch.testing.assert_close(sk(x), (branches * weights).sum(1))


def test_sk_unit_deploy_folds_every_norm():
    spec = SelectiveKernelSpec(out_channels=128, mid_channels=64, stride=2)
    unit = build(spec, 64)
    deployed = assert_deploy_equivalent(unit, torch.randn(2, 64, 17, 17))
    # the attention fc + BN became one biased 1x1 conv; the branches stay (input-dependent selection)
    reduce = deployed.conv2.attention.reduce
    assert isinstance(reduce.norm, nn.Identity) and reduce.conv.bias is not None
    assert len(deployed.conv2.branches) == 2 and all(b.conv.bias is not None for b in deployed.conv2.branches)
    bn_channels = sum(m.num_features for m in unit.modules() if isinstance(m, nn.BatchNorm2d))
    assert params(deployed) == params(unit) - bn_channels


def test_sk_train_mode_backward():
    unit = build(SelectiveKernelSpec(out_channels=64, mid_channels=32, stride=2), 32).train()
    unit(torch.randn(2, 32, 8, 8)).sum().backward()
    assert all(p.grad is not None for p in unit.parameters())


def test_sk_spec_validation_messages():
    with pytest.raises(ValueError, match=r"SelectiveKernelSpec.kernel_sizes must be at least two odd kernel sizes >= 3"):
        SelectiveKernelSpec(out_channels=256, mid_channels=128, kernel_sizes=(3,))
    with pytest.raises(ValueError, match=r"SelectiveKernelSpec.kernel_sizes must be at least two odd"):
        SelectiveKernelSpec(out_channels=256, mid_channels=128, kernel_sizes=(3, 4))
    with pytest.raises(ValueError, match=r"SelectiveKernelSpec.mid_channels must be divisible by groups=32, got 48"):
        SelectiveKernelSpec(out_channels=256, mid_channels=48)
    with pytest.raises(ValueError, match=r"SelectiveKernelSpec.attention_reduction must be a positive number, got 0"):
        SelectiveKernelSpec(out_channels=256, mid_channels=128, attention_reduction=0)
    with pytest.raises(ValueError, match=r"SelectiveKernelSpec.stride must be 1 or 2, got 4"):
        SelectiveKernelSpec(out_channels=256, mid_channels=128, stride=4)
    with pytest.raises(ValueError, match=r"groups=32 must divide the resolved mid_channels \(80\)"):
        SK_UNIT.check_widths(256, SK_UNIT.widths(256, ChannelScale(0.625, 1)))
