"""INT8 deployment: ISA detection, static PTQ in ONNX Runtime, per-block mixed precision, `edgevision deploy`."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import edgevision as ev
from edgevision.cli import main
from edgevision.deploy import CalibrationError, QuantizeError, cpu_features, machine_scheme, mixed_precision, quantize
from edgevision.deploy.calibration import ImageSet
from edgevision.deploy.verify import onnx_logits, sqnr_db
from training_helpers import single_thread, tiny_model  # noqa: F401  (single_thread: autouse fixture)

AVX2_ONLY = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 fma bmi2\n"
VNNI = "model name\t: Intel Xeon\nflags\t\t: sse4_2 avx2 avx512f avx512bw avx512_vnni\n"
AVX_VNNI = "flags\t\t: sse4_2 avx2 avx_vnni\n"
AMX = "flags\t\t: avx2 avx512f avx512bw amx_tile amx_int8\n"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 asimddp\n"


@pytest.mark.parametrize(
    "cpuinfo, architecture, scheme, reduce_range",
    [(AVX2_ONLY, "x86_64", "u8s8_rr", True), (VNNI, "x86_64", "u8s8", False), (AVX_VNNI, "x86_64", "u8s8", False),
     (AMX, "x86_64", "u8s8", False), (ARM, "aarch64", "s8s8", False)],
)
def test_machine_scheme_follows_the_cpu_flags(cpuinfo, architecture, scheme, reduce_range):
    features = cpu_features(cpuinfo, architecture)
    chosen = machine_scheme(features)
    assert (chosen.name, chosen.reduce_range) == (scheme, reduce_range)
    assert features.vnni == (cpuinfo in (VNNI, AVX_VNNI))
    assert features.amx_int8 == (cpuinfo is AMX)
    assert features.avx512 == (cpuinfo in (VNNI, AMX))


class SmallNet(nn.Module):
    """stem conv -> 'bad' 1x1 conv whose channel 0 is 1e4x the rest -> pool -> linear that undoes it.

    In float the outlier channel is harmless (the classifier scales it back); quantized per tensor,
    its range swamps the other channels (they round to zero), so 'bad' and its reader ruin top-1.
    """

    def __init__(self, outlier: float = 1e4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.bad = nn.Conv2d(8, 8, 1)
        self.head = nn.Linear(8, 4)
        with torch.no_grad():
            self.bad.weight[0] *= outlier
            self.bad.bias[0] *= outlier
            self.head.weight[:, 0] /= outlier
            self.head.bias.zero_()  # logits then depend on the image, not on a bias that picks one class

    def forward(self, x):
        return self.head(self.bad(self.stem(x)).mean((2, 3)))  # (B, 3, 16, 16) -> (B, 4)


@pytest.fixture(scope="module")
def float_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("deploy") / "small.onnx"
    ev.export_onnx(SmallNet(outlier=1.0), path, (3, 16, 16), deploy=False)
    return path


def _images(count, seed=0, shape=(3, 16, 16)):
    """Noise plus a random offset per image and channel, so pooled features (and the class) vary between images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((count, *shape), generator=generator) + 2 * torch.randn((count, shape[0], 1, 1), generator=generator)


def test_ptq_writes_qdq_that_ort_runs_in_int8_close_to_float(float_onnx, tmp_path):
    report = quantize(float_onnx, _images(16), tmp_path / "small.int8.onnx", scheme="u8s8_rr")
    graph = onnx.load(report.path).graph
    assert report.quantize_linear_nodes > 0 and report.dequantize_linear_nodes > 0
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in graph.node}
    assert report.scheme.reduce_range and report.per_channel
    # ONNX Runtime fuses DQ -> Conv -> Q into integer kernels: look at the graph it actually runs
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(report.path, options, providers=["CPUExecutionProvider"])
    assert "QLinearConv" in {node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node}
    test = _images(32, seed=1)
    reference, quantized = onnx_logits(float_onnx, test), onnx_logits(report.path, test)
    assert sqnr_db(reference, quantized) > 25.0  # 8-bit: noise well under a twentieth of the signal
    assert (reference.argmax(1) == quantized.argmax(1)).mean() >= 0.9


