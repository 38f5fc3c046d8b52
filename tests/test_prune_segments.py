"""Segmented width maps: a width made of concatenated parts pruned alike (GhostNet's [primary, cheap ghosts]).

A Ghost module's output channel u and u + W/2 (its ghost) are one unit; ``GhostBottleneck.width_dims()``
declares ``mid`` and ``out`` as two-part maps. Checked: permuting the units of every group keeps the
network's function, the kept weights are the source's rows of the kept units in both parts, a 30% prune
is an ordinary spec that round-trips through JSON, and a keep that breaks the part structure is refused.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import max_relative_error, randomize_batchnorm

import edgevision as ev
from edgevision.prune import PruneError, groups_of, shrink, widths_for_ratio
from edgevision.prune.groups import tiled


def _ghostnet() -> ev.Network:
    """GhostNet at half width, its first two stages: identity and stride-2 Ghost bottlenecks, with and without SE."""
    torch.manual_seed(0)
    spec = ev.get_spec("ghostnet_100").with_classes(10).with_width(0.5)
    spec = dataclasses.replace(spec, stages=spec.stages[:2])
    return randomize_batchnorm(ev.build(ev.resolve(spec, input_size=32)).eval())


def test_ghost_widths_prune_as_two_part_units():
    model = _ghostnet()
    groups = groups_of(model)
    segmented = [g for g in groups if g.tile == 2]
    assert {g.name for g in segmented} >= {"stages.0.0.mid", "stages.1.0.mid", "stages.1.0.out"}
    assert all(g.prunable for g in segmented), [g.reason for g in segmented if not g.prunable]
    prunable = [g for g in groups if g.prunable]
    x = torch.randn(2, 3, 32, 32)
    permutations = {g.name: tiled(torch.randperm(g.width // g.tile), g.width, g.tile) for g in prunable}
    with torch.no_grad():
        reference = model(x)
        assert max_relative_error(reference, shrink(model, permutations, groups=groups)(x)) < 1e-4
        pruned = shrink(model, widths_for_ratio(prunable, 0.3), groups=groups)
        assert pruned(x).shape == reference.shape
    assert ev.count_params(pruned) < 0.8 * ev.count_params(model)
    again = ev.build(ev.resolve(ev.NetworkSpec.from_json(pruned.spec.to_json()), input_size=32))
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in pruned.state_dict().items()}

    # the kept units' weights, in both parts: primary rows K, cheap (ghost) rows K, projection columns [K, K + W/2]
    group = next(g for g in segmented if g.name == "stages.1.0.mid")
    units = torch.tensor([0, 2, 5])
    keep = tiled(units, group.width, 2)
    small = shrink(model, {group.name: keep}, groups=groups)
    source, target = model.stages[1][0], small.stages[1][0]
    assert torch.equal(target.expand.primary.conv.weight, source.expand.primary.conv.weight[units])
    assert torch.equal(target.expand.cheap.conv.weight, source.expand.cheap.conv.weight[units])
    assert torch.equal(target.project.primary.conv.weight, source.project.primary.conv.weight[:, keep])
    assert small.resolved.blocks[group.members[0][0]].mid_channels == 6

    with pytest.raises(PruneError, match="keep the same units in each part"):
        shrink(model, {group.name: torch.arange(6)}, groups=groups)  # the first six channels: primary only
    with pytest.raises(PruneError, match="multiple of 2"):
        shrink(model, {group.name: 5}, groups=groups)
