"""Weight import (edgevision.weights): key maps, safe reading, errors, classifier / stem adaptation, CLI.

No timm or torchvision here: foreign checkpoints are synthesised from our own models renamed with a
key map's inverse (``to_source_layout``); tests/reference/ checks the maps against the real libraries.
"""

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import edgevision as ev
from edgevision.cli import main
from edgevision.registry import model_family
from edgevision.weights import KeyMap, WeightImportError, adapt_input_conv, keymaps_for, map_state_dict, to_source_layout
from edgevision.weights.keymap import BlockIndex


def _random(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def resnet18_torchvision(tmp_path_factory):
    """A torchvision-named resnet18 state dict (from our model), as .safetensors and as a wrapped .pth."""
    folder = tmp_path_factory.mktemp("weights")
    model = _random(ev.create_model("resnet18"))
    state = to_source_layout(model, "torchvision")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "r18.safetensors"))
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / "r18.pth")
    return model, state, folder


def test_keymap_templates_and_conditions():
    keys = ["stages.0.0.a.weight", "stages.0.1.a.weight", "stages.1.0.a.weight", "stages.1.0.se.w"]
    index = BlockIndex(keys)
    keymap = KeyMap("timm", (
        (r"stages\.(\d+)\.(\d+)\.a\.weight", "blocks.{flat(1,2)+1}.x", ("stages.{1}.{2}.se",)),
        (r"stages\.(\d+)\.(\d+)\.a\.weight", "layer{1+1}.{2}.y"),
        (r"stages\.1\.0\.se\.w", None),
    ))
    assert [keymap.source_key(k, index) for k in keys] == ["layer1.0.y", "layer1.1.y", "blocks.3.x", None]
    with pytest.raises(KeyError):
        keymap.source_key("head.fc.weight", index)


def test_import_reproduces_the_model_from_safetensors_and_wrapped_pth(resnet18_torchvision):
    model, _, folder = resnet18_torchvision
    x = torch.randn(1, 3, 32, 32)
    for name in ("r18.safetensors", "r18.pth"):
        fresh = ev.create_model("resnet18")
        report = ev.load_pretrained(fresh, folder / name)  # source inferred from the names
        assert report.source == "torchvision" and report.tensors_mapped == len(model.state_dict())
        assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())
        assert torch.allclose(fresh.eval()(x), model(x))


def test_create_model_pretrained_and_mobilenetv3_conditional_layout(tmp_path):
    # torchvision numbers MobileNetV3 layers inside a block by which ones exist: the conditional rules
    source = _random(ev.create_model("mobilenetv3_small_100"))
    state = to_source_layout(source, "torchvision")
    assert "features.1.block.1.fc1.weight" in state and "features.1.block.2.0.weight" in state  # SE, no expansion
    assert "features.4.block.3.0.weight" in state  # expansion + SE: projection is the 4th layer
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "mbv3.safetensors"))
    model = ev.create_model("mobilenetv3_small_100", pretrained=tmp_path / "mbv3.safetensors", pretrained_source="torchvision")
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(model.eval()(x), source(x))


def test_every_listed_counterpart_has_a_complete_injective_map():
    """Each model a key map names as verified maps every tensor, to distinct source keys."""
    checked = 0
    for name in ("resnet50", "mobilenetv2_140", "mobilenetv3_large_100", "mnasnet_a1", "densenet121"):
        with torch.device("meta"):
            keys = list(ev.create_model(name).state_dict())
        for source, keymap in keymaps_for(model_family(name)).items():
            if name not in keymap.upstream:
                continue
            index = BlockIndex(keys)
            theirs = [keymap.source_key(k, index) for k in keys]
            stored = [k for k in theirs if k is not None]
            assert len(stored) == len(set(stored)), f"{name} {source}: two tensors map to one source key"
            checked += 1
    assert checked >= 8


