"""Block-level tests: Next-ViT (NCB, NTB, E-MHSA), HorNet (gⁿConv), G-Ghost stage and the RegNet X block."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import build_block, max_relative_error, randomize_batchnorm
from torch import nn

import edgevision as ev
from edgevision.blocks import (
    ChannelScale,
    GGhostStage,
    GGhostStageSpec,
    HorNetBlockSpec,
    NextConvBlockSpec,
    NextTransformerBlockSpec,
    RecursiveGatedConv,
    RegNetXBlockSpec,
    fold_preceding_affine,
)
from edgevision.blocks.hornet import gnconv_widths


def build(spec, in_channels: int, size: int = 8) -> nn.Module:
    return build_block(spec, in_channels, size)


def assert_deploy_equivalent(block: nn.Module, x: torch.Tensor) -> nn.Module:
    randomize_batchnorm(block, seed=3).eval()
    with torch.no_grad():
        reference = block(x)
        deployed = ev.reparameterize(block)
        fused = deployed(x)
    assert ev.is_deploy_form(deployed)
    assert max_relative_error(reference, fused) <= 1e-5
    return deployed


# ---- Next-ViT ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("out_channels, attention", [(256, 192), (512, 384), (1024, 768), (128, 96)])
def test_ntb_splits_channels_between_attention_and_convolution(out_channels, attention):
    spec = NextTransformerBlockSpec(out_channels=out_channels)
    assert spec.widths(64, ChannelScale(1.0, 1)).mid_channels == attention  # make_divisible(int(0.75 C), 32)


def test_ntb_needs_channels_left_for_the_convolution_path():
    # make_divisible(int(0.75 * 96), 32) = 96 (64 would drop more than 10%): nothing left for MHCA
    with pytest.raises(ValueError, match=r"resolved convolution width \(out_channels - attention width\) \(0\)"):
        build(NextTransformerBlockSpec(out_channels=96), 64)


def test_e_mhsa_keys_come_from_pooled_tokens():
    torch.manual_seed(0)
    block = build(NextTransformerBlockSpec(out_channels=128, stride=2, sr_ratio=2, head_dim=32), 64, size=12)
    attention = block.e_mhsa
    assert attention.num_heads == 96 // 32  # C_s = make_divisible(int(0.75 * 128), 32) = 96
    seen = {}
    attention.k.register_forward_hook(lambda m, i, o: seen.__setitem__("k", i[0].shape))
    attention.q.register_forward_hook(lambda m, i, o: seen.__setitem__("q", i[0].shape))
    out = block.eval()(torch.randn(2, 64, 12, 12))
    assert out.shape == (2, 128, 6, 6)
    assert seen["q"] == (2, 36, 96)  # every token queries
    assert seen["k"] == (2, 36 // 4, 96)  # keys/values from sr^2 = 4 consecutive tokens each


@pytest.mark.parametrize("stride, sr_ratio, size", [(2, 2, 9), (1, 3, 7), (1, 1, 4)])
def test_ntb_deploy_form_folds_every_batchnorm(stride, sr_ratio, size):
    """Odd sizes: ceil-mode patch pooling, and a token count the spatial reduction does not divide."""
    torch.manual_seed(0)
    block = build(NextTransformerBlockSpec(out_channels=128, stride=stride, sr_ratio=sr_ratio), 64, size=size)
    deployed = assert_deploy_equivalent(block, torch.randn(2, 64, size, size))
    assert deployed.e_mhsa.k.bias is not None and isinstance(deployed.e_mhsa.pool_norm, nn.Identity)


@pytest.mark.parametrize("in_channels, stride", [(64, 2), (96, 1), (64, 1)])
def test_ncb_deploy_form_and_shapes(in_channels, stride):
    torch.manual_seed(0)
    block = build(NextConvBlockSpec(out_channels=96, stride=stride), in_channels, size=9)
    assert block.mlp.fc1.out_channels == 288  # make_divisible(3 * 96, 32)
    assert block.mhca.group_conv.conv.groups == 96 // 32
    x = torch.randn(2, in_channels, 9, 9)
    assert block.eval()(x).shape == (2, 96, 5 if stride == 2 else 9, 5 if stride == 2 else 9)
    assert_deploy_equivalent(block, x)


def test_fold_preceding_affine_refuses_a_padded_conv():
    with pytest.raises(ValueError, match="1x1 conv without groups"):
        fold_preceding_affine(nn.Conv2d(4, 4, 3, padding=1), torch.ones(4), torch.zeros(4))


def test_nextvit_spec_errors_name_the_field():
    with pytest.raises(ValueError, match=r"NextTransformerBlockSpec.mix_ratio must be in \(0, 1\)"):
        NextTransformerBlockSpec(out_channels=256, mix_ratio=1.0)
    with pytest.raises(ValueError, match="sr_ratio=4 pools 16 tokens"):
        NextTransformerBlockSpec(out_channels=256, sr_ratio=4, stride=2).output_size((4, 4))
    with pytest.raises(ValueError, match="head_dim=32 must divide the resolved out_channels"):
        build(NextConvBlockSpec(out_channels=48), 48)


def test_nextvit_hybrid_strategy_layout():
    spec = ev.get_spec("nextvit_base")
    letter = {NextConvBlockSpec: "C", NextTransformerBlockSpec: "T"}
    kinds = [[letter[type(b)] for b in stage.blocks] for stage in spec.stages]
    assert kinds[0] == ["C"] * 3 and kinds[1] == ["C"] * 3 + ["T"] and kinds[3] == ["C"] * 2 + ["T"]
    assert kinds[2] == (["C"] * 4 + ["T"]) * 4
    assert [b.sr_ratio for stage in spec.stages for b in stage.blocks if isinstance(b, NextTransformerBlockSpec)] == [4] + [2] * 4 + [1]


# ---- HorNet ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("order, widths", [(2, [32, 64]), (3, [16, 32, 64]), (5, [4, 8, 16, 32, 64])])
def test_gnconv_widths_double_at_each_order(order, widths):
    assert gnconv_widths(64, order) == widths
    module = RecursiveGatedConv(64, order)
    assert module.proj_in.out_channels == 128 == widths[0] + sum(widths)
    assert module.depthwise.groups == sum(widths)
    assert [(c.in_channels, c.out_channels) for c in module.pointwise] == list(zip(widths[:-1], widths[1:]))


def test_gnconv_computes_the_gated_recursion():
    """Eq. 3-4 written out by hand with the module's own weights."""
    torch.manual_seed(0)
    module = RecursiveGatedConv(16, order=3, kernel_size=7, scale=0.5).eval()
    x = torch.randn(2, 16, 6, 6)
    widths = [4, 8, 16]
    projected = F.conv2d(x, module.proj_in.weight, module.proj_in.bias)
    p, q = projected[:, :4], projected[:, 4:]
    gates = F.conv2d(q, module.depthwise.weight, module.depthwise.bias, padding=3, groups=28) * 0.5
    g0, g1, g2 = torch.split(gates, widths, dim=1)
    p = p * g0
    p = module.pointwise[0](p) * g1
    p = module.pointwise[1](p) * g2
    expected = module.proj_out(p)
    with torch.no_grad():
        assert torch.allclose(module(x), expected, atol=1e-6)


