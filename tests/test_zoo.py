"""Registry-driven tests: every registered model is covered the moment it is registered.

Forward shape and finiteness, backward reaching every parameter, deploy-form equivalence with
non-trivial BatchNorm statistics, counts against the published table, spec JSON round trip,
and agreement between the resolved block list and the built modules.
"""

from __future__ import annotations

import pytest
import torch
from helpers import max_relative_error, meta_model, randomize_batchnorm, test_input_size
from torch import nn

import edgevision as ev
from edgevision.published import published, published_table

MODELS = ev.list_models()
# the TF-slim Inceptions' timm layouts differ from their release models only by a BatchNorm gamma; their
# backward and deploy checks would cost ~40 s each on 2 cores, so the reference suite checks them
# instead (train and deploy form against timm's logits in float64, tests/reference/cases.py)
_GAMMA_ONLY_VARIANTS = {"inception_v4_timm", "inception_resnet_v2_timm"}
MODELS_WITHOUT_GAMMA_VARIANTS = [name for name in MODELS if name not in _GAMMA_ONLY_VARIANTS]
SMALL = 64  # forward/backward resolution: most zoo networks downsample 32x, so 64 leaves a 2x2 map
MACS_RELATIVE_TOLERANCE = 0.02  # beyond the printed rounding; see README "Counting conventions"


ZOO_SIZE_AT_LEAST = 85  # the zoo as of issue 12 (81 + TRT-ViT A-D); a registry that shrinks has lost a model


def test_zoo_is_exactly_the_documented_zoo():
    """Every registered model has a row in docs/zoo.md and every row names a registered model."""
    from pathlib import Path

    table = (Path(__file__).parents[1] / "docs" / "zoo.md").read_text(encoding="utf-8")
    documented = {line.split("|")[1].strip() for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model ")}
    assert set(MODELS) == documented
    assert len(MODELS) >= ZOO_SIZE_AT_LEAST


@pytest.mark.parametrize("name", MODELS)
def test_forward_shape_and_finite(name):
    torch.manual_seed(0)
    model = ev.create_model(name, num_classes=10).eval()
    size = test_input_size(name, SMALL)
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS_WITHOUT_GAMMA_VARIANTS)
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = ev.create_model(name, num_classes=10).train()
    size = test_input_size(name, SMALL)
    model(torch.randn(2, 3, size, size)).logsumexp(dim=1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a (finite) gradient: {missing[:5]}"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS_WITHOUT_GAMMA_VARIANTS)
def test_deploy_form_matches_train_form(name):
    torch.manual_seed(0)
    model = randomize_batchnorm(ev.create_model(name), seed=1).eval()
    had_batchnorm = not ev.is_deploy_form(model)  # HorNet, VGG without BN: none at all
    deployed = ev.reparameterize(model)
    assert ev.is_deploy_form(deployed), "BatchNorm left in the deploy form"
    assert ev.is_deploy_form(model) != had_batchnorm, "reparameterize(inplace=False) changed the train-form model"
    size = test_input_size(name, SMALL)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        reference, fused = model(x), deployed(x)
    assert reference.abs().max() > 0
    assert max_relative_error(reference, fused) <= 1e-4


@pytest.mark.parametrize("name", MODELS)
def test_published_row_exists(name):
    record = published(name)
    assert record is not None, f"{name} has no row in data/published.csv"
    assert record.family == ev.registry.model_family(name)
    assert record.citation


def test_published_table_lists_only_registered_models():
    assert set(published_table()) <= set(MODELS)


@pytest.mark.parametrize("name", [n for n in MODELS if published(n) and published(n).params_train_exact])
def test_train_params_equal_official_implementation(name):
    assert ev.count_params(meta_model(name)) == published(name).params_train_exact


@pytest.mark.parametrize("name", [n for n in MODELS if published(n) and published(n).params_deploy_exact])
def test_deploy_params_equal_official_implementation(name):
    with torch.device("meta"):
        deployed = ev.reparameterize(meta_model(name))
    assert ev.count_params(deployed) == published(name).params_deploy_exact


@pytest.mark.parametrize("name", [n for n in MODELS if published(n) and published(n).macs])
def test_macs_match_paper(name):
    """At the network's native resolution (224 for most; 299 for Inception v3/v4 and Xception)."""
    record = published(name)
    with torch.device("meta"):
        deployed = ev.reparameterize(meta_model(name))
        macs = ev.count_macs(deployed, ev.get_spec(name).input_size)
    assert record.macs.agrees_with(macs, MACS_RELATIVE_TOLERANCE), f"{name}: {macs / 1e6:.1f}M MACs vs paper {record.macs}"


def test_meta_device_counts_equal_real_counts():
    """The fidelity tests count on the meta device; prove that counts the same as real tensors."""
    name = "mobileone_s0"  # a re-parameterizable model: the deploy form changes the counts
    real = ev.reparameterize(ev.create_model(name))
    with torch.device("meta"):
        meta = ev.reparameterize(meta_model(name))
        meta_macs = ev.count_macs(meta, 128)
    assert next(meta.parameters()).is_meta
    assert ev.count_params(meta) == ev.count_params(real)
    assert meta_macs == ev.count_macs(real, 128)


@pytest.mark.parametrize("name", MODELS)
def test_spec_json_round_trip(name):
    spec = ev.get_spec(name)
    again = ev.NetworkSpec.from_json(spec.to_json())
    assert again == spec and hash(again) == hash(spec)
    resolved = ev.resolve(spec)
    assert ev.ResolvedNetwork.from_json(resolved.to_json()) == resolved


@pytest.mark.parametrize("name", MODELS)
def test_built_modules_agree_with_resolved_blocks(name):
    """Each block's module produces exactly the channels and H x W the resolve step promised."""
    size = test_input_size(name, SMALL + 32)
    resolved = ev.resolve(ev.get_spec(name), input_size=size)
    model = ev.build(resolved).eval()
    seen: dict[str, tuple] = {}
    modules = dict(model.named_modules())
    hooks = [
        modules[block.path].register_forward_hook(lambda m, i, o, path=block.path: seen.__setitem__(path, (i[0].shape, o.shape)))
        for block in resolved
    ]
    with torch.no_grad():
        model(torch.randn(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    for block in resolved:
        in_shape, out_shape = seen[block.path]
        assert tuple(in_shape[1:]) == (block.in_channels, *block.input_size), block.path
        if block.section == "head":
            assert tuple(out_shape[1:]) == (block.out_channels,)
        else:
            assert tuple(out_shape[1:]) == (block.out_channels, *block.output_size), block.path


@pytest.mark.parametrize("name", MODELS)
def test_create_model_options(name):
    model = ev.create_model(name, num_classes=7, in_chans=1)
    assert isinstance(model, nn.Module)
    size = test_input_size(name, SMALL)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, size, size)).shape == (1, 7)