def test_mismatches_are_listed_and_nothing_is_loaded(resnet18_torchvision, tmp_path):
    _, state, _ = resnet18_torchvision
    broken = dict(state)
    del broken["layer1.0.conv1.weight"]
    broken["extra.weight"] = torch.zeros(3)
    broken["layer4.1.bn2.bias"] = torch.zeros(7)
    save_file({k: v.contiguous() for k, v in broken.items()}, str(tmp_path / "broken.safetensors"))
    model = ev.create_model("resnet18")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightImportError) as error:
        ev.load_pretrained(model, tmp_path / "broken.safetensors", source="torchvision")
    message = str(error.value)
    assert "1 missing from the file (layer1.0.conv1.weight" in message
    assert "1 unexpected in the file (extra.weight)" in message
    assert "layer4.1.bn2.bias (7,) for stages.3.1.conv2.norm.bias (512,)" in message
    assert "\n" not in message
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(WeightImportError, match="no official key map; sources it loads from: timm, torchvision"):
        ev.load_pretrained(model, tmp_path / "broken.safetensors", source="official")
    with pytest.raises(WeightImportError, match="deploy form"):
        ev.load_pretrained(ev.reparameterize(model), tmp_path / "broken.safetensors")


def test_other_classes_reinitialise_the_classifier_and_other_channels_adapt_the_stem(resnet18_torchvision):
    source, state, folder = resnet18_torchvision
    model = ev.create_model("resnet18", num_classes=10, in_chans=1)
    initial_fc = model.state_dict()["head.classifier.weight"].clone()
    report = ev.load_pretrained(model, folder / "r18.safetensors")
    assert report.classifier_reinitialised and report.stem_adapted and len(report.notes) == 2
    assert torch.equal(model.state_dict()["head.classifier.weight"], initial_fc)
    assert torch.allclose(model.state_dict()["stem.0.conv.weight"], state["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(model.state_dict()["stages.2.0.conv1.conv.weight"], state["layer3.0.conv1.weight"])
    rgb = state["conv1.weight"]
    five = adapt_input_conv(rgb, 5)  # RGB repeated (R G B R G), scaled by 3/5: the mean response is kept
    assert five.shape == (64, 5, 7, 7) and torch.allclose(five[:, 3], rgb[:, 0] * 0.6) and torch.allclose(five[:, :3], rgb * 0.6)


class _Payload:
    """A pickle that would create a file if unpickled (as a real exploit would run code)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_that_carries_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"
    file = tmp_path / "evil.pth"
    with open(file, "wb") as handle:
        pickle.dump({"conv1.weight": _Payload(marker)}, handle, protocol=2)  # torch.save's protocol
    assert not marker.exists()
    with pytest.raises(WeightImportError, match="needs code unpickling to load, which is refused"):
        ev.load_pretrained(ev.create_model("resnet18"), file)
    with open(file, "wb") as handle:
        pickle.dump({"conv1.weight": _Payload(marker)}, handle, protocol=4)
    with pytest.raises(WeightImportError, match="only plain tensor pickles are read"):
        ev.load_pretrained(ev.create_model("resnet18"), file)
    assert not marker.exists()
    (tmp_path / "notes.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightImportError, match="not a readable PyTorch weights file"):  # garbage bytes
        ev.load_pretrained(ev.create_model("resnet18"), tmp_path / "notes.bin")
    torch.save({"lr": 0.1, "epoch": 3}, tmp_path / "optim.pt")
    with pytest.raises(WeightImportError, match="does not hold a state dict"):
        ev.load_pretrained(ev.create_model("resnet18"), tmp_path / "optim.pt")


def test_cli_import_writes_a_loadable_checkpoint_and_a_summary(resnet18_torchvision, tmp_path, capsys):
    source, _, folder = resnet18_torchvision
    out, summary = tmp_path / "r18.safetensors", tmp_path / "r18.json"
    code = main(["weights", "import", str(folder / "r18.pth"), "--model", "resnet18", "--from", "torchvision",
                 "--out", str(out), "--json", str(summary)])
    assert code == 0
    data = json.loads(summary.read_text())
    assert data["model"] == "resnet18" and data["source"] == "torchvision" and data["tensors_mapped"] == 122
    assert data["classifier_reinitialised"] is False
    loaded = ev.load(out)
    x = torch.randn(1, 3, 32, 32)
    assert torch.allclose(loaded(x), source(x))


@pytest.mark.parametrize("arguments, expected", [
    (["missing.pth", "--model", "resnet18"], "does not exist"),
    (["{r18}", "--model", "resnet34"], "does not fit resnet34 as a torchvision checkpoint"),
    (["{r18}", "--model", "resnet18", "--from", "official"], "no official key map"),
    (["{r18}", "--model", "resnet_18"], "unknown model 'resnet_18'"),
    (["{r18}", "--model", "resnet18", "--from", "caffe"], "invalid choice"),
])
def test_cli_errors_exit_2_with_one_line_and_write_nothing(arguments, expected, resnet18_torchvision, tmp_path, capsys):
    _, _, folder = resnet18_torchvision
    out = tmp_path / "out.safetensors"
    argv = ["weights", "import", *[a.replace("{r18}", str(folder / "r18.pth")) for a in arguments], "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert expected in error and error.count("\n") == 1
    assert not out.exists() and not list(tmp_path.iterdir())


def test_library_layout_of_a_release_model_points_to_its_compatible_variant():
    """timm's SE-ResNet-50 has our tensor names and shapes but strides elsewhere: refused, variant named."""
    with pytest.raises(WeightImportError, match=r"seresnet50_timm"):
        ev.weights.map_state_dict(ev.create_model("seresnet50"), {}, source="timm")
    assert "timm" in ev.weights.keymaps_for("senet", "seresnet50_timm")


def test_timm_fbnet_c_keeps_an_expand_conv_at_ratio_one_and_the_release_refuses_its_file():
    """timm's FBNet-C builds every ``ir`` block with a 1x1 expand conv, also at expansion 1 (block 16 and the
    two 24-channel e1 blocks: 288 + 2 x 624 weights); the option is out of the JSON at its default, so the
    release spec's JSON (and the latency-table keys made from it) do not change."""
    from dataclasses import replace

    from edgevision.blocks import InvertedResidualSpec

    plain = InvertedResidualSpec(out_channels=24, expansion_ratio=1)
    assert "expand_at_ratio_one" not in plain.to_json() and "expand_at_ratio_one" not in ev.get_spec("fbnetc_100").to_json()
    kept = replace(plain, expand_at_ratio_one=True)
    assert ev.Spec.from_json(kept.to_json()) == kept and kept.expands and not plain.expands
    timm_layout = ev.create_model("fbnetc_100_timm")
    e1_expands = [m.expand for m in timm_layout.modules() if hasattr(m, "expand") and m.depthwise.conv.in_channels in (16, 24)
                  and m.project.conv.out_channels == m.depthwise.conv.in_channels]
    assert [ev.count_params(m) for m in e1_expands] == [288, 624, 624]
    assert not any(m.bias is not None for m in timm_layout.modules() if isinstance(m, torch.nn.Conv2d))
    with pytest.raises(WeightImportError, match=r"fbnetc_100_timm"):
        map_state_dict(ev.create_model("fbnetc_100"), {}, source="timm")


def test_timm_mobilenetv3_import_carries_its_batchnorm_eps_into_the_spec(tmp_path):
    """timm's PyTorch-trained MobileNetV3 computes with BatchNorm eps 1e-5, our spec (the TF release,
    torchvision) with 1e-3: the same tensors give feature maps ~1e-3 apart, so the import sets timm's eps
    on the model and in its spec; ev.save / ev.load and features_only keep it; torchvision's import does not."""
    from edgevision.builder import build

    name = "mobilenetv3_small_075"
    assert ev.get_spec(name).norm_eps == 1e-3
    timm_model = build(ev.get_spec(name).with_norm_eps(1e-5))  # what timm computes, under our names
    _random(timm_model)
    save_file({k: v.contiguous() for k, v in to_source_layout(timm_model, "timm").items()}, str(tmp_path / "timm.safetensors"))
    model = ev.create_model(name)
    report = ev.load_pretrained(model, tmp_path / "timm.safetensors", source="timm")
    assert report.norm_eps == 1e-5 and any("eps" in note for note in report.notes)
    assert model.spec.norm_eps == 1e-5 and model.resolved.spec.norm_eps == 1e-5
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-5}
    ev.save(model, tmp_path / "ours.safetensors")
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    timm_model.double()
    with torch.no_grad():
        assert torch.equal(model.double().eval()(x), timm_model(x))
        assert torch.equal(ev.load(tmp_path / "ours.safetensors").double().eval()(x), timm_model(x))
        backbone = ev.create_model(name, features_only=True, pretrained=tmp_path / "timm.safetensors", pretrained_source="timm")
        assert backbone.spec.norm_eps == 1e-5
        expected = timm_model.forward_intermediates(x, intermediates_only=True)
        for ours, theirs in zip(backbone.double().eval()(x), expected, strict=True):
            assert torch.equal(ours, theirs)
    # the eps is not cosmetic: the same tensors under our spec's eps give other feature maps
    plain = build(ev.get_spec(name))
    plain.load_state_dict(timm_model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain.double().eval().forward_features(x), timm_model.forward_features(x), rtol=0, atol=1e-6)
    assert keymaps_for("mobilenetv3")["torchvision"].norm_eps is None  # torchvision computes with our 1e-3


@pytest.fixture(scope="module")
def mobileone_official(tmp_path_factory):
    """apple/ml-mobileone's two release files of one model, written from ours through the inverse map:
    the train form (``*_unfused.pth.tar``) and the re-parameterized one (``*.pth.tar``)."""
    folder = tmp_path_factory.mktemp("mobileone")
    train = _random(ev.create_model("mobileone_s0"))
    deploy = ev.reparameterize(train)
    torch.save(to_source_layout(train, "official"), folder / "mobileone_s0_unfused.pth.tar")
    torch.save(to_source_layout(deploy, "official"), folder / "mobileone_s0.pth.tar")
    return train, deploy, folder


def test_mobileone_official_train_file_uses_the_release_names(mobileone_official):
    train, _, folder = mobileone_official
    state = torch.load(folder / "mobileone_s0_unfused.pth.tar", weights_only=True)
    # the release's module names and shapes: stage0 = our stem, stage1..4 = our stages, 4 rbr_conv branches in S0
    assert state["stage0.rbr_conv.0.conv.weight"].shape == (48, 3, 3, 3) and "stage0.rbr_conv.1.conv.weight" not in state
    assert state["stage1.0.rbr_conv.3.bn.running_var"].shape == (48,) and "stage1.1.rbr_scale.conv.weight" not in state  # 1x1: no scale
    assert state["stage1.2.rbr_skip.weight"].shape == (48,) and state["linear.weight"].shape == (1000, 1024)
    model = ev.create_model("mobileone_s0", pretrained=folder / "mobileone_s0_unfused.pth.tar")  # layout inferred
    x = torch.randn(1, 3, 32, 32)
    assert not ev.is_deploy_form(model) and torch.equal(model.eval()(x), train(x))


def test_mobileone_reparameterized_release_file_loads_into_the_deploy_form(mobileone_official, tmp_path, capsys):
    """A file whose branches are merged (``reparam_conv``) cannot become a train form: create_model, features_only
    and the CLI build the deploy form for it; load_pretrained into a train-form model refuses it naming the way."""
    train, deploy, folder = mobileone_official
    file = folder / "mobileone_s0.pth.tar"
    state = torch.load(file, weights_only=True)
    assert state["stage0.reparam_conv.bias"].shape == (48,) and not any("rbr_" in key for key in state)
    x = torch.randn(1, 3, 32, 32)
    model = ev.create_model("mobileone_s0", pretrained=file)
    assert ev.is_deploy_form(model) and torch.equal(model.eval()(x), deploy(x))
    with pytest.raises(ev.weights.DeployFormCheckpoint, match=r"re-parameterized .*ev\.reparameterize\(model\)"):
        ev.load_pretrained(ev.create_model("mobileone_s0"), file)
    into_deploy = ev.reparameterize(ev.create_model("mobileone_s0"))
    with pytest.raises(WeightImportError, match="load only from: official"):
        ev.load_pretrained(into_deploy, file, source="timm")
    report = ev.load_pretrained(into_deploy, file, source="official")
    assert report.form == "deploy" and report.tensors_mapped == len(state) and torch.equal(into_deploy.eval()(x), deploy(x))
    backbone = ev.create_model("mobileone_s0", features_only=True, pretrained=file)
    assert ev.is_deploy_form(backbone)
    for ours, expected in zip(backbone.eval()(x), deploy.forward_intermediates(x, intermediates_only=True), strict=True):
        assert torch.equal(ours, expected)
    out = tmp_path / "s0.safetensors"
    assert main(["weights", "import", str(file), "--model", "mobileone_s0", "--out", str(out)]) == 0
    assert "deploy" in capsys.readouterr().out
    loaded = ev.load(out)
    assert ev.is_deploy_form(loaded) and torch.equal(loaded.eval()(x), deploy(x))


def test_repghostnet_official_release_is_a_training_checkpoint_in_timms_names():
    """ChengpengChen/RepGhost's files are timm-trainer checkpoints ({"state_dict", "state_dict_ema", ...}) with
    the names timm's port kept; the import reads ``state_dict``."""
    model = _random(ev.create_model("repghostnet_050"))
    state = to_source_layout(model, "official")
    assert set(state) == set(to_source_layout(model, "timm"))
    assert "blocks.0.0.ghost1.fusion_bn.0.running_var" in state and "conv_head.bias" in state
    mapped, report = map_state_dict(ev.create_model("repghostnet_050"), state, source="official")
    assert report.source == "official" and all(torch.equal(mapped[k], v) for k, v in model.state_dict().items() if k in mapped)


def test_megvii_shufflenet_v2_release_file_loads_with_its_names(tmp_path):
    """megvii-model/ShuffleNet-Series: a DataParallel checkpoint ({"state_dict": {"module.…"}}) in network.py /
    blocks.py's names (first_conv, features.N.branch_main / branch_proj, conv_last, classifier.0); the zoo model is
    that release's structure, so the logits are ours exactly. The torchvision-layout variant has no such map."""
    model = _random(ev.create_model("shufflenet_v2_x0_5"))
    state = to_source_layout(model, "official")
    assert state["first_conv.0.weight"].shape == (24, 3, 3, 3) and state["classifier.0.weight"].shape == (1000, 1024)
    assert state["features.0.branch_proj.2.weight"].shape == (24, 24, 1, 1)  # the first unit's left branch keeps its input width
    assert state["features.5.branch_main.5.weight"].shape == (48, 48, 1, 1) and "features.5.branch_proj.0.weight" not in state
    assert state["features.15.branch_main.6.running_var"].shape == (96,) and "features.16.branch_main.0.weight" not in state  # 4 + 8 + 4 units
    assert state["conv_last.1.running_mean"].shape == (1024,) and "classifier.0.bias" not in state
    file = tmp_path / "ShuffleNetV2.0.5x.pth.tar"
    torch.save({"state_dict": {f"module.{key}": value for key, value in state.items()}, "epoch": 240}, file)
    loaded = ev.create_model("shufflenet_v2_x0_5", pretrained=file)  # the layout is inferred from the names
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded.eval()(x), model(x))
    assert "official" not in keymaps_for("shufflenet_v2", "shufflenet_v2_x0_5_tv")
    with pytest.raises(WeightImportError, match="no official key map"):
        ev.load_pretrained(ev.create_model("shufflenet_v2_x0_5_tv"), file, source="official")