def test_hornet_stages_use_orders_2_to_5():
    spec = ev.get_spec("hornet_tiny_7x7")
    orders = [{b.order for b in stage.blocks if isinstance(b, HorNetBlockSpec)} for stage in spec.stages]
    depths = [sum(isinstance(b, HorNetBlockSpec) for b in stage.blocks) for stage in spec.stages]
    assert orders == [{2}, {3}, {4}, {5}] and depths == [2, 3, 18, 2]


def test_hornet_spec_errors_name_the_field():
    with pytest.raises(ValueError, match=r"HorNetBlockSpec.out_channels must be divisible by 2\^\(order - 1\) = 16"):
        HorNetBlockSpec(out_channels=40, order=5)
    with pytest.raises(ValueError, match="a HorNet block keeps its width"):
        build(HorNetBlockSpec(out_channels=64, order=2), 32)


# ---- G-Ghost stage and RegNet X block ----------------------------------------------------------------
@pytest.mark.parametrize("width, group_width, raw", [(432, 48, 216), (560, 40, 270), (720, 120, 360), (896, 128, 384)])
def test_g_ghost_deep_width_follows_the_release_rule(width, group_width, raw):
    spec = GGhostStageSpec.from_regnetx(width, depth=5, group_width=group_width)
    inner_group_width = int(0.75 * group_width)
    assert spec.deep[0].group_width == inner_group_width and spec.deep[0].out_channels == raw
    assert raw % inner_group_width == 0 and raw <= width // 2  # floor(C / 2 / g') g'
    assert spec.depth == 5 and spec.stride == 2 and spec.out_channels == width


