"""Block-level tests of the classic families: VGG stages and head, Inception modules of every
version (branches, splits, grid reductions, Inception-ResNet residuals, TF-slim BatchNorm without
scale), Xception blocks. Small widths and inputs; the whole networks are covered by test_zoo.py."""

from __future__ import annotations

import pytest
import torch
from helpers import max_relative_error, meta_model, randomize_batchnorm
from torch import nn

import edgevision as ev
from edgevision.blocks import (
    BatchNormWithoutScale,
    ClassifierHeadSpec,
    InceptionBranchSpec,
    InceptionConvSpec,
    InceptionModuleSpec,
    InceptionPoolSpec,
    VGGHeadSpec,
    VGGStageSpec,
    XceptionBlockSpec,
)


def conv(width: int, kernel=(1, 1), stride: int = 1, padding: str = "same") -> InceptionConvSpec:
    return InceptionConvSpec(out_channels=width, kernel_size=kernel, stride=stride, padding=padding)


def one_block_network(block, in_channels: int = 8, input_size: int = 17) -> ev.NetworkSpec:
    return ev.NetworkSpec(
        name="probe",
        stem=(block,),
        stages=(ev.StageSpec(blocks=(VGGStageSpec(out_channels=4, num_convs=1, stride=1),)),),
        head=ClassifierHeadSpec(num_classes=3),
        in_channels=in_channels,
        channel_divisor=1,
        input_size=input_size,
    )


def built_block(block, in_channels: int = 8, input_size: int = 17) -> nn.Module:
    resolved = ev.resolve(one_block_network(block, in_channels, input_size))
    return resolved.blocks[0].spec.build(resolved.blocks[0])


# ---- Inception modules -------------------------------------------------------------------------
V3_EXPANDED = InceptionModuleSpec(  # Inception v3 Fig. 7 at small widths: a branch ending in a 1x3 | 3x1 split
    branches=(
        InceptionBranchSpec(layers=(conv(5),)),
        InceptionBranchSpec(layers=(conv(6),), split=(conv(4, (1, 3)), conv(4, (3, 1)))),
        InceptionBranchSpec(layers=(InceptionPoolSpec(mode="avg"), conv(3))),
    )
)
REDUCTION = InceptionModuleSpec(  # Fig. 10 style grid reduction: stride-2 valid conv | max pool
    branches=(
        InceptionBranchSpec(layers=(conv(6), conv(10, (3, 3), 2, "valid"))),
        InceptionBranchSpec(layers=(InceptionPoolSpec(mode="max", kernel_size=3, stride=2, padding="valid"),)),
    )
)


def test_module_width_is_the_sum_of_branches_and_splits():
    resolved = ev.resolve(one_block_network(V3_EXPANDED)).blocks[0]
    assert resolved.out_channels == 5 + (4 + 4) + 3 and resolved.output_size == (17, 17)
    out = built_block(V3_EXPANDED).eval()(torch.randn(2, 8, 17, 17))
    assert out.shape == (2, 16, 17, 17)


def test_grid_reduction_pool_branch_keeps_the_input_width():
    resolved = ev.resolve(one_block_network(REDUCTION)).blocks[0]
    assert REDUCTION.stride == 2
    assert resolved.out_channels == 10 + 8 and resolved.output_size == (8, 8)  # floor((17 - 3) / 2) + 1
    assert built_block(REDUCTION).eval()(torch.randn(1, 8, 17, 17)).shape == (1, 18, 8, 8)