def test_repvgg_release_train_and_converted_files_load_into_the_train_and_deploy_forms(tmp_path):
    """DingXiaoH/RepVGG: ``RepVGG-A0-train.pth`` (stage0..stage4, rbr_dense / rbr_1x1 / rbr_identity, linear) into the
    train form, and convert.py's output (one biased rbr_reparam per block) into the deploy form."""
    train = _random(ev.create_model("repvgg_a0"))
    deploy = ev.reparameterize(train)
    state = to_source_layout(train, "official")
    assert state["stage0.rbr_dense.conv.weight"].shape == (48, 3, 3, 3) and "stage0.rbr_identity.weight" not in state
    assert state["stage1.0.rbr_1x1.bn.running_var"].shape == (48,) and "stage1.0.rbr_identity.weight" not in state  # stride 2
    assert state["stage1.1.rbr_identity.running_mean"].shape == (48,) and state["stage3.13.rbr_dense.bn.bias"].shape == (192,)
    assert state["stage4.0.rbr_dense.conv.weight"].shape == (1280, 192, 3, 3) and state["linear.bias"].shape == (1000,)
    torch.save(state, tmp_path / "RepVGG-A0-train.pth")
    converted = to_source_layout(deploy, "official")
    assert set(converted) == {f"{name}.rbr_reparam.{t}" for name in ["stage0", *(f"stage{s + 1}.{b}" for s, n in enumerate((2, 4, 14, 1)) for b in range(n))]
                              for t in ("weight", "bias")} | {"linear.weight", "linear.bias"}
    torch.save(converted, tmp_path / "RepVGG-A0-deploy.pth")
    x = torch.randn(2, 3, 64, 64)
    loaded = ev.create_model("repvgg_a0", pretrained=tmp_path / "RepVGG-A0-train.pth")
    assert not ev.is_deploy_form(loaded) and torch.equal(loaded.eval()(x), train(x))
    fused = ev.create_model("repvgg_a0", pretrained=tmp_path / "RepVGG-A0-deploy.pth")
    assert ev.is_deploy_form(fused) and torch.equal(fused.eval()(x), deploy.eval()(x))


