"""Feature pyramids, output_stride (dilation), backbone-only specs, dynamic-size export, reset_classifier."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import onnx
import pytest
import torch
from helpers import max_relative_error, randomize_batchnorm

import edgevision as ev
from edgevision.export import ExportError, fixed_size_models
from edgevision.features import features_spec
from edgevision.lut.key import MeasurementSetting, block_from_key, block_key

ROOT = Path(__file__).resolve().parents[1]


# ---- feature_info from the resolved spec, registry-wide (no module is built) ---------------------------
@pytest.fixture(scope="module")
def zoo_levels():
    return {name: ev.resolve(ev.get_spec(name)).feature_info() for name in ev.list_models()}


def test_every_zoo_model_has_one_level_per_reduction(zoo_levels):
    assert len(zoo_levels) == len(ev.list_models()) >= 81
    for name, levels in zoo_levels.items():
        resolved = ev.resolve(ev.get_spec(name))
        reductions = [level.reduction for level in levels]
        assert len(levels) >= 3, name
        assert reductions == sorted(set(reductions)), f"{name}: one level per reduction, increasing: {reductions}"
        assert all(r & (r - 1) == 0 for r in reductions), f"{name}: reductions are powers of two: {reductions}"
        for level in levels:
            block = resolved.blocks[level.block]
            assert level.module == block.path and level.channels == block.out_channels, name
            # the last block at its reduction: the next block (if a level candidate) strides
            later = [b for b in resolved.body[level.block + 1 :] if b.section == "stem" or b.stage_index < len(resolved.spec.stages) - resolved.spec.pre_logits_stages]
            assert not later or getattr(later[0].spec, "stride", 1) > 1, f"{name}: {level.module} is not the last block at reduction {level.reduction}"


def test_levels_are_indexed_by_reduction_not_by_stage(zoo_levels):
    # GhostNet has 10 stages, MobileNetV3 stride-1 stages of their own: still one level per reduction.
    # Channels as timm 1.0.31's feature_info (tests/reference/test_features_reference.py checks every model)
    assert [(l.reduction, l.channels) for l in zoo_levels["mobilenetv3_large_100"]] == [(2, 16), (4, 24), (8, 40), (16, 112), (32, 960)]
    assert [l.channels for l in zoo_levels["mobilenetv2_100"]] == [16, 24, 32, 96, 320]  # the 1280 conv is pre-logits
    assert [l.channels for l in zoo_levels["resnet50"]] == [64, 256, 512, 1024, 2048]
    assert [l.module for l in zoo_levels["resnet50"]] == ["stem.0", "stages.0.2", "stages.1.3", "stages.2.5", "stages.3.2"]
    assert len(ev.get_spec("ghostnet_100").stages) == 10 and len(zoo_levels["ghostnet_100"]) == 5
    assert [l.reduction for l in zoo_levels["levit_128s"]] == [2, 4, 8, 16, 32, 64]


def test_feature_maps_have_the_shapes_feature_info_says():
    x = torch.randn(2, 3, 64, 64)
    for name in ("mobilenetv3_small_075", "shufflenet_v2_x0_5", "levit_128s"):
        model = ev.create_model(name, features_only=True).eval()
        info = model.feature_info
        with torch.no_grad():
            maps = model(x)
        assert [tuple(m.shape) for m in maps] == [(2, c, -(-64 // r), -(-64 // r)) for c, r in zip(info.channels(), info.reduction())], name


def test_features_only_cuts_after_the_last_level_and_matches_forward_intermediates():
    torch.manual_seed(0)
    full = randomize_batchnorm(ev.create_model("mobilenetv2_050")).eval()
    backbone = ev.create_model("mobilenetv2_050", features_only=True, out_indices=(1, -2)).eval()
    assert backbone.feature_info.out_indices == (1, 3)
    assert backbone.feature_info.channels() == [16, 48] and backbone.feature_info.reduction() == [4, 16]
    assert backbone.feature_info.module_name() == [full.feature_info.module_name(1), full.feature_info.module_name(3)]
    missing, unexpected = backbone.load_state_dict(full.state_dict(), strict=False)
    assert not missing and unexpected and all(k.startswith(("stages.5", "stages.6", "stages.7", "head")) for k in unexpected)
    assert ev.count_params(backbone) < ev.count_params(full)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        final, intermediates = full.forward_intermediates(x)
        assert torch.equal(final, full.forward_features(x)) and len(intermediates) == 5
        picked = backbone(x)
        assert all(torch.equal(a, b) for a, b in zip(picked, [intermediates[1], intermediates[3]]))
        last_two = full.forward_intermediates(x, indices=2, intermediates_only=True)
        assert [m.shape[1] for m in last_two] == [48, 160]
        early, only = full.forward_intermediates(x, indices=[0], stop_early=True)
        assert torch.equal(early, only[0])


def test_feature_selection_errors_are_clear():
    with pytest.raises(ValueError, match="out of range: there are 5 levels"):
        ev.create_model("mobilenetv2_050", features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="out_indices needs features_only=True"):
        ev.create_model("mobilenetv2_050", out_indices=(1,))
    with pytest.raises(ValueError, match="output_stride must be 8, 16 or 32"):
        ev.create_model("mobilenetv2_050", output_stride=4)


# ---- output_stride: dilation in the resolved spec --------------------------------------------------
def test_output_stride_is_in_the_resolved_spec():
    resolved = ev.resolve(ev.get_spec("resnet18").with_output_stride(8))
    dilations = [(b.path, b.stride, b.dilation) for b in resolved.body if b.section == "stages"]
    # DeepLab's rule: the block that drops its stride keeps the dilation it had; the ones after dilate by it
    assert dilations[4:] == [("stages.2.0", 1, 1), ("stages.2.1", 1, 2), ("stages.3.0", 1, 2), ("stages.3.1", 1, 4)]
    assert [level.reduction for level in resolved.feature_info()] == [2, 4, 8, 8, 8]
    assert resolved.blocks[-3].to_dict()["dilation"] == 2
    assert "dilation" not in ev.resolve(ev.get_spec("resnet18")).blocks[-2].to_dict()  # JSON unchanged at 1
    spec = ev.get_spec("resnet18").with_output_stride(16)
    assert ev.NetworkSpec.from_json(spec.to_json()) == spec and "output_stride" not in ev.get_spec("resnet18").to_json()


@pytest.mark.parametrize("name, width", [("mobileone_s0", 0.25), ("shufflenet_v1_g3_x0_5", 0.5)])
def test_dilated_maps_equal_the_classifier_maps_subsampled_and_reparameterize(name, width):
    """Same weights; at every 2**k-th pixel a dilated network computes what the undilated one does (no SE here).

    A narrow width keeps it cheap; the blocks (MobileOne's 1x1 / identity / kxk branches, ShuffleNet's pooled
    shortcut) are the zoo's.
    """
    torch.manual_seed(0)
    spec = ev.get_spec(name).with_width(width)
    base = randomize_batchnorm(ev.build(features_spec(spec))).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = base(x)
        for output_stride in (16, 8):
            dilated = ev.build(features_spec(spec.with_output_stride(output_stride))).eval()
            dilated.load_state_dict(base.state_dict())  # strict: the state dict is unchanged by dilation
            maps = dilated(x)
            assert maps[-1].shape[-1] == 64 // output_stride
            for small, big in zip(reference, maps):
                step = big.shape[-1] // small.shape[-1]
                assert max_relative_error(small, big[..., ::step, ::step]) < 1e-5
            deployed = ev.reparameterize(dilated)
            assert ev.is_deploy_form(deployed)
            assert max(max_relative_error(a, b) for a, b in zip(maps, deployed(x))) < 1e-5


def test_output_stride_refuses_blocks_tied_to_the_grid():
    with pytest.raises(ValueError, match=r"levit_128s stages\[1\]\[0\]: LevitSubsampleSpec cannot dilate .*attention bias is tied to the token grid"):
        ev.create_model("levit_128s", output_stride=16)
    with pytest.raises(ValueError, match="InceptionModuleSpec cannot dilate.*valid"):
        ev.resolve(ev.get_spec("inception_v3").with_output_stride(16))


def test_latency_table_keys_are_unchanged():
    """Committed tables were built before dilation existed: every key must come back byte-identical."""
    tables = sorted((ROOT / "benchmarks/results/lut").glob("*/lut.sqlite"))
    assert tables
    for table in tables:
        with sqlite3.connect(table) as db:
            keys = [row[0] for row in db.execute("select key from entries")]
        assert keys
        for key in keys:
            block, setting = block_from_key(key)
            assert block.dilation == 1 and block_key(block, setting) == key
    dilated = ev.resolve(ev.get_spec("mobilenetv2_050").with_output_stride(8)).blocks
    block = next(b for b in dilated if b.dilation == 2)
    key = block_key(block, MeasurementSetting())
    assert json.loads(key)["block"]["dilation"] == 2
    again, _ = block_from_key(key)
    assert again.dilation == 2 and again.output_size == block.output_size and block_key(again, MeasurementSetting()) == key
    converted = next(b for b in dilated if b.stride != getattr(b.spec, "stride", 1))
    assert block_from_key(block_key(converted, MeasurementSetting()))[0].output_size == converted.input_size


# ---- backbone-only spec and dynamic-size export -------------------------------------------------------
def test_backbone_only_spec_resolves_builds_counts_exports_and_round_trips(tmp_path):
    spec = ev.get_spec("mobilenetv3_small_075").with_head(None)
    assert ev.NetworkSpec.from_json(spec.to_json()) == spec
    resolved = ev.resolve(spec, input_size=64)
    assert resolved.head is None and resolved.blocks[-1].section == "stages"
    model = randomize_batchnorm(ev.build(spec)).eval()
    classifier = ev.create_model("mobilenetv3_small_075")
    head_params = sum(p.numel() for p in classifier.head.parameters())
    assert ev.count_params(model) == ev.count_params(classifier) - head_params
    x = torch.randn(1, 3, 64, 64)
    assert model(x).shape == (1, 432, 2, 2)
    assert ev.count_macs(model, 64) > 0
    ev.save(model, tmp_path / "backbone.safetensors")
    assert torch.equal(ev.load(tmp_path / "backbone.safetensors")(x), model(x))
    report = ev.export_onnx(model, tmp_path / "backbone.onnx", (3, 64, 64), dynamic_hw=True, simplify=False)
    assert report.dynamic_hw and max(report.max_relative_error.values()) <= 1e-4


def test_dynamic_hw_export_runs_at_other_sizes_in_onnx_runtime(tmp_path):
    import onnxruntime as ort

    model = randomize_batchnorm(ev.create_model("mobilenetv2_050", features_only=True, out_indices=(2, 3, 4))).eval()
    path = tmp_path / "pyramid.onnx"
    report = ev.export_onnx(model, path, (3, 64, 64), dynamic_hw=True, simplify=False)  # verified at 1x64x64 and 2x48x96
    assert report.dynamic_hw and max(report.max_relative_error.values()) <= 1e-4
    graph_input = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in graph_input] == ["batch", "", "height", "width"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        expected = model(x)
    for reference, other in zip(expected, session.run(None, {"input": x.numpy()})):
        assert reference.shape == other.shape and max_relative_error(reference, torch.from_numpy(other)) < 1e-4


def test_dynamic_hw_export_refuses_grid_tied_attention_and_names_the_models(tmp_path):
    with pytest.raises(ExportError, match="levit_128s cannot export with a dynamic height and width") as caught:
        ev.export_onnx(ev.create_model("levit_128s"), tmp_path / "levit.onnx", (3, 64, 64), dynamic_hw=True)
    message = str(caught.value)
    assert "efficientformer_l1" in message and "levit_256" in message and "mobilenetv2_100" not in message
    assert not (tmp_path / "levit.onnx").exists()
    assert set(fixed_size_models()) >= {"levit_128", "levit_128s", "levit_192", "levit_256", "efficientformer_l1"}


def test_cli_features_and_dynamic_export(tmp_path, capsys):
    from edgevision.cli import main

    assert main(["features", "ghostnet_100", "--json", "--output-stride", "16"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert [level["reduction"] for level in payload["levels"]] == [2, 4, 8, 16, 16] and payload["output_stride"] == 16
    assert main(["features", "levit_128s", "--output-stride", "16"]) == 2
    assert "cannot dilate" in capsys.readouterr().err
    assert main(["export", "levit_128s", str(tmp_path / "l.onnx"), "--dynamic-hw", "--input", "3x64x64"]) == 2
    assert "dynamic height and width" in capsys.readouterr().err


# ---- reset_classifier ---------------------------------------------------------------------------------
def test_reset_classifier_keeps_the_network_and_round_trips(tmp_path):
    torch.manual_seed(0)
    model = ev.create_model("mobilenetv3_small_075")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stem = model.stem
    model.reset_classifier(10)
    assert model.stem is stem  # not rebuilt
    after = model.state_dict()
    for name, tensor in before.items():
        if name.startswith("head.classifier"):
            assert after[name].shape[0] == 10
        else:
            assert torch.equal(after[name], tensor), name  # the 1024-wide hidden head layer keeps its weights too
    assert model.spec.head.num_classes == 10 and model.resolved.head.out_channels == 10
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    assert model(x).shape == (2, 10)
    ev.save(model, tmp_path / "ten.safetensors")
    assert torch.equal(ev.load(tmp_path / "ten.safetensors")(x), model(x))
    with pytest.raises(ValueError, match="num_classes >= 1"):
        model.reset_classifier(0)
    with pytest.raises(ValueError, match="has no classifier head"):
        ev.create_model("mobilenetv2_050", features_only=True).reset_classifier(10)


def test_features_spec_is_a_plain_spec():
    spec = features_spec(ev.get_spec("resnet18"), (0,))
    assert spec.stages == () and len(spec.stem) == 1  # the level sits in the stem: nothing after it is built
    assert ev.NetworkSpec.from_json(spec.to_json()) == spec
    assert ev.build(spec)(torch.randn(1, 3, 32, 32))[0].shape == (1, 64, 16, 16)