def test_g_ghost_stage_runs_deep_blocks_on_raw_channels_and_mixes_every_feature():
    torch.manual_seed(0)
    spec = GGhostStageSpec.from_regnetx(64, depth=4, group_width=16)  # inner group width 12, C_raw = 24
    stage = build(spec, 32, size=8)
    assert isinstance(stage, GGhostStage) and stage.raw_channels == 24 and len(stage.deep) == 2
    assert stage.mix.reduce.conv.in_channels == 64 + 2 * 24  # x0 and both deep outputs are pooled
    assert stage.cheap.conv.in_channels == 64 - 24
    seen = []
    for block in stage.deep:
        block.register_forward_hook(lambda m, i, o: seen.append((i[0].shape[1], o.shape[1])))
    x = torch.randn(2, 32, 8, 8)
    assert stage.eval()(x).shape == (2, 64, 4, 4)
    assert seen == [(24, 24), (24, 24)]
    assert_deploy_equivalent(stage, x)


def test_g_ghost_cheap_path_depends_on_the_mix():
    """The cheap features see the deep path only through the mix: changing its weights changes the output."""
    torch.manual_seed(0)
    stage = build(GGhostStageSpec.from_regnetx(64, depth=3, group_width=16), 32, size=8).eval()
    x = torch.randn(2, 32, 8, 8)
    with torch.no_grad():
        before = stage(x)
        stage.mix.expand.conv.weight.zero_()
        stage.mix.expand.norm.bias.fill_(5.0)
        after = stage(x)
    assert not torch.allclose(before, after)


def test_g_ghost_spec_errors_name_the_field():
    block = RegNetXBlockSpec(out_channels=64, group_width=16, stride=2)
    inner = RegNetXBlockSpec(out_channels=24, group_width=12)
    with pytest.raises(ValueError, match=r"GGhostStageSpec.last must be as wide as the first block \(64 channels\)"):
        GGhostStageSpec(first=block, deep=(inner,), last=RegNetXBlockSpec(out_channels=32, group_width=16))
    with pytest.raises(ValueError, match="GGhostStageSpec.deep must be narrower than the stage"):
        GGhostStageSpec(first=block, deep=(RegNetXBlockSpec(out_channels=64, group_width=16),), last=block.replace(stride=1))
    with pytest.raises(ValueError, match="depth must be >= 3"):
        GGhostStageSpec.from_regnetx(64, depth=2, group_width=16)


def test_g_ghost_stage_json_round_trip_keeps_nested_specs():
    spec = GGhostStageSpec.from_regnetx(432, depth=15, group_width=48)
    again = GGhostStageSpec.from_json(spec.to_json())
    assert again == spec and isinstance(again.deep[0], RegNetXBlockSpec) and len(again.deep) == 13


@pytest.mark.parametrize("out_channels, group_width, groups", [(24, 48, 1), (96, 48, 2), (1008, 48, 21)])
def test_regnetx_groups_from_group_width(out_channels, group_width, groups):
    block = build(RegNetXBlockSpec(out_channels=out_channels, group_width=group_width), 16, size=4)
    assert block.conv2.conv.groups == groups
    assert block.conv2.conv.out_channels == out_channels  # bottleneck ratio 1


def test_regnetx_group_width_must_divide_the_width():
    with pytest.raises(ValueError, match="RegNetXBlockSpec.group_width must be a divisor of the resolved bottleneck width 40"):
        build(RegNetXBlockSpec(out_channels=40, group_width=16), 16)