def test_edgenext_release_names_differ_from_timms_and_load(tmp_path):
    """mmaaz60/EdgeNeXt: downsample_layers.{0..3} (the stem and the three downsamples), blocks directly in
    stages.{s}.{b} with dwconv / norm / pwconv1 / pwconv2 / gamma, SDTA's xca / norm_xca / gamma_xca; norm + head."""
    model = _random(ev.create_model("edgenext_xx_small"))
    state = to_source_layout(model, "official")
    assert state["downsample_layers.0.0.weight"].shape == (24, 3, 4, 4) and state["downsample_layers.0.1.bias"].shape == (24,)
    assert state["downsample_layers.1.1.weight"].shape == (48, 24, 2, 2) and state["downsample_layers.3.0.weight"].shape == (88,)
    assert state["stages.0.1.dwconv.weight"].shape == (24, 1, 3, 3) and state["stages.0.1.pwconv1.weight"].shape == (96, 24)
    assert state["stages.1.0.dwconv.weight"].shape == (48, 1, 5, 5)  # our stages.1.1: their blocks start after the downsample
    assert state["stages.1.1.pos_embd.token_projection.weight"].shape[0] == 48  # depths 2, 2, 6, 2; one SDTA block per stage 1-3
    assert state["stages.3.1.xca.qkv.weight"].shape == (3 * 168, 168) and state["stages.3.1.gamma_xca"].shape == (168,)
    assert state["norm.weight"].shape == (168,) and state["head.weight"].shape == (1000, 168)
    assert not set(state) & set(to_source_layout(model, "timm"))  # no name in common except by accident
    torch.save({"model": state}, tmp_path / "edgenext_xx_small.pth")
    loaded = ev.create_model("edgenext_xx_small", pretrained=tmp_path / "edgenext_xx_small.pth")
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded.eval()(x), model(x))


