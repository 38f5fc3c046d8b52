"""Searched networks (FBNet, ProxylessNAS, MnasNet): the inverted-residual options they need, and their tables.

Block level: FBNet's grouped 1x1 convs with channel shuffle, conv biases before BatchNorm (FBNet's
release), MnasNet's squeeze-excite width from the block input; defaults unchanged for earlier models.
Network level: skip/zero ops leave no block, the released layer counts, MnasNet-A1's SE widths.
"""

from __future__ import annotations

import pytest
import torch
from helpers import max_relative_error, meta_model, randomize_batchnorm
from torch import nn

import edgevision as ev
from edgevision.blocks import ChannelScale, ClassifierHeadSpec, ConvNormActSpec, InvertedResidualSpec
from edgevision.layers import ChannelShuffle, channel_shuffle
from edgevision.spec import Spec

torch.manual_seed(0)


def _build(spec: InvertedResidualSpec, in_channels: int, size: int = 8) -> nn.Module:
    net = ev.NetworkSpec(
        name="probe",
        stem=(ConvNormActSpec(out_channels=in_channels, kernel_size=1),),
        stages=(ev.StageSpec(blocks=(spec,)),),
        head=ClassifierHeadSpec(num_classes=3),
    )
    resolved = ev.resolve(net, input_size=size)
    return resolved.blocks[1].spec.build(resolved.blocks[1])


# ---- defaults: earlier models build exactly as before ------------------------------------------
def test_defaults_add_no_shuffle_no_conv_bias_and_expanded_se_width():
    block = _build(InvertedResidualSpec(out_channels=24, expansion_ratio=3, se_ratio=0.25), in_channels=24)
    assert isinstance(block.shuffle, nn.Identity)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m not in block.se.modules()]
    assert len(convs) == 3 and all(c.bias is None and c.groups in (1, 72) for c in convs)
    assert block.se.reduce.out_channels == 24  # make_divisible(72 * 0.25, 8) = 24 (MobileNetV3 rule)


# ---- FBNet "g2": grouped 1x1 convs + channel shuffle --------------------------------------------
def test_grouped_block_shuffles_between_grouped_pointwise_convs():
    block = _build(InvertedResidualSpec(out_channels=16, expansion_ratio=3, pointwise_groups=2, activation="relu"), 16).eval()
    randomize_batchnorm(block, seed=2)
    assert block.expand.conv.groups == 2 and block.project.conv.groups == 2
    assert isinstance(block.shuffle, ChannelShuffle) and block.shuffle.groups == 2
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        manual = block.project(block.depthwise(channel_shuffle(block.expand(x), 2))) + x
        unshuffled = block.project(block.depthwise(block.expand(x))) + x
        out = block(x)
    torch.testing.assert_close(out, manual)
    assert not torch.allclose(out, unshuffled, atol=1e-3)  # the shuffle really moves channels across groups


def test_grouped_block_without_expansion_still_shuffles_like_the_release():
    """mobile-vision's IRFBlock shuffles with pw_groups even when e = 1 leaves no expand conv (FBNet-A's g2 blocks)."""
    block = _build(InvertedResidualSpec(out_channels=64, kernel_size=5, expansion_ratio=1, pointwise_groups=2), 64).eval()
    assert isinstance(block.expand, nn.Identity) and isinstance(block.shuffle, ChannelShuffle)
    x = torch.randn(1, 64, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), block.project(block.depthwise(channel_shuffle(x, 2))) + x)


def test_grouped_pointwise_convs_halve_their_weights():
    plain = _build(InvertedResidualSpec(out_channels=32, expansion_ratio=6), 32)
    grouped = _build(InvertedResidualSpec(out_channels=32, expansion_ratio=6, pointwise_groups=2), 32)
    pointwise = 32 * 192 * 2  # expand + project weights of the plain block
    assert ev.count_params(plain) - ev.count_params(grouped) == pointwise // 2


def test_groups_that_do_not_divide_the_resolved_widths_fail_at_resolve():
    with pytest.raises(ValueError, match=r"InvertedResidualSpec.pointwise_groups=3 must divide the resolved .* \(16 -> 48 -> 32\)"):
        _build(InvertedResidualSpec(out_channels=32, expansion_ratio=3, pointwise_groups=3), 16)


# ---- conv bias before BatchNorm (FBNet's release) ----------------------------------------------
def test_conv_bias_adds_one_bias_per_conv_channel_and_folds_exactly():
    spec = InvertedResidualSpec(out_channels=24, kernel_size=5, expansion_ratio=3, activation="relu", conv_bias=True)
    block = _build(spec, 24)
    plain = _build(spec.replace(conv_bias=False), 24)
    assert all(m.bias is not None for m in block.modules() if isinstance(m, nn.Conv2d))
    assert ev.count_params(block) - ev.count_params(plain) == 72 + 72 + 24
    for conv in (m for m in block.modules() if isinstance(m, nn.Conv2d)):
        nn.init.normal_(conv.bias)  # non-zero biases: the BatchNorm fold must carry them through
    block = randomize_batchnorm(block, seed=3).eval()
    deployed = ev.reparameterize(block)
    assert ev.is_deploy_form(deployed) and ev.count_params(deployed) == ev.count_params(plain) - 2 * (72 + 72 + 24) + (72 + 72 + 24)
    x = torch.randn(2, 24, 9, 9)
    with torch.no_grad():
        assert max_relative_error(block(x), deployed(x)) <= 1e-5


