"""RepNAS branch search: DBB branch subsets fuse exactly, the searched network ships single-path."""

from __future__ import annotations

import itertools

import pytest
import torch

import edgevision as ev
from edgevision.blocks import DiverseBranchConvSpec
from edgevision.blocks.diverse_branch import DBB_BRANCHES, DiverseBranchConv
from edgevision.lut import LatencyTable, MeasurementSetting
from edgevision.network import NetworkSpec
from edgevision.search import LatencyModel, SearchError, run
from lut_helpers import TINY_SPACE
from test_search import fake_block_ms, tiny_data  # noqa: F401 - fixture

SUBSETS = [s for r in range(1, 5) for s in itertools.combinations(DBB_BRANCHES, r)]


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(module.num_features, generator=generator) * 0.1)


@pytest.mark.parametrize("groups", [1, 8])
def test_every_branch_subset_fuses_to_one_conv_exactly(groups):
    x = torch.randn(1, 8, 7, 7)
    for branches in SUBSETS:
        if groups == 8 and branches == ("1x1",):
            with pytest.raises(ValueError, match="no 1x1 branch"):
                DiverseBranchConv(8, 8, 3, groups=groups, branches=branches)
            continue
        block = DiverseBranchConv(8, 8, 3, stride=2 if groups == 1 else 1, groups=groups, branches=branches).eval()
        randomize_norms(block)
        expected_branches = tuple(b for b in branches if not (groups == 8 and b == "1x1"))  # depthwise: no 1x1 branch
        assert block.branches == expected_branches
        block.branch_gates = torch.linspace(0.5, 1.5, len(block.branches))  # gates fold into the kernel too
        with torch.no_grad():
            train = block(x)
            block.reparameterize()
            deploy = block(x)
        assert [type(m).__name__ for m in block.children() if not isinstance(m, torch.nn.ReLU)] == ["Conv2d"]
        torch.testing.assert_close(deploy, train, atol=1e-5, rtol=1e-5)


def test_branches_field_is_validated_and_left_out_of_default_json():
    assert "branches" not in DiverseBranchConvSpec(out_channels=8).to_dict()  # existing table keys unchanged
    spec = DiverseBranchConvSpec(out_channels=8, branches=("kxk", "avg"))
    assert DiverseBranchConvSpec.from_json(spec.to_json()) == spec
    for bad in [(), ("avg", "kxk"), ("kxk", "5x5")]:
        with pytest.raises(ValueError, match="branches"):
            DiverseBranchConvSpec(out_channels=8, branches=bad)


def test_branch_subsets_share_the_full_dbbs_deploy_table_key_but_not_its_train_key():
    from edgevision.lut import block_key

    def dbb_block(branches, groups=1):
        spec = NetworkSpec(
            name="one-dbb", stem=(ev.blocks.ConvNormActSpec(out_channels=8),),
            stages=(ev.network.StageSpec(blocks=(DiverseBranchConvSpec(out_channels=8, stride=2, groups=groups, branches=branches),)),),
            head=ev.blocks.ClassifierHeadSpec(num_classes=10), input_size=16,
        )
        (block,) = [b for b in ev.resolve(spec) if isinstance(b.spec, DiverseBranchConvSpec)]
        return block

    deploy, train = MeasurementSetting(runtime="ort", threads=2), MeasurementSetting(runtime="ort", threads=2, model_form="train")
    for groups in (1, 8):  # dense and depthwise
        valid = [s for s in SUBSETS if not (groups == 8 and s == ("1x1",))]
        full = block_key(dbb_block(DBB_BRANCHES, groups), deploy)
        assert '"branches"' not in full  # the key the full DBB always had: committed tables stay valid
        assert {block_key(dbb_block(s, groups), deploy) for s in valid} == {full}
        assert len({block_key(dbb_block(s, groups), train) for s in valid}) == len(valid)  # train form: the branches run
    dense, depthwise = block_key(dbb_block(("kxk",)), deploy), block_key(dbb_block(("kxk",), 8), deploy)
    assert dense != depthwise  # fields that survive fusion still count


@pytest.fixture
def latency(tmp_path):
    table = LatencyTable(tmp_path / "lut.sqlite")
    yield LatencyModel(table, MeasurementSetting(runtime="ort", threads=2), measure_block=fake_block_ms)
    table.close()


def test_repnas_ships_a_network_within_both_budgets_that_reparameterizes_equivalently(latency, tiny_data):  # noqa: F811
    result = run(
        TINY_SPACE, "repnas", latency_ms=0.3, table=latency, estimator=lambda spec: 0.5, data=tiny_data, trials=3,
        resolution=16, supernet_epochs=2, steps_per_epoch=2, measure=False, options={"branch_budget": 0.5, "batch_size": 16},
    )
    details = result.details
    layers = details["branches"]
    assert details["branch_budget"]["kept"] == sum(len(b) for b in layers.values()) == round(0.5 * details["branch_budget"]["total"])
    assert all(1 <= len(b) for b in layers.values())
    assert [row["kept_branches"] for row in details["history"]][-1] == details["branch_budget"]["kept"]
    roles = {c.extra["role"]: c for c in result.candidates}
    assert set(roles) == {"searched", "dbb", "kxk_only"}
    searched = roles["searched"].spec
    assert searched.name.startswith("tiny-odbb-") and roles["searched"].predicted_ms <= 0.3
    # a branch subset deploys to the full DBB's conv: priced by its entries, none measured for a subset alone
    assert roles["searched"].predicted_ms == pytest.approx(roles["dbb"].predicted_ms)
    keys = lambda spec: {ev.lut.block_key(b, latency.setting) for b in ev.resolve(spec)}  # noqa: E731
    assert keys(searched) == keys(roles["dbb"].spec) and keys(searched) <= latency.table.keys()
    again = NetworkSpec.from_json(searched.to_json())
    assert again == searched
    kept = [b.spec.branches for b in ev.resolve(again) if isinstance(b.spec, DiverseBranchConvSpec)]
    assert [list(k) for k in kept] == list(layers.values())
    model = ev.build(again).eval()
    randomize_norms(model, seed=1)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        train = model(x)
        deployed = ev.reparameterize(model)
        deploy = deployed(x)
    torch.testing.assert_close(deploy, train, atol=1e-4, rtol=1e-4)
    fused = [m.fused for m in deployed.modules() if isinstance(m, DiverseBranchConv)]
    assert len(fused) == len(layers) and all(isinstance(f, torch.nn.Conv2d) for f in fused)  # one conv per layer
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())


def test_repnas_refuses_a_branch_budget_below_one_per_layer(latency, tiny_data):  # noqa: F811
    with pytest.raises(SearchError, match="at least one per layer"):
        run(TINY_SPACE, "repnas", latency_ms=1.0, table=latency, estimator=lambda spec: 0.5, data=tiny_data, trials=1,
            resolution=16, supernet_epochs=1, steps_per_epoch=1, measure=False, options={"branch_budget": 0.01})