def test_efficientformer_release_numbers_stages_and_downsamples_in_one_network_list(tmp_path):
    """snap-research/EfficientFormer: patch_embed.{0,1,3,4}, ``network`` = [stage 0, Embedding, stage 1, ...], the last
    stage's Flat among its blocks, layer_scale_1/2 as plain parameters; norm, head, dist_head."""
    model = _random(ev.create_model("efficientformer_l1"))
    state = {key: value.flatten() if key.endswith(("layer_scale_1", "layer_scale_2")) else value  # the release's 1-D layer scales
             for key, value in to_source_layout(model, "official").items()}
    assert state["patch_embed.0.weight"].shape == (24, 3, 3, 3) and state["patch_embed.4.running_var"].shape == (48,)
    assert state["network.0.2.mlp.norm1.running_mean"].shape == (192,) and "network.0.3.mlp.fc1.weight" not in state  # depths 3, 2, 6, 4
    assert state["network.1.proj.weight"].shape == (96, 48, 3, 3) and state["network.5.norm.weight"].shape == (448,)
    assert state["network.6.2.layer_scale_2"].shape == (448,) and "network.6.3.layer_scale_1" not in state  # slot 3 is the Flat
    assert state["network.6.4.token_mixer.qkv.weight"].shape[1] == 448 and state["network.6.4.norm1.weight"].shape == (448,)
    assert state["dist_head.weight"].shape == (1000, 448) and state["norm.bias"].shape == (448,)
    torch.save({"model": state}, tmp_path / "efficientformer_l1_300d.pth")
    loaded = ev.create_model("efficientformer_l1", pretrained=tmp_path / "efficientformer_l1_300d.pth")
    x = torch.randn(1, 3, 224, 224)
    assert torch.equal(loaded.eval()(x), model(x))