def test_factorized_kernels_are_height_by_width():
    module = built_block(InceptionModuleSpec(branches=(InceptionBranchSpec(layers=(conv(4, (1, 7)), conv(4, (7, 1)))),)))
    kernels = [m.kernel_size for m in module.modules() if isinstance(m, nn.Conv2d)]
    paddings = [m.padding for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert kernels == [(1, 7), (7, 1)] and paddings == [(0, 3), (3, 0)]


def test_branches_with_different_strides_are_refused():
    with pytest.raises(ValueError, match=r"InceptionModuleSpec.branches must be branches with one common total stride"):
        InceptionModuleSpec(branches=(InceptionBranchSpec(layers=(conv(4),)), REDUCTION.branches[1]))


def test_branches_that_disagree_on_size_fail_at_resolve_naming_padding():
    mixed = InceptionModuleSpec(
        branches=(InceptionBranchSpec(layers=(conv(4, (3, 3), 1, "valid"),)), InceptionBranchSpec(layers=(conv(4, (3, 3)),)))
    )
    with pytest.raises(ValueError, match=r"different output sizes \[\(15, 15\), \(17, 17\)\].*padding"):
        ev.resolve(one_block_network(mixed))


def test_inception_spec_errors_name_the_field():
    with pytest.raises(ValueError, match=r"InceptionConvSpec.kernel_size must be odd with padding='same'"):
        conv(4, (2, 2))
    with pytest.raises(ValueError, match=r"InceptionPoolSpec.mode must be 'max' or 'avg', got 'min'"):
        InceptionPoolSpec(mode="min")
    with pytest.raises(ValueError, match=r"InceptionBranchSpec.split must be empty or at least two"):
        InceptionBranchSpec(layers=(conv(4),), split=(conv(2),))
    with pytest.raises(ValueError, match=r"InceptionModuleSpec.residual_scale must be None for a module with stride 2"):
        InceptionModuleSpec(branches=REDUCTION.branches, residual_scale=0.1)
    with pytest.raises(ValueError, match=r"width_multiplier=0.5"):
        ev.resolve(one_block_network(V3_EXPANDED), width_multiplier=0.5)


def test_avg_pool_padding_convention_tf_same_excludes_the_padding():
    ones = torch.ones(1, 1, 5, 5)
    torchvision_style = InceptionPoolSpec(mode="avg", count_include_pad=True).build()
    tf_same = InceptionPoolSpec(mode="avg", count_include_pad=False).build()
    assert torchvision_style(ones)[0, 0, 0, 0].item() == pytest.approx(4 / 9)  # corner: 4 real pixels of 9
    assert torch.equal(tf_same(ones), ones)


def test_batchnorm_without_scale_learns_only_a_shift_and_folds():
    norm = BatchNormWithoutScale(6)
    assert [name for name, _ in norm.named_parameters()] == ["bias"]
    assert torch.equal(norm.weight, torch.ones(6)) and "weight" in dict(norm.named_buffers())
    slim = InceptionModuleSpec(branches=(InceptionBranchSpec(layers=(conv(6, (3, 3)),)),), norm_scale=False)
    module = built_block(slim)
    assert ev.count_params(module) == 3 * 3 * 8 * 6 + 6  # TF-slim: conv weights + beta, no gamma
    randomize_batchnorm(module, seed=3).eval()
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        reference, fused = module(x), ev.reparameterize(module)(x)
    assert max_relative_error(reference, fused) <= 1e-5


def residual_module(scale: float, activation: bool = True) -> InceptionModuleSpec:
    return InceptionModuleSpec(
        branches=(InceptionBranchSpec(layers=(conv(4),)), InceptionBranchSpec(layers=(conv(3), conv(5, (1, 3)), conv(6, (3, 1))))),
        residual_scale=scale,
        residual_activation=activation,
        norm_scale=False,
    )


def test_inception_resnet_residual_keeps_width_and_scales_the_branch_sum():
    resolved = ev.resolve(one_block_network(residual_module(0.17))).blocks[0]
    assert (resolved.out_channels, resolved.mid_channels) == (8, 4 + 6)  # up-projection 10 -> 8
    module = built_block(residual_module(0.17)).eval()
    assert module.up.bias is not None and module.up.in_channels == 10  # linear 1x1 conv with bias, no BN
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        branches = torch.cat([branch(x) for branch in module.branches], dim=1)
        expected = torch.relu(x + 0.17 * module.up(branches))
        assert torch.allclose(module(x), expected)


def test_residual_scale_folds_into_the_up_projection():
    module = randomize_batchnorm(built_block(residual_module(0.1)), seed=2).eval()
    x = torch.randn(2, 8, 7, 7)
    deployed = ev.reparameterize(module)
    assert deployed.residual_scale == 1.0 and ev.is_deploy_form(deployed)
    with torch.no_grad():
        assert max_relative_error(module(x), deployed(x)) <= 1e-5


def test_last_block8_has_no_relu():
    module = built_block(residual_module(1.0, activation=False)).eval()
    with torch.no_grad():
        assert (module(torch.randn(2, 8, 5, 5)) < 0).any()
    with pytest.raises(ValueError, match=r"residual_activation must be True without a residual"):
        InceptionModuleSpec(branches=V3_EXPANDED.branches, residual_activation=False)


@pytest.mark.parametrize(
    ("name", "grids"),
    [  # (channels, H) at the end of each stage: the papers' grid tables
        ("inception_v3", [(288, 35), (768, 17), (2048, 8)]),  # Szegedy et al. 2016, Table 1
        ("inception_v4", [(384, 35), (1024, 17), (1536, 8)]),  # Szegedy et al. 2017, Fig. 9
        ("inception_resnet_v2", [(320, 35), (1088, 17), (1536, 8)]),  # Fig. 15 (v2 widths of the release)
        ("googlenet", [(480, 28), (832, 14), (1024, 7)]),  # Szegedy et al. 2015, Table 1 (at 224)
    ],
)
def test_stage_outputs_follow_the_papers_grid_tables(name, grids):
    resolved = ev.resolve(ev.get_spec(name))
    ends = [resolved.stage(i)[-1] for i in range(resolved.num_stages)]
    assert [(block.out_channels, block.output_size[0]) for block in ends] == grids


def test_inception_resnet_v2_residual_scales_and_tf_slim_batchnorm():
    blocks = [b.spec for b in ev.resolve(ev.get_spec("inception_resnet_v2"))]
    scales = [b.residual_scale for b in blocks if getattr(b, "residual_scale", None) is not None]
    assert scales == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]
    model = meta_model("inception_resnet_v2")
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(isinstance(m, BatchNormWithoutScale) and m.eps == 1e-3 for m in norms)