@pytest.mark.parametrize(
    "images, message",
    [(_images(4, shape=(3, 8, 8)), r"are 3x8x8 \(CxHxW\) but the model takes 3x16x16"),
     (_images(4, shape=(1, 16, 16)), r"are 1x16x16 \(CxHxW\) but the model takes 3x16x16"),
     (torch.empty(0, 3, 16, 16), "the set is empty")],
)
def test_bad_calibration_images_are_refused(float_onnx, tmp_path, images, message):
    with pytest.raises(CalibrationError, match=message):
        quantize(float_onnx, images, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_calibration_from_any_loader_is_preprocessed_and_disjoint_from_verification():
    from training_helpers import toy_splits

    from edgevision.deploy import deploy_splits

    data = toy_splits(count=48, size=8)
    splits = deploy_splits(data, (3, 16, 16), calibration=8, search=8, verification=24)
    assert splits.calibration.images.shape == (8, 3, 16, 16)  # grey 8x8 -> the model's RGB 16x16
    assert splits.calibration.images.dtype == torch.float32 and abs(float(splits.calibration.images.mean())) < 3
    assert len(splits.verification) == 24 and splits.verification.source.startswith("toy/val")
    flat = lambda s: {tuple(row.flatten()[:16].tolist()) for row in s.images}  # noqa: E731
    assert not flat(splits.calibration) & flat(splits.search)  # two different sets of training images
    with pytest.raises(CalibrationError, match="empty"):
        deploy_splits(data, (3, 16, 16), calibration=0)


def test_qat_without_trained_weights_is_refused_before_any_work(tmp_path, capsys):
    # it used to be ignored silently: a deploy by name has random weights, so QAT had nothing to keep
    assert main(["deploy", "mobilenetv2_050", "--qat", "5", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "--qat 5 needs trained weights" in error and "--checkpoint" in error and not (tmp_path / "out").exists()


def test_a_file_that_is_not_an_onnx_model_is_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all \x00\xff")
    with pytest.raises(QuantizeError, match="is not a valid ONNX model"):
        quantize(junk, _images(2), tmp_path / "out.onnx")


def test_mixed_precision_keeps_the_outlier_block_in_float(tmp_path):
    model = SmallNet()
    path = tmp_path / "bad.onnx"
    ev.export_onnx(model, path, (3, 16, 16), deploy=False)
    search_images = _images(64, seed=2)
    with torch.no_grad():
        labels = model(search_images).argmax(1)  # float top-1 is 100% by construction
    assert len(torch.unique(labels)) >= 3
    full = quantize(path, _images(16), tmp_path / "full.onnx")
    assert (onnx_logits(full.path, search_images).argmax(1) == labels.numpy()).mean() < 0.5  # quantizing everything ruins it
    plan = mixed_precision(
        path, ImageSet(_images(16), None, "calibration"), ImageSet(search_images, labels, "search"), tmp_path / "mixed.onnx",
        max_drop=2.0, latency_aware=False,
    )
    decisions = {unit.name: unit.decision for unit in plan.units}
    # 'bad' and the classifier that reads its output stay in float; the harmless stem is quantized
    assert decisions["bad"] == decisions["head"] == "float: accuracy"
    assert decisions["stem"] == "int8"
    drops = {unit.name: unit.drop_alone for unit in plan.units}
    assert drops["bad"] > 20.0 and drops["stem"] <= 2.0
    assert plan.met and plan.mixed_search_top1 >= 98.0 and plan.full_search_top1 < 50.0
    assert any(node.startswith("/bad/") for node in plan.kept_float_nodes)
    assert not any(node.startswith("/stem/") for node in plan.kept_float_nodes)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("deploy_ckpt") / "tiny.safetensors"
    ev.save(tiny_model(num_classes=10), path, {"dataset": "default", "preprocess": {"resolution": 16, "mean": [0.13], "std": [0.31]}})
    return path


def test_deploy_cli_end_to_end_writes_the_fastest_verified_form(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["deploy", "tiny", "--checkpoint", str(checkpoint), "--runtimes", "ort", "--no-mixed", "--calibration", "16",
                 "--verification", "64", "--budget", "0.6", "--threads", "1", "--max-drop", "100", "--qat", "3", "--out", str(out)])
    assert code == 0
    data = json.loads((out / "deploy.json").read_text())
    for key in ("model", "runtime", "precision", "median_ms", "ci_low_ms", "ci_high_ms", "fp32_ort_median_ms", "speedup_vs_fp32_ort",
                "accuracy_float", "accuracy_deployed", "max_drop", "verified", "machine", "versions", "candidates"):
        assert key in data, key
    assert data["model"] == "tiny" and data["verified"] and data["accuracy_verified"]
    assert {row["label"] for row in data["candidates"]} == {"ort/fp32", "ort/int8", "ort/int8/qat"}
    shipped = [row for row in data["candidates"] if row["shipped"]]
    assert len(shipped) == 1 and shipped[0]["median_ms"] == data["median_ms"]
    assert all(row["median_ms"] >= data["median_ms"] for row in data["candidates"] if row["verified"])
    for row in data["candidates"]:  # an INT8 form measured slower than fp32 ORT is never shipped
        if row["precision"] == "int8" and row["median_ms"] >= data["fp32_ort_median_ms"]:
            assert row["rejected"].startswith("measured slower than fp32 ORT") and not row["shipped"]
    fp32 = next(row for row in data["candidates"] if row["precision"] == "fp32")
    assert fp32["verified"] and fp32["parity"] <= 1e-4
    assert data["speedup_vs_fp32_ort"] == pytest.approx(data["fp32_ort_median_ms"] / data["median_ms"])
    assert data["machine"]["fingerprint"] and data["versions"]["onnxruntime"]
    assert (out / "model.onnx").is_file() and "| candidate |" in (out / "report.md").read_text()
    ops = {node.op_type for node in onnx.load(out / "model.onnx").graph.node}
    assert ("QuantizeLinear" in ops) == (data["precision"] == "int8")


def test_a_rerun_by_name_does_not_reuse_the_graph_of_other_random_weights(tmp_path, capsys):
    """A model given by name without a checkpoint gets fresh random weights in every process: the work folder of a
    killed earlier run must not hand the rerun an fp32 graph of other weights (it did: parity 1.9, nothing shipped)."""
    argv = ["deploy", "mobilenetv2_050", "--input-size", "32", "--runtimes", "ort", "--precisions", "fp32", "--no-mixed", "--calibration", "8",
            "--verification", "16", "--budget", "0.2", "--threads", "1", "--out", str(tmp_path / "out")]
    torch.manual_seed(1)
    assert main(argv) == 0
    torch.manual_seed(2)  # another process, other random weights
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "deploy.json").read_text())["verified"]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()  # progress lines may come first; the error is one line, last
    errors = [line for line in lines if line.startswith("edgevision: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in "\n".join(lines), lines
    return errors[0]


def test_deploy_errors_are_one_line(checkpoint, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert "--max-drop must be >= 0" in _error(capsys, ["deploy", "tiny", "--max-drop", "-1", "--out", out])
    assert "calibration set cannot be empty" in _error(capsys, ["deploy", "tiny", "--calibration", "0", "--out", out])
    assert "holds a 'tiny', not a 'resnet18'" in _error(capsys, ["deploy", "resnet18", "--checkpoint", str(checkpoint), "--out", out])
    junk = tmp_path / "junk.onnx"
    junk.write_text("hello")
    assert "is not a valid ONNX model" in _error(capsys, ["deploy", str(junk), "--out", out])


def test_deploy_ships_nothing_when_no_candidate_passes(float_onnx, tmp_path, capsys):
    out = tmp_path / "out"
    line = _error(capsys, ["deploy", str(float_onnx), "--precisions", "int8", "--runtimes", "ort", "--no-mixed", "--min-sqnr", "300",
                           "--calibration", "8", "--verification", "16", "--budget", "0.3", "--threads", "1", "--out", str(out)])
    assert "no candidate passed verification" in line and "output SQNR" in line
    assert not (out / "model.onnx").exists() and not (out / "deploy.json").exists()


def test_fake_quant_fine_tuning_changes_weights_and_leaves_a_plain_module(tmp_path):
    from torch.nn.utils import parametrize

    from edgevision.deploy.qat import onnx_activation_ranges, qat_finetune

    model = tiny_model(num_classes=10)
    result = qat_finetune(model, "default", (1, 16, 16), steps=2, batch_size=16)
    tuned = result.model
    convs = [m for m in tuned.modules() if isinstance(m, nn.Conv2d)]
    assert convs and not any(parametrize.is_parametrized(m) for m in convs) and not any(m._forward_pre_hooks for m in convs)
    assert ev.is_deploy_form(tuned)
    before = ev.reparameterize(model).state_dict()
    assert any(not torch.equal(before[k], v) for k, v in tuned.state_dict().items())
    # the learned input range of the stem conv becomes the ONNX input's fixed quantization range in ORT
    ev.export_onnx(tuned, tmp_path / "qat.onnx", (1, 16, 16), deploy=False)
    ranges = onnx_activation_ranges(tmp_path / "qat.onnx", result.input_ranges)
    assert len(ranges) == len(result.input_ranges) == len(convs) + 1  # every Conv and the classifier
    quantize(tmp_path / "qat.onnx", _images(4, shape=(1, 16, 16)), tmp_path / "qat.int8.onnx", scheme="u8s8", activation_ranges=ranges)
    scales = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(tmp_path / "qat.int8.onnx").graph.initializer}
    low, high = ranges["input"]
    assert float(scales["input_scale"]) == pytest.approx((max(high, 0) - min(low, 0)) / 255, rel=1e-5)


def test_measure_accepts_an_int8_onnx_file(float_onnx, tmp_path, capsys):
    report = quantize(float_onnx, _images(8), tmp_path / "small.int8.onnx")
    assert main(["measure", report.path, "--runtime", "ort", "--threads", "1", "--budget", "0.3", "--json", str(tmp_path / "m.json")]) == 0
    (result,) = json.loads((tmp_path / "m.json").read_text())
    assert result["context"]["model_form"] == "onnx" and result["median_ms"] > 0
    assert result["context"]["dtype"] == "int8"  # the record says what the graph computes in (it said float32)
    assert main(["measure", str(float_onnx), "--runtime", "ort", "--threads", "1", "--budget", "0.3", "--json", str(tmp_path / "f.json")]) == 0
    assert json.loads((tmp_path / "f.json").read_text())[0]["context"]["dtype"] == "float32"
