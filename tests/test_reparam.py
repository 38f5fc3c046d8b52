"""The re-parameterization protocol and walker, on primitives (model-wide checks are in test_zoo)."""

from __future__ import annotations

import torch
from helpers import max_relative_error, randomize_batchnorm
from torch import nn

import edgevision as ev
from edgevision.layers import ConvNormAct, fold_batchnorm, identity_kernel, pad_kernel


def test_conv_norm_act_folds_batchnorm_into_a_biased_conv():
    torch.manual_seed(0)
    block = randomize_batchnorm(ConvNormAct(8, 16, 3, stride=2, groups=2, act=nn.ReLU)).eval()
    x = torch.randn(2, 8, 15, 15)
    reference = block(x)
    block.reparameterize()
    assert isinstance(block.norm, nn.Identity) and block.conv.bias is not None
    assert max_relative_error(reference, block(x)) < 1e-6
    block.reparameterize()  # idempotent
    assert max_relative_error(reference, block(x)) < 1e-6


def test_fold_batchnorm_matches_formula():
    norm = randomize_batchnorm(nn.BatchNorm2d(4)).eval()
    weight, bias = torch.randn(4, 3, 1, 1), torch.randn(4)
    fused_w, fused_b = fold_batchnorm(weight, bias, norm)
    x = torch.randn(1, 3, 5, 5)
    expected = norm(nn.functional.conv2d(x, weight, bias))
    assert torch.allclose(nn.functional.conv2d(x, fused_w, fused_b), expected, atol=1e-5)


def test_identity_kernel_and_padding():
    x = torch.randn(1, 6, 7, 7)
    for groups in (1, 3, 6):
        kernel = identity_kernel(6, groups, 3, x)
        assert torch.allclose(nn.functional.conv2d(x, kernel, padding=1, groups=groups), x)
    one = torch.randn(6, 6, 1, 1)
    assert torch.allclose(nn.functional.conv2d(x, pad_kernel(one, 3), padding=1), nn.functional.conv2d(x, one))


def test_walker_copies_by_default_and_converts_in_place_on_request():
    model = randomize_batchnorm(ev.create_model("mobilenetv2_050")).eval()
    deployed = ev.reparameterize(model)
    assert deployed is not model and not ev.is_deploy_form(model) and ev.is_deploy_form(deployed)
    same = ev.reparameterize(model, inplace=True)
    assert same is model and ev.is_deploy_form(model)
    assert not same.training


def test_walker_rejects_non_modules():
    import pytest

    with pytest.raises(TypeError, match="needs an nn.Module"):
        ev.reparameterize("resnet18")  # type: ignore[arg-type]


def test_channel_affine_equals_batchnorm_in_eval_mode():
    from helpers import randomize_batchnorm

    from edgevision.layers import ChannelAffine

    norm = randomize_batchnorm(nn.Sequential(nn.BatchNorm2d(6)), seed=3)[0].eval()
    affine = ChannelAffine.from_batchnorm(norm)
    x = torch.randn(2, 6, 5, 5)
    torch.testing.assert_close(affine(x), norm(x))
    assert sum(p.numel() for p in affine.parameters()) == sum(p.numel() for p in norm.parameters())