# ---- Xception ----------------------------------------------------------------------------------
def test_xception_separable_conv_has_nothing_between_depthwise_and_pointwise():
    block = built_block(XceptionBlockSpec(channels=(12, 12), stride=2), in_channels=8)
    kinds = [type(m).__name__ for m in block.body]
    assert kinds == ["ReLU", "SeparableConvNorm", "ReLU", "SeparableConvNorm", "MaxPool2d"]
    separable = block.body[1]
    assert separable.depthwise.groups == 8 and separable.pointwise.conv.kernel_size == (1, 1)
    assert isinstance(block.shortcut, ev.layers.ConvNormAct) and block.shortcut.conv.stride == (2, 2)
    assert block.eval()(torch.randn(1, 8, 17, 17)).shape == (1, 12, 9, 9)


def test_xception_block_shortcuts_and_first_activation():
    middle = built_block(XceptionBlockSpec(channels=(8, 8, 8)), in_channels=8)
    assert isinstance(middle.shortcut, nn.Identity) and len(middle.body) == 6
    entry = built_block(XceptionBlockSpec(channels=(8, 8), stride=2, first_activation=False), in_channels=8)
    assert type(entry.body[0]).__name__ == "SeparableConvNorm"  # the stem's ReLU came before
    exit_flow = built_block(XceptionBlockSpec(channels=(6, 10), residual=False), in_channels=8)
    assert exit_flow.shortcut is None and [type(m).__name__ for m in exit_flow.body][-1] == "ReLU"
    with pytest.raises(ValueError, match=r"XceptionBlockSpec.stride must be 1 for a plain"):
        XceptionBlockSpec(channels=(6,), residual=False, stride=2)


def test_xception_block_deploy_form_matches():
    block = randomize_batchnorm(built_block(XceptionBlockSpec(channels=(12, 16), stride=2), in_channels=8), seed=4).eval()
    x = torch.randn(2, 8, 11, 11)
    deployed = ev.reparameterize(block)
    assert ev.is_deploy_form(deployed)
    with torch.no_grad():
        assert max_relative_error(block(x), deployed(x)) <= 1e-5


def test_xception_count_matches_keras_total_weights():
    """Keras reports 22,910,480 weights: our trainable count plus BN moving mean and variance."""
    model = meta_model("xception")
    moving_statistics = sum(2 * m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert ev.count_params(model) + moving_statistics == 22_910_480


# ---- VGG ---------------------------------------------------------------------------------------
def test_vgg_stage_convs_keep_bias_with_batchnorm_and_pool_halves():
    stage = built_block(VGGStageSpec(out_channels=6, num_convs=2, batch_norm=True), in_channels=3)
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 and all(c.bias is not None for c in convs)  # torchvision's vgg*_bn keep the bias
    assert stage.eval()(torch.randn(1, 3, 17, 17)).shape == (1, 6, 8, 8)
    plain = built_block(VGGStageSpec(out_channels=6, num_convs=1, stride=1), in_channels=3)
    assert isinstance(plain.pool, nn.Identity) and not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())


def test_vgg_head_pools_to_7x7_for_any_input():
    head = VGGHeadSpec(num_classes=5, hidden_features=16).build(
        ev.resolve(
            ev.NetworkSpec(
                name="probe",
                stem=(VGGStageSpec(out_channels=4, num_convs=1),),
                stages=(ev.StageSpec(blocks=(VGGStageSpec(out_channels=4, num_convs=1, stride=1),)),),
                head=VGGHeadSpec(num_classes=5, hidden_features=16),
                channel_divisor=1,
            )
        ).head
    )
    assert head.classifier[0].in_features == 4 * 7 * 7
    for size in (2, 5, 7, 13, 14):  # the matmul form (2, 5, 13) equals PyTorch's adaptive pooling
        x = torch.randn(2, 4, size, size)
        assert torch.allclose(head.pool(x), torch.nn.functional.adaptive_avg_pool2d(x, 7), atol=1e-6)
        assert head.eval()(x).shape == (2, 5)


def test_vgg_table_1_layer_counts():
    for name, weight_layers in (("vgg11", 11), ("vgg16", 16)):
        model = meta_model(name)
        assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == weight_layers
