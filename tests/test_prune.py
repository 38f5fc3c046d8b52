"""Width surgery on the spec: identity and permutation surgery are exact, kept weights are the source's slices,
the pruned network is an ordinary spec (JSON, checkpoint, count, export), importance, NetAdapt, distillation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import max_relative_error, randomize_batchnorm, test_input_size

import edgevision as ev
from edgevision.prune import FixedWidthSpec, PruneError, groups_of, importance, shrink, widths_for_ratio
from edgevision.prune.netadapt import NetAdaptProgress, netadapt, next_width, settled_latency
from edgevision.prune.staircase import fast_widths, measure_staircase
from edgevision.training.distill import DistillationLoss, kd_loss

# one per block family: inverted residual, shuffle unit, re-parameterizable, attention, grouped bottleneck
REPRESENTATIVE = ("mobilenetv2_050", "shufflenet_v2_x0_5", "repvgg_a0", "levit_128s", "resnext50_32x4d")
NARROW = {"repvgg_a0": 0.25, "resnext50_32x4d": 0.25, "levit_128s": 0.5}


def _model(name: str, size: int | None = None, width: float | None = None) -> ev.Network:
    torch.manual_seed(0)
    spec = ev.get_spec(name).with_classes(10)
    if width is not None:  # narrower copies of the heavy classics: the same blocks, a fraction of the arithmetic
        spec = spec.with_width(width)
    model = ev.build(ev.resolve(spec, input_size=size or test_input_size(name))).eval()
    return randomize_batchnorm(model)


def _permutations(groups) -> dict[str, torch.Tensor]:
    out = {}
    for group in groups:
        size = group.width // group.step
        out[group.name] = torch.cat([torch.randperm(size) + g * size for g in range(group.step)])
    return out


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_permuting_every_group_keeps_the_function_and_30_percent_builds(name):
    model = _model(name, width=NARROW.get(name))
    size = model.resolved.input_size
    x = torch.randn(2, 3, *size)
    groups = [g for g in groups_of(model) if g.prunable]
    assert groups, f"{name}: no prunable channel group"
    with torch.no_grad():
        reference = model(x)
        same = shrink(model, {g.name: g.width for g in groups})(x)  # keep every channel: identity surgery
        permuted = shrink(model, _permutations(groups))(x)
    assert torch.equal(reference, same)
    assert max_relative_error(reference, permuted) < 1e-4
    pruned = shrink(model, widths_for_ratio(groups, 0.3))
    assert ev.count_params(pruned) < 0.85 * ev.count_params(model)
    assert pruned(x).shape == reference.shape


def test_kept_channels_are_the_source_slices_and_removing_them_is_exact():
    model = _model("mobilenetv2_050")
    group = next(g for g in groups_of(model) if g.name == "stages.2.1.mid")  # expand -> depthwise -> project
    keep = torch.tensor([0, 3, 5, 7, 11, 20, 33, 40])
    pruned = shrink(model, {group.name: keep})
    source, target = model.stages[2][1], pruned.stages[2][1]
    assert torch.equal(target.expand.conv.weight, source.expand.conv.weight[keep])
    assert torch.equal(target.depthwise.conv.weight, source.depthwise.conv.weight[keep])
    assert torch.equal(target.project.conv.weight, source.project.conv.weight[:, keep])
    # the dropped channels' contribution removed in the source (their column of the projection zeroed) = the pruned net
    dropped = torch.ones(group.width, dtype=torch.bool)
    dropped[keep] = False
    with torch.no_grad():
        source.project.conv.weight[:, dropped] = 0
        x = torch.randn(2, 3, 64, 64)
        assert max_relative_error(model(x), pruned(x)) < 1e-5


def test_deploy_form_prunes_to_a_deploy_form_with_the_same_function():
    model = _model("repvgg_a0", width=0.25)
    deployed = ev.reparameterize(model)
    groups = [g for g in groups_of(deployed) if g.prunable]
    widths = widths_for_ratio(groups, 0.3)
    scores = importance(model, "l1", [g for g in groups_of(model) if g.name in widths])
    train_pruned = shrink(model, widths, scores)
    deploy_pruned = shrink(deployed, widths, scores)  # same channels kept in both forms
    assert ev.is_deploy_form(deploy_pruned)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert max_relative_error(ev.reparameterize(train_pruned)(x), deploy_pruned(x)) < 1e-4


def test_the_pruned_network_is_an_ordinary_spec(tmp_path):
    model = _model("mobilenetv2_050")
    pruned = shrink(model, widths_for_ratio([g for g in groups_of(model) if g.prunable], 0.3))
    spec = pruned.spec
    assert any(isinstance(b, FixedWidthSpec) for stage in spec.stages for b in stage.blocks)
    assert ev.NetworkSpec.from_json(spec.to_json()) == spec
    rebuilt = ev.build(ev.resolve(spec, input_size=64))
    assert ev.count_params(rebuilt) == ev.count_params(pruned)
    path = ev.save(pruned, tmp_path / "pruned.safetensors")
    loaded = ev.load(path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), pruned(x))
    assert ev.count_macs(loaded, 64) < ev.count_macs(model, 64)


def test_group_constraints_and_errors():
    model = _model("resnet18", width=0.5)
    groups = {g.name: g for g in groups_of(model)}
    assert not groups["head.out"].prunable and "class logits" in groups["head.out"].reason
    # blocks joined by a residual share one width: stage 0's output group spans the stem, the pool and both blocks
    stage0 = groups["stem.0.out"]
    assert {(p, s) for p, s in stage0.members} >= {(2, "in"), (2, "out"), (3, "in"), (3, "out")}
    with pytest.raises(PruneError, match="multiple of 1 in \\[1, 32\\]"):
        shrink(model, {"stem.0.out": 33})
    with pytest.raises(PruneError, match="no channel group"):
        shrink(model, {"stages.9.out": 3})
    grouped = {g.name: g for g in groups_of(_model("shufflenet_v2_x0_5"))}
    assert not grouped["stages.0.0.out"].prunable  # a concatenation with a pass-through half: not one channel per index


def test_importance_criteria():
    model = _model("mobilenetv2_050")
    group = next(g for g in groups_of(model) if g.name == "stages.2.1.mid")
    with torch.no_grad():
        model.stages[2][1].expand.conv.weight[5] *= 100
    assert int(importance(model, "l1", [group])[group.name].argmax()) == 5
    assert int(importance(model, "l2", [group])[group.name].argmax()) == 5
    bn = importance(model, "bn", [group])[group.name]
    block = model.stages[2][1]
    expected = block.expand.norm.weight.abs() + block.depthwise.norm.weight.abs()
    assert torch.allclose(bn, expected.detach())
    a, b = importance(model, "random", [group], seed=1), importance(model, "random", [group], seed=1)
    assert torch.equal(a[group.name], b[group.name])
    batches = [(torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,)))]
    taylor = importance(model, "taylor", [group], batches)[group.name]
    assert taylor.shape == (group.width,) and bool((taylor >= 0).all()) and bool(taylor.any())


def _macs_ms(network) -> float:  # a fake latency: 1 ms per 100k parameters (tests never time anything)
    return ev.count_params(network) / 1e5


def test_netadapt_reaches_the_target_and_names_the_floor():
    model = _model("resnet18", 32, width=0.5)  # 4 channel groups: each step tries 4 proposals
    accuracy = lambda network: 1.0 - 1e-8 * (ev.count_params(model) - ev.count_params(network))
    start = _macs_ms(model)
    result = netadapt(model, _macs_ms, accuracy, target_ratio=0.8, step_fraction=0.5, max_steps=40)
    assert result.reached and result.final_ms <= 0.8 * start and result.steps
    assert all(step.ms_after < step.ms_before for step in result.steps)
    with pytest.raises(PruneError, match="below the floor"):
        netadapt(model, _macs_ms, accuracy, target_ms=1e-3)
    with pytest.raises(PruneError, match=r"in \(0, 1\)"):
        netadapt(model, _macs_ms, accuracy, target_ratio=1.5)


def test_netadapt_resumed_from_a_checkpoint_takes_the_same_steps():
    model = _model("resnet18", 32, width=0.25)
    accuracy = lambda network: 1.0 - 1e-8 * (ev.count_params(model) - ev.count_params(network))
    saved = []
    full = netadapt(model, _macs_ms, accuracy, target_ratio=0.3, step_fraction=0.5, max_steps=40, checkpoint=saved.append)
    assert len(full.steps) >= 2 and len(saved) == len(full.steps) + 1  # the start, then one per accepted step
    after_one = NetAdaptProgress.from_dict(saved[1].model, saved[1].to_dict())  # what edgevision prune writes and reads
    resumed = netadapt(model, _macs_ms, accuracy, target_ratio=0.3, step_fraction=0.5, max_steps=40, resume=after_one)
    assert [s.to_dict() for s in resumed.steps] == [s.to_dict() for s in full.steps]
    assert ev.count_params(resumed.model) == ev.count_params(full.model)


def test_a_resumed_netadapt_remeasures_the_current_model_in_its_own_process():
    """The killed run recorded its times in a fast machine state; the resumed process runs 1.5x slower. Comparing its
    candidates with the recorded time stopped at once ("no narrower width saves time"); re-measured, it continues."""
    model = _model("resnet18", 32, width=0.25)
    accuracy = lambda network: 1.0 - 1e-8 * (ev.count_params(model) - ev.count_params(network))
    saved = []
    netadapt(model, _macs_ms, accuracy, target_ratio=0.3, step_fraction=0.5, max_steps=1, checkpoint=saved.append)
    after_one = NetAdaptProgress.from_dict(saved[1].model, saved[1].to_dict())
    slower = lambda network: 1.5 * _macs_ms(network)
    log = []
    resumed = netadapt(model, slower, accuracy, target_ratio=0.3, step_fraction=0.5, max_steps=40, resume=after_one, log=log.append)
    assert len(resumed.steps) > 1, log
    assert "recorded" in log[0] and resumed.steps[1].ms_before == pytest.approx(1.5 * after_one.current_ms)


def test_the_start_latency_is_the_settled_reading_not_the_first():
    """A process's first reading is inflated (12.5 ms where the network runs 8.2 ms, as measured in `edgevision prune`):
    the target is set from the lower of two readings, and a resumed process re-measures the same way."""
    model = _model("resnet18", 32, width=0.25)
    accuracy = lambda network: 1.0 - 1e-8 * (ev.count_params(model) - ev.count_params(network))
    true_start = _macs_ms(model)

    def cold_first_reading():  # a fake timer: the first call of each "process" reads 1.5x slow
        calls = []

        def latency(network):
            calls.append(network)
            return _macs_ms(network) * (1.5 if len(calls) == 1 else 1.0)

        return latency, calls

    latency, calls = cold_first_reading()
    assert settled_latency(latency, model) == true_start and len(calls) == 2
    latency, calls = cold_first_reading()
    assert settled_latency(latency, model, 1) == pytest.approx(1.5 * true_start)  # one reading: a deterministic source
    latency, _ = cold_first_reading()
    saved = []  # max_steps=0: the start and floor only (each step would shrink and score every group)
    result = netadapt(model, latency, accuracy, target_ratio=0.3, max_steps=0, checkpoint=saved.append)
    assert result.start_ms == true_start and result.target_ms == pytest.approx(0.3 * true_start)
    latency, _ = cold_first_reading()  # the resumed process is cold too
    resumed = netadapt(model, latency, accuracy, target_ratio=0.3, max_steps=0, resume=NetAdaptProgress.from_dict(saved[0].model, saved[0].to_dict()))
    assert resumed.final_ms == true_start  # re-measured settled, not 1.5x
    known = netadapt(model, _macs_ms, accuracy, target_ratio=0.5, max_steps=0, start_ms=2 * true_start)
    assert known.start_ms == 2 * true_start and known.target_ms == pytest.approx(true_start)  # the caller's start reading, as given
    with pytest.raises(PruneError, match="readings must be >= 1"):
        settled_latency(_macs_ms, model, 0)


def test_cli_prunes_to_a_target_predicted_from_the_latency_table(tmp_path, monkeypatch):
    """`prune --table`: every proposal priced as the sum of its blocks' table entries (blocks the table lacks are
    measured into it, here by a fake timer); prune.json says where its milliseconds come from."""
    import importlib

    from edgevision.cli import main
    from edgevision.lut import LatencyTable, MeasurementSetting, block_key
    from edgevision.resolve import resolve
    from helpers import fake_block_latency

    lut_build = importlib.import_module("edgevision.lut.build")  # the module (the package re-exports its build())
    monkeypatch.setattr(lut_build, "measure_block_latency", lambda block, setting, **_: fake_block_latency(block, setting))
    table, out, data = tmp_path / "lut.sqlite", tmp_path / "run", tmp_path / "tiny.npz"
    rng = np.random.default_rng(0)  # 40 images in 4 classes: 8 held out, so scoring a proposal is one small batch
    np.savez(data, images=rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), labels=np.arange(40) % 4)
    argv = ["prune", "resnet18", "--table", str(table), "--runtime", "eager", "--target-ratio", "0.9", "--epochs", "0",
            "--step-steps", "0", "--step-fraction", "0.25", "--data", f"npz:{data}", "--resolution", "32", "--out", str(out)]
    assert main(argv) == 0
    report = json.loads((out / "prune.json").read_text())
    assert report["latency"]["source"] == "table" and report["latency"]["threads"] == 2 and report["reached"]
    setting = MeasurementSetting(runtime="eager", threads=2)
    with LatencyTable(table) as lut:
        def table_sum(spec):
            return sum(lut.get(block_key(block, setting)).median_ms for block in resolve(spec, input_size=32))

        dense = ev.create_model("resnet18", num_classes=4).spec
        assert report["before"]["median_ms"] == pytest.approx(table_sum(dense))
        assert report["after"]["median_ms"] == pytest.approx(table_sum(ev.load(out / "model.safetensors").spec))
        assert report["after"]["median_ms"] <= report["target_ms"] == pytest.approx(0.9 * report["before"]["median_ms"])
        assert report["latency"]["blocks_measured_on_demand"] == len(lut) > len(resolve(dense))
    assert [s["step"] for s in report["steps"]] == list(range(1, len(report["steps"]) + 1))
    assert all(s["ms_after"] < s["ms_before"] for s in report["steps"])


def test_cli_table_refusals(tmp_path, capsys):
    from edgevision.cli import main
    from edgevision.lut import LatencyTable

    base = ["prune", "mobilenetv2_050", "--target-ratio", "0.5", "--epochs", "0", "--resolution", "32", "--out", str(tmp_path / "o")]
    assert main([*base, "--no-build"]) == 2
    assert "give --table FILE as well" in capsys.readouterr().err
    LatencyTable(tmp_path / "empty.sqlite").close()
    assert main([*base, "--table", str(tmp_path / "empty.sqlite"), "--no-build", "--runtime", "eager"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not in latency table" in err and "edgevision lut build" in err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main([*base, "--table", str(tmp_path / "empty.sqlite"), "--predictor", str(tmp_path / "bad.json")]) == 2
    assert "--predictor" in capsys.readouterr().err


def test_staircase_keeps_the_right_edge_of_each_step():
    fake = lambda module, shape: float(-(-module[0].out_channels // 16))  # 16-wide blocking: a staircase
    staircase = measure_staircase(32, range(40, 72, 4), 8, time_ms=fake)
    assert fast_widths(staircase) == [48, 64, 68]
    group = next(g for g in groups_of(_model("mobilenetv2_050", 32)) if g.prunable and g.step == 1)
    assert next_width(group, 70, 0.05, fast_widths(staircase)) == 64


def test_distillation_loss():
    student, teacher = torch.randn(8, 10), torch.randn(8, 10)
    t = 4.0
    manual = (torch.softmax(teacher / t, 1) * (torch.log_softmax(teacher / t, 1) - torch.log_softmax(student / t, 1))).sum(1).mean() * t * t
    assert torch.allclose(kd_loss(student, teacher, t), manual, atol=1e-6)
    assert float(kd_loss(teacher, teacher, t)) == pytest.approx(0.0, abs=1e-6)
    network = _model("mobilenetv2_050", 32)
    loss = DistillationLoss(network, temperature=t, alpha=1.0, feature_stages=(2,)).attach(network)
    x = torch.randn(2, 3, 32, 32)
    assert float(loss(x, network(x), torch.tensor(5.0))) == pytest.approx(0.0, abs=1e-5)  # student == teacher


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    from edgevision.cli import main

    assert main(["prune", "mobilenetv2_050", "--target-ratio", "1.5", "--out", str(tmp_path)]) == 2
    assert "--target-ratio must be in (0, 1)" in capsys.readouterr().err
    other = ev.save(ev.create_model("resnet18", num_classes=10, in_chans=1), tmp_path / "other.safetensors")
    assert main(["prune", "mobilenetv2_050", "--checkpoint", str(other), "--target-ratio", "0.5", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "holds resnet18" in err and len(err.strip().splitlines()) == 1


def test_nm_sparsity_trains_with_sr_ste_and_the_pattern_holds_exactly_in_the_saved_weights(tmp_path):
    from edgevision.prune.sparsity import check_pattern, finalize, parse_pattern, sparse_size_bytes, sparsify

    model = _model("mobilenetv2_050", 32).train()
    layers = sparsify(model, "2:4")
    assert layers
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(1):  # SR-STE: the gradient reaches the dense weights, the mask may move
        loss = model(torch.randn(2, 3, 32, 32)).logsumexp(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    finalize(model)
    loaded = ev.load(ev.save(model, tmp_path / "sparse.safetensors"))
    weights = [m.weight for m in loaded.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 1 and m.in_channels > 3 and m.in_channels % 4 == 0]
    assert weights and all(check_pattern(w, 2, 4) for w in weights)
    assert all(float((w != 0).float().mean()) == pytest.approx(0.5, abs=1e-6) for w in weights)
    sizes = sparse_size_bytes(loaded, (2, 4))
    assert sizes["sparse_bytes"] < 0.6 * sizes["dense_bytes"]
    with pytest.raises(ValueError, match="0 < N < M"):
        parse_pattern("5:4")


def test_sparsify_cli_rejects_a_bad_pattern(tmp_path, capsys):
    from edgevision.cli import main

    assert main(["sparsify", "mobilenetv2_050", "--pattern", "5:4", "--out", str(tmp_path)]) == 2
    assert "0 < N < M" in capsys.readouterr().err
