"""Inner widths (the spec-declared width-surgery protocol) and the pruned head's class count.

Inception branch reduces, Xception's separable convs and VGG's stage convs + head FCs had no
prunable width before ``inner_widths()``: these tests check that permuting every group of such a
network keeps its function exactly, that 30% pruning removes parameters and still runs, and a
structure-only check (meta device, no numerics) of a 30% prune on a wider set of block kinds.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import max_relative_error, randomize_batchnorm

import edgevision as ev
from edgevision.prune import FixedWidthSpec, groups_of, shrink, widths_for_ratio
from edgevision.prune.groups import INNER, channel_groups


def _small_spec(name: str) -> ev.NetworkSpec:
    """The registered network cut to what the test needs (its block kinds, a fraction of the arithmetic)."""
    spec = ev.get_spec(name).with_classes(10)
    if name == "googlenet":  # stem + the two Inception modules of stage 3 (3a, 3b)
        return dataclasses.replace(spec, stages=spec.stages[:1])
    if name == "vgg11":  # a quarter of the widths, and the head's FCs at 64 instead of 4096
        return dataclasses.replace(spec.with_width(0.25), head=dataclasses.replace(spec.head, hidden_features=64))
    return spec


def _model(name: str, size: int) -> ev.Network:
    torch.manual_seed(0)
    return randomize_batchnorm(ev.build(ev.resolve(_small_spec(name), input_size=size)).eval())


def _permute_all(groups) -> dict[str, torch.Tensor]:
    return {g.name: torch.cat([torch.randperm(g.width // g.step) + k * (g.width // g.step) for k in range(g.step)]) for g in groups}


@pytest.mark.parametrize("name, size, least_removed", [("googlenet", 32, 0.15), ("vgg11", 32, 0.4)])
def test_inner_widths_prune_exactly(name, size, least_removed):
    model = _model(name, size)
    groups = [g for g in groups_of(model) if g.prunable]
    assert any(INNER in slot for g in groups for _, slot in g.members), f"{name}: no inner-width group"
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        reference = model(x)
        assert max_relative_error(reference, shrink(model, _permute_all(groups), groups=groups)(x)) < 1e-4
        pruned = shrink(model, widths_for_ratio(groups, 0.3), groups=groups)
        assert pruned(x).shape == reference.shape
    assert ev.count_params(pruned) < (1 - least_removed) * ev.count_params(model)
    # the pruned network is an ordinary spec: it round-trips through JSON and rebuilds to the same shapes
    again = ev.build(ev.resolve(ev.NetworkSpec.from_json(pruned.spec.to_json()), input_size=size))
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in pruned.state_dict().items()}


def test_an_inception_reduce_keeps_the_chosen_channels():
    model = _model("googlenet", 32)
    groups = channel_groups(model.resolved, verify=False)  # the exact-function check is the test above
    group = next(g for g in groups if g.members[0][1] == INNER + "branches.1.layers.0")  # 1x1 reduce before the 3x3
    block = model.resolved.blocks[group.members[0][0]]
    keep = torch.tensor([0, 5, 7, 11])
    pruned = shrink(model, {group.name: keep}, groups=groups)
    source, result = model.state_dict(), pruned.state_dict()
    reduce_key = f"{block.path}.branches.1.layers.0.conv.weight"
    conv_key = f"{block.path}.branches.1.layers.1.conv.weight"
    assert torch.equal(result[reduce_key], source[reduce_key][keep])
    assert torch.equal(result[conv_key], source[conv_key][:, keep])


def test_structure_only_prune_on_meta_across_block_kinds():
    """30% of every prunable group resolves, builds and runs (shapes only) without touching weights."""
    for name in ("xception",):  # separable-conv inner widths + a pruned out
        size = 64
        resolved = ev.resolve(ev.get_spec(name).with_classes(10), input_size=size)
        with torch.device("meta"):
            model = ev.build(resolved).eval()
        groups = channel_groups(resolved, verify=False)
        widths = widths_for_ratio(groups, 0.3)
        scores = {g.name: torch.arange(g.width, dtype=torch.float) for g in groups if g.name in widths}
        pruned = shrink(model, widths, scores=scores, groups=groups)
        assert pruned(torch.empty(1, 3, size, size, device="meta")).shape == (1, 10), name
        assert ev.count_params(pruned) < 0.9 * ev.count_params(model), name


def test_with_classes_on_a_pruned_head():
    model = _model("mobilenetv3_small_075", 32)
    groups = channel_groups(model.resolved, verify=False)
    hidden = next(g for g in groups if g.name == "head.mid")
    pruned = shrink(model, {hidden.name: hidden.width // 2}, groups=groups)
    assert isinstance(pruned.spec.head, FixedWidthSpec)
    spec = pruned.spec.with_classes(7)
    assert spec.head.num_classes == 7 and spec.head.mid_channels == hidden.width // 2  # the pruned hidden width stays
    out = ev.build(ev.resolve(spec, input_size=32)).eval()(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 7)


@pytest.mark.parametrize("name, refused", [
    ("inception_v4", "the output width follows the input width"),  # the stem's Mixed_3a: max-pool | conv
    ("inception_resnet_v2", "does not run with another mid width"),  # block35's up-projection alone
])
def test_a_concatenated_input_or_a_mid_the_branches_ignore_is_not_pruned(name, refused):
    """Regression: both failed at 30% with torch's "Invalid channel dimensions" at the next conv.

    Inception v4's Mixed_3a concatenates a max-pool of its input (its out follows its in) and an
    Inception-ResNet module's up-projection reads ``mid`` while the branches keep their own widths:
    the shape difference mapped both as prunable; the builder check (a meta forward) refuses them.
    """
    spec = ev.get_spec(name).with_classes(10)
    if name == "inception_v4":  # the stem up to Mixed_3a, then Mixed_4a as the one stage (a fraction of the blocks)
        spec = dataclasses.replace(spec, stem=spec.stem[:4], stages=(ev.StageSpec(blocks=(spec.stem[4],)),))
    else:  # the stem and the first Inception-ResNet-A module
        spec = dataclasses.replace(spec, stages=(dataclasses.replace(spec.stages[0], blocks=spec.stages[0].blocks[:1]),))
    size = 96
    resolved = ev.resolve(spec, input_size=size)
    groups = channel_groups(resolved, verify=False)
    reasons = " ".join(g.reason for g in groups if not g.prunable)
    assert refused in reasons
    with torch.device("meta"):
        model = ev.build(resolved).eval()
    widths = widths_for_ratio(groups, 0.3)
    pruned = shrink(model, widths, scores={g.name: torch.arange(g.width, dtype=torch.float) for g in groups if g.name in widths}, groups=groups)
    assert pruned(torch.empty(1, 3, size, size, device="meta")).shape == (1, 10)
    assert ev.count_params(pruned) < 0.85 * ev.count_params(model)