# ---- MnasNet squeeze-excite width --------------------------------------------------------------
@pytest.mark.parametrize(
    "in_channels, expansion, expected",
    [(24, 3, 6), (40, 3, 10), (80, 6, 20), (112, 6, 28), (2, 1, 1)],  # max(1, int(C_in / 4))
)
def test_se_width_from_block_input_without_rounding(in_channels, expansion, expected):
    spec = InvertedResidualSpec(
        out_channels=in_channels, expansion_ratio=expansion, se_ratio=0.25, se_reduce_from="input", se_round_to_divisor=False
    )
    widths = spec.widths(in_channels, ChannelScale())
    assert widths.mid_channels == in_channels * expansion and widths.se_channels == expected


def test_se_width_from_block_input_reaches_the_module():
    spec = InvertedResidualSpec(
        out_channels=40, kernel_size=5, expansion_ratio=3, se_ratio=0.25, se_reduce_from="input", se_round_to_divisor=False, se_gate="sigmoid"
    )
    block = _build(spec, 24)
    assert (block.se.reduce.in_channels, block.se.reduce.out_channels) == (72, 6)
    assert isinstance(block.se.gate, nn.Sigmoid)


# ---- spec validation and JSON ------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"pointwise_groups": 0}, "InvertedResidualSpec.pointwise_groups must be a positive number, got 0"),
        ({"se_reduce_from": "output"}, "InvertedResidualSpec.se_reduce_from must be 'expanded' or 'input', got 'output'"),
        ({"conv_bias": 1}, "InvertedResidualSpec.conv_bias must be of type bool, got 1"),
    ],
)
def test_new_fields_are_validated_with_field_named_errors(changes, message):
    with pytest.raises(ValueError) as error:
        InvertedResidualSpec(out_channels=16, **changes)
    assert message in str(error.value)


def test_spec_with_new_fields_round_trips_through_json():
    spec = InvertedResidualSpec(
        out_channels=112, kernel_size=5, expansion_ratio=1, pointwise_groups=2, conv_bias=True,
        se_ratio=0.25, se_reduce_from="input", se_round_to_divisor=False,
    )
    assert Spec.from_json(spec.to_json()) == spec


# ---- the searched networks' tables -------------------------------------------------------------
def _searched_blocks(name: str) -> list:
    return [b for b in ev.resolve(ev.get_spec(name)) if isinstance(b.spec, InvertedResidualSpec)]


@pytest.mark.parametrize(
    "name, layers, skips",
    [
        ("fbnet_a", 22, 3),  # Fig. 4: 22 searched layers; A skips one 16-wide and two 24-wide layers
        ("fbnet_b", 22, 1),
        ("fbnetc_100", 22, 1),
        ("proxylessnas_mobile", 22, 2),  # fixed first block + 21 searched layers; zero ops per released config
        ("proxylessnas_cpu", 22, 2),
        ("proxylessnas_gpu", 22, 8),
    ],
)
def test_skip_and_zero_ops_leave_no_block(name, layers, skips):
    assert len(_searched_blocks(name)) == layers - skips


def test_fbnet_a_groups_exactly_its_three_g2_blocks():
    grouped = [(b.out_channels, b.spec.kernel_size) for b in _searched_blocks("fbnet_a") if b.spec.pointwise_groups == 2]
    assert grouped == [(64, 5), (112, 5), (112, 3)]
    assert all(b.spec.conv_bias for b in _searched_blocks("fbnet_a"))


def test_fbnet_stem_and_last_conv_carry_the_release_conv_bias():
    """The release has a conv bias before every BatchNorm, stem and last 1x1 conv included."""
    model = meta_model("fbnet_a")
    assert model.stem[0].conv.bias is not None and model.stages[-1][-1].conv.bias is not None


def test_mnasnet_a1_squeeze_excite_widths_follow_the_tf_code():
    widths = [(b.in_channels, b.se_channels) for b in _searched_blocks("mnasnet_a1") if b.se_channels]
    assert widths == [(24, 6), (40, 10), (40, 10), (80, 20), (112, 28), (112, 28), (160, 40), (160, 40)]
    assert not any(b.se_channels for b in _searched_blocks("mnasnet_100"))  # torchvision's B1 has no SE


def test_proxylessnas_expands_by_the_released_ratios():
    mids = [(b.in_channels, b.mid_channels) for b in _searched_blocks("proxylessnas_gpu")]
    assert mids[:4] == [(40, 40), (24, 72), (32, 96), (56, 168)]
    assert mids[-1] == (256, 1536)


@pytest.mark.parametrize("name", ["proxylessnas_gpu", "proxylessnas_mobile"])
def test_proxylessnas_batchnorm_eps_is_the_released_configs(name):
    """The net configs' ``"bn": {"eps": 0.001}``: in the spec (JSON round trip) and in every built BatchNorm."""
    spec = ev.get_spec(name)
    assert spec.norm_eps == 1e-3 and Spec.from_json(spec.to_json()).norm_eps == 1e-3
    assert {m.eps for m in meta_model(name).modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}