def test_levit_release_puts_attention_and_mlp_in_consecutive_flat_blocks(tmp_path):
    """facebookresearch/LeViT: patch_embed.{0,2,4,6}.c/bn; ``blocks`` one flat Sequential, two slots per block of
    ours (Residual attention ``m.*``, then Residual MLP ``m.0`` / ``m.2``), the AttentionSubsample unwrapped."""
    model = _random(ev.create_model("levit_128s"))
    state = to_source_layout(model, "official")
    assert state["patch_embed.0.c.weight"].shape == (16, 3, 3, 3) and state["patch_embed.6.bn.running_var"].shape == (128,)
    assert state["blocks.0.m.qkv.c.weight"].shape[1] == 128 and state["blocks.1.m.0.c.weight"].shape == (256, 128)
    assert state["blocks.3.m.2.bn.weight"].shape == (128,) and "blocks.4.m.qkv.c.weight" not in state  # depths 2, 3, 4
    assert state["blocks.4.kv.c.weight"].shape[1] == 128 and state["blocks.4.q.1.bn.running_mean"].shape[0] == 128
    assert state["blocks.4.proj.1.c.weight"].shape[0] == 256 and state["blocks.5.m.0.c.weight"].shape == (512, 256)
    # our blocks run 0-1 | 2-5 | 6-10 over the stages (each later stage opens with the subsample): slots 0..21
    assert state["blocks.12.kv.c.weight"].shape[1] == 256 and "blocks.21.m.0.c.weight" in state and "blocks.22.m.qkv.c.weight" not in state
    assert state["head.l.weight"].shape == (1000, 384) and state["head_dist.bn.running_var"].shape == (384,)
    assert state["blocks.0.m.attention_biases"].shape == (4, 196)  # 4 heads, the 14x14 grid's offsets
    torch.save({"model": state}, tmp_path / "LeViT-128S.pth")
    loaded = ev.create_model("levit_128s", pretrained=tmp_path / "LeViT-128S.pth")
    x = torch.randn(1, 3, 224, 224)
    assert torch.equal(loaded.eval()(x), model(x))


