"""Block-level tests for EdgeNeXt, EfficientFormer and LeViT: attention-bias tables, the shrink
attention, the SDTA channel split and hierarchy, XCA, the Fourier positional encoding, the
BatchNorm folds of LeViT's Linear+BN layers and heads, distillation heads, and spec errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import edgevision as ev
from edgevision.blocks import (
    AttentionBias,
    CrossCovarianceAttention,
    EdgeNeXtSDTASpec,
    EfficientFormerMeta3DSpec,
    EfficientFormerMeta4DSpec,
    FourierPositionalEncoding,
    LevitBlockSpec,
    LevitHead,
    LevitSubsampleSpec,
    LinearNorm,
    NormLinear,
    SDTAEncoder,
    attention_bias_index,
    sdta_split_widths,
)
from edgevision.models.edgenext import edgenext
from helpers import build_block, max_relative_error, randomize_batchnorm


def build(spec, in_channels: int, size: int) -> nn.Module:
    return build_block(spec, in_channels, size)


# ---- attention bias (LeViT Sec. 4.3; EfficientFormer's Meta3D) -----------------------------
def test_attention_bias_index_counts_distinct_offsets():
    count, index = attention_bias_index((14, 14))
    assert count == 196 and index.shape == (196, 196)
    assert index[0, 0] == index[17, 17] == 0  # offset (0, 0) wherever query == key
    count, index = attention_bias_index((14, 14), stride=2)  # shrink attention: 7 x 7 queries
    assert count == 196 and index.shape == (49, 196)
    count, index = attention_bias_index((4, 6))  # non-square grids: 4 * 6 offsets
    assert count == 24 and index.shape == (24, 24)


def test_attention_bias_depends_only_on_offset_and_serves_smaller_grids():
    bias = AttentionBias(num_heads=2, key_size=(5, 5))
    with torch.no_grad():
        bias.attention_biases.copy_(torch.randn(2, 25))
    full = bias((5, 5))  # (heads, 25, 25)

    def value(table, size, q, k):
        (qy, qx), (ky, kx) = q, k
        return table[:, qy * size + qx, ky * size + kx]

    # symmetric offsets share one learned value: (0,0)->(1,2) and (3,4)->(2,2) are both (1, 2)
    assert torch.equal(value(full, 5, (0, 0), (1, 2)), value(full, 5, (3, 4), (2, 2)))
    small = bias((3, 3))  # a smaller grid reuses the same offsets' values
    assert small.shape == (2, 9, 9)
    assert torch.equal(value(small, 3, (0, 0), (1, 2)), value(full, 5, (0, 0), (1, 2)))
    assert torch.equal(value(small, 3, (2, 1), (0, 0)), value(full, 5, (2, 1), (0, 0)))
    with pytest.raises(ValueError, match="built for a 5x5 grid cannot serve 6x6"):
        bias((6, 6))


def test_levit_bias_tables_follow_the_resolved_resolution():
    with torch.device("meta"):
        model = ev.build(ev.resolve(ev.get_spec("levit_128s"), input_size=224))
    tables = {name: p.shape for name, p in model.named_parameters() if name.endswith("attention_biases")}
    assert tables["stages.0.0.attention.bias.attention_biases"] == (4, 196)  # 14 x 14 tokens, 4 heads
    assert tables["stages.1.0.attention.bias.attention_biases"] == (128 // 16, 196)  # shrink 14 -> 7, C/D heads
    assert tables["stages.1.1.attention.bias.attention_biases"] == (6, 49)
    assert tables["stages.2.1.attention.bias.attention_biases"] == (8, 16)  # 7 -> 4 (ceil)
    with torch.device("meta"):
        small = ev.build(ev.resolve(ev.get_spec("levit_128s"), input_size=128))
    assert dict(small.named_parameters())["stages.0.0.attention.bias.attention_biases"].shape == (4, 64)


def test_model_built_for_a_resolution_refuses_a_larger_input():
    model = ev.build(ev.resolve(ev.get_spec("levit_128s"), input_size=64)).eval()
    with pytest.raises(ValueError, match="built for a 4x4 grid cannot serve 6x6"):
        model(torch.randn(1, 3, 96, 96))


# ---- LeViT --------------------------------------------------------------------------------
def test_levit_shrink_block_widens_and_halves_with_ceil():
    spec = LevitSubsampleSpec(out_channels=24, key_dim=4, num_heads=2)
    block = build(spec, in_channels=16, size=7).eval()
    attention = block.attention
    assert attention.kv.linear.out_features == 2 * (4 + 16)  # per head: key 4 + value 4 * 4
    assert attention.q.linear.out_features == 2 * 4
    assert block(torch.randn(2, 16, 7, 7)).shape == (2, 24, 4, 4)
    assert spec.output_size((7, 7)) == (4, 4)


def test_levit_block_matches_its_deploy_form_with_random_batchnorm():
    torch.manual_seed(0)
    block = build(LevitBlockSpec(key_dim=4, num_heads=2), in_channels=16, size=5)
    randomize_batchnorm(block, seed=3).eval()
    with torch.no_grad():
        block.attention.bias.attention_biases.normal_()
    x = torch.randn(2, 16, 5, 5)
    deployed = ev.reparameterize(block)
    assert ev.is_deploy_form(deployed) and not ev.is_deploy_form(block)
    with torch.no_grad():
        reference, fused = block(x), deployed(x)
    assert max_relative_error(reference - x, fused - x) <= 1e-5  # the residual branches, not only the identity


def test_linear_norm_and_norm_linear_fold_exactly():
    torch.manual_seed(0)
    for layer, x in ((LinearNorm(6, 5), torch.randn(3, 4, 6)), (NormLinear(6, 5), torch.randn(3, 6))):
        randomize_batchnorm(layer, seed=1).eval()
        with torch.no_grad():
            reference = layer(x)
            layer.reparameterize()
            fused = layer(x)
        assert isinstance(layer.norm, nn.Identity) and layer.linear.bias is not None
        assert max_relative_error(reference, fused) <= 1e-6


def test_distillation_head_averages_both_heads_and_counts_them():
    torch.manual_seed(0)
    head = LevitHead(8, 3, distillation=True).eval()
    x = torch.randn(2, 8, 2, 2)
    cls, dist = head.forward_heads(x)
    assert not torch.allclose(cls, dist)
    assert torch.allclose(head(x), (cls + dist) / 2)
    single = LevitHead(8, 3, distillation=False)
    assert ev.count_params(head) - ev.count_params(single) == 2 * 8 + 8 * 3 + 3  # BatchNorm1d + Linear


# ---- EfficientFormer ------------------------------------------------------------------------
def test_efficientformer_last_stage_ends_with_attention_blocks():
    for name, meta4d, meta3d in (("efficientformer_l1", 3, 1), ("efficientformer_l3", 2, 4), ("efficientformer_l7", 0, 8)):
        kinds = [type(b) for b in ev.get_spec(name).stages[-1].blocks[1:]]  # after the downsampling embedding
        assert kinds == [EfficientFormerMeta4DSpec] * meta4d + [EfficientFormerMeta3DSpec] * meta3d, name
    with torch.device("meta"):
        model = ev.create_model("efficientformer_l1")
    assert model.stages[3][4].attention.bias.attention_biases.shape == (8, 49)  # 7 x 7 tokens at 224


def test_meta4d_pooling_mixer_is_zero_on_constant_maps():
    block = build(EfficientFormerMeta4DSpec(layer_scale_init=1.0), in_channels=8, size=5).eval()
    with torch.no_grad():
        block.project.norm.weight.zero_()  # silence the MLP branch (BN gamma 0, beta 0)
        x = torch.full((1, 8, 5, 5), 3.0)
        assert torch.allclose(block(x), x)  # avgpool(x) - x = 0 (count_include_pad=False keeps borders exact)
        y = torch.randn(1, 8, 5, 5)
        pooled = nn.functional.avg_pool2d(y, 3, 1, 1, count_include_pad=False)
        assert torch.allclose(block(y), pooled, atol=1e-6)  # x + 1 * (pool(x) - x)


# ---- EdgeNeXt -------------------------------------------------------------------------------
def test_sdta_split_widths_follow_the_reference_rule():
    assert sdta_split_widths(88, 3) == (30, 30, 28)
    assert sdta_split_widths(168, 4) == (42, 42, 42, 42)
    assert sdta_split_widths(100, 3) == (34, 34, 32)
    with pytest.raises(ValueError, match=r"num_scales=4 cannot split 6 channels into 4 groups"):
        sdta_split_widths(6, 4)


def test_sdta_groups_are_hierarchical_and_the_last_passes_untouched():
    encoder = SDTAEncoder(12, 48, num_scales=3, num_heads=2, positional_encoding=False, layer_scale_init=1.0)
    with torch.no_grad():
        for conv in encoder.convs:  # depthwise convs as identities: group i sees group i + output i-1
            conv.weight.zero_()
            conv.weight[:, 0, 1, 1] = 2.0
            conv.bias.zero_()
    seen = {}
    encoder.norm_attention.register_forward_hook(lambda m, args, out: seen.setdefault("tokens", args[0]))
    x = torch.randn(1, 12, 3, 3)
    encoder(x)
    g0, g1, g2 = x.split(4, dim=1)
    expected = torch.cat([2 * g0, 2 * (2 * g0 + g1), g2], dim=1).flatten(2).transpose(1, 2)
    assert torch.allclose(seen["tokens"], expected)


def test_cross_covariance_attention_is_channel_attention():
    torch.manual_seed(0)
    xca = CrossCovarianceAttention(8, num_heads=2).eval()
    seen = {}
    original_softmax = torch.Tensor.softmax

    def spy(tensor, dim):
        seen["shape"] = tuple(tensor.shape)
        return original_softmax(tensor, dim)

    x = torch.randn(2, 50, 8)
    torch.Tensor.softmax = spy
    try:
        out = xca(x)
    finally:
        torch.Tensor.softmax = original_softmax
    assert seen["shape"] == (2, 2, 4, 4)  # (B, heads, d, d): independent of the 50 tokens
    permutation = torch.randperm(50)
    assert torch.allclose(xca(x[:, permutation]), out[:, permutation], atol=1e-6)  # token order does not matter


def test_fourier_positional_encoding_values():
    encoding = FourierPositionalEncoding(16, hidden=4)
    features = encoding.features(2, 3, torch.empty(0))
    assert features.shape == (1, 8, 2, 3)
    # channel 0 = sin(y * 2 pi / H) at row 1 (y = 2), channel 4 = sin(x * 2 pi / W) at column 0 (x = 1)
    assert math.isclose(features[0, 0, 1, 2].item(), math.sin(2 / (2 + 1e-6) * 2 * math.pi), abs_tol=1e-5)
    assert math.isclose(features[0, 4, 1, 0].item(), math.sin(1 / (3 + 1e-6) * 2 * math.pi), abs_tol=1e-5)
    assert math.isclose(features[0, 5, 1, 0].item(), math.cos(1 / (3 + 1e-6) * 2 * math.pi), abs_tol=1e-5)
    assert encoding(2, 3, torch.empty(0)).shape == (1, 16, 2, 3)
    assert ev.count_params(encoding) == 8 * 16 + 16


def test_edgenext_stage_layout_and_positional_encoding_only_in_stage_two():
    spec = ev.get_spec("edgenext_x_small")
    sdta = [(i, b) for i, stage in enumerate(spec.stages) for b in stage.blocks if isinstance(b, EdgeNeXtSDTASpec)]
    assert [(i, b.num_scales, b.positional_encoding) for i, b in sdta] == [(1, 2, True), (2, 3, False), (3, 4, False)]
    assert [len(stage.blocks) for stage in spec.stages] == [3, 4, 10, 4]  # depths 3, 3, 9, 3 + downsampling


# ---- spec errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: LevitBlockSpec(key_dim=16, num_heads=4, stride=2), "LevitBlockSpec.stride must be 1, got 2"),
        (lambda: LevitSubsampleSpec(out_channels=8, key_dim=4, num_heads=2, stride=1), "LevitSubsampleSpec.stride must be 2, got 1"),
        (lambda: LevitBlockSpec(key_dim=0, num_heads=4), "LevitBlockSpec.key_dim must be a positive number, got 0"),
        (
            lambda: EfficientFormerMeta3DSpec(attn_ratio=0.3),
            "EfficientFormerMeta3DSpec.attn_ratio must be such that attn_ratio * key_dim is a whole number, got 0.3",
        ),
        (lambda: EdgeNeXtSDTASpec(num_scales=1), "EdgeNeXtSDTASpec.num_scales must be >= 2"),
        (lambda: EfficientFormerMeta4DSpec(pool_size=4), "EfficientFormerMeta4DSpec.pool_size must be 3, 5 or 7, got 4"),
    ],
)
def test_spec_errors_name_class_field_and_value(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)


def test_sdta_heads_must_divide_the_resolved_width():
    spec = edgenext("edgenext_5_heads", (24, 48, 88, 168), (2, 2, 6, 2), num_heads=5)
    with pytest.raises(ValueError, match=r"stages\[1\]\[2\]: EdgeNeXtSDTASpec.num_heads=5 must divide the resolved width 48"):
        ev.resolve(spec)


def test_levit_subsampling_of_an_odd_grid_exports_to_onnx(tmp_path):
    """At 96x96 the 6x6 grid shrinks to 3x3 and then to ceil(3 / 2) = 2x2: the traced ceil must not become floor."""
    model = ev.create_model("levit_128s")
    report = ev.export_onnx(model, tmp_path / "levit.onnx", (3, 96, 96), dynamic_batch=False, simplify=False)
    assert max(report.max_relative_error.values()) <= 1e-4