def test_nextvit_release_numbers_every_block_in_one_features_list(tmp_path):
    """bytedance/Next-ViT: stem as ours, ``features.N`` over all stages, PatchEmbed ``conv``/``norm`` without an index,
    ``mhca.group_conv3x3``, ``e_mhsa.norm``, ``mlp.conv1/conv2``; ``norm`` and ``proj_head.0``."""
    model = _random(ev.create_model("nextvit_small"))
    state = to_source_layout(model, "official")
    assert state["stem.3.conv.weight"].shape == (64, 64, 3, 3) and state["features.0.patch_embed.conv.weight"].shape == (96, 64, 1, 1)
    assert "features.1.patch_embed.conv.weight" not in state  # 96 -> 96 at stride 1: an identity embed
    assert state["features.3.patch_embed.conv.weight"].shape == (192, 96, 1, 1)  # depths 3, 4, 10, 3: stage 1 opens with a pooled embed
    assert state["features.0.mhca.group_conv3x3.weight"].shape[0] == 96 and state["features.0.mlp.conv1.weight"].shape[:2] == (288, 96)
    assert state["features.6.e_mhsa.norm.running_var"].shape == (192,) and state["features.6.projection.conv.weight"].shape == (64, 192, 1, 1)
    assert "features.19.mlp.conv2.bias" in state and "features.20.norm.weight" not in state
    assert state["norm.running_mean"].shape == (1024,) and state["proj_head.0.weight"].shape == (1000, 1024)
    torch.save({"model": state}, tmp_path / "nextvit_small_in1k_224.pth")
    loaded = ev.create_model("nextvit_small", pretrained=tmp_path / "nextvit_small_in1k_224.pth")
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded.eval()(x), model(x))


def test_hornet_release_layout_is_its_only_source(tmp_path):
    """raoyongming/HorNet (no timm / torchvision counterpart): downsample_layers.{0..3}, stages.{s}.{b} with
    norm1, gnconv.proj_in / dwconv / proj_out / pws.{k}, norm2, pwconv1/2, gamma1/2; norm + head."""
    model = _random(ev.create_model("hornet_tiny_7x7"))
    assert set(keymaps_for("hornet")) == {"official"}
    state = to_source_layout(model, "official")
    assert state["downsample_layers.0.0.weight"].shape == (64, 3, 4, 4) and state["downsample_layers.0.1.weight"].shape == (64,)
    assert state["downsample_layers.2.0.bias"].shape == (128,) and state["downsample_layers.2.1.weight"].shape == (256, 128, 2, 2)
    assert state["stages.0.1.gnconv.pws.0.weight"].shape == (64, 32, 1, 1) and "stages.0.1.gnconv.pws.1.weight" not in state  # order 2
    assert state["stages.2.17.gnconv.pws.2.bias"].shape == (256,) and "stages.2.18.norm1.weight" not in state  # depths 2, 3, 18, 2; order 4
    assert state["stages.3.0.gnconv.dwconv.weight"].shape == (512 + 256 + 128 + 64 + 32, 1, 7, 7) and state["stages.3.1.gamma2"].shape == (512,)
    assert state["stages.1.0.pwconv1.weight"].shape == (512, 128) and state["head.weight"].shape == (1000, 512)
    torch.save({"model": state}, tmp_path / "hornet_tiny_7x7.pth")
    loaded = ev.create_model("hornet_tiny_7x7", pretrained=tmp_path / "hornet_tiny_7x7.pth")
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(loaded.eval()(x), model(x))


def test_a_training_checkpoint_with_moving_average_weights_reads_either_set(tmp_path, capsys):
    """timm-trainer checkpoints (RepGhost's release) hold ``state_dict`` and ``state_dict_ema``: the trained weights by
    default, with a note that the EMA ones exist; ``ema=True`` / ``--ema`` the average; a file without one says so."""
    trained = _random(ev.create_model("repghostnet_050"))
    average = _random(ev.create_model("repghostnet_050"))
    with torch.no_grad():
        for tensor in average.state_dict().values():
            if tensor.is_floating_point():
                tensor.mul_(0.5)
    file = tmp_path / "repghostv2_0_5x.pth.tar"
    torch.save({"epoch": 300, "state_dict": to_source_layout(trained, "official"), "state_dict_ema": to_source_layout(average, "official")}, file)
    x = torch.randn(1, 3, 64, 64)
    model = ev.create_model("repghostnet_050")
    report = ev.load_pretrained(model, file)
    assert torch.equal(model.eval()(x), trained(x)) and any("state_dict_ema" in note and "--ema" in note for note in report.notes)
    report = ev.load_pretrained(model, file, ema=True)
    assert torch.equal(model.eval()(x), average(x)) and any("moving-average" in note for note in report.notes)
    out = tmp_path / "ema.safetensors"
    assert main(["weights", "import", str(file), "--model", "repghostnet_050", "--ema", "--out", str(out)]) == 0
    assert torch.equal(ev.load(out).eval()(x), average(x))
    torch.save({"state_dict": to_source_layout(trained, "official")}, tmp_path / "plain.pth")
    capsys.readouterr()
    assert main(["weights", "import", str(tmp_path / "plain.pth"), "--model", "repghostnet_050", "--ema", "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert "holds no moving-average weights" in err and "state_dict" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.safetensors").exists()
