"""Registered detectors: published parameter counts, the detector contract (forward / loss /
postprocess), a checkpoint round trip, and the deployed graph with NMS inside checked against PyTorch."""

import pytest
import torch

import edgevision as ev
from edgevision.checkpoint import load, save


def _count(model):
    return sum(p.numel() for p in model.parameters())


def test_ssdlite320_mobilenetv3_large_has_torchvisions_parameter_count():
    assert "ssdlite320_mobilenetv3_large" in ev.list_models(task="detection")
    with torch.device("meta"):
        assert _count(ev.create_model("ssdlite320_mobilenetv3_large")) == 3_440_060  # torchvision, 91 logits


def _targets():
    return [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 30.0, 60.0, 62.0]]), "labels": torch.tensor([0, 2])},
            {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]


def test_ssdlite_mobilenetv2_builds_with_its_heads():
    with torch.device("meta"):
        model = ev.create_model("ssdlite320_mobilenetv2")
    # 4,484,148 at 80 + 1 classes with 6 priors on every level (the paper's TF release: 4.3M, 3 on the first)
    assert _count(model) == 4_484_148
    assert model.backbone.out_channels == [576, 1280, 512, 256, 256, 128]


def test_detector_contract(tmp_path):
    torch.manual_seed(0)
    model = ev.create_model("ssdlite320_mobilenetv3_large", num_classes=3)
    model.set_input_size(64)
    images = torch.randn(2, 3, 64, 64)
    outputs = model(images)
    deltas, logits = outputs
    assert deltas.shape == (2, len(model.priors(64)), 4) and logits.shape == (2, len(model.priors(64)), 4)
    losses = model.loss(outputs, _targets())
    assert set(losses) >= {"loss", "bbox_regression", "classification"} and losses["loss"] > 0
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.head.parameters())
    model.eval()
    detections = model.postprocess(model(images), 64)
    assert len(detections) == 2
    for result in detections:
        assert result["boxes"].shape[1] == 4 and len(result["boxes"]) == len(result["scores"]) == len(result["labels"])
        assert result["labels"].min() >= 0 and result["labels"].max() < 3
        assert (result["boxes"] >= 0).all() and (result["boxes"] <= 64).all()
        assert (result["scores"][:-1] >= result["scores"][1:]).all()
    path = save(model, tmp_path / "ssd.safetensors", metadata={"task": "detection"})
    restored = load(path).eval()
    torch.testing.assert_close(restored(images)[1], model(images)[1])


def test_loss_prefers_the_right_answer():
    """The SSD loss is lower for outputs that encode the targets than for random outputs."""
    torch.manual_seed(0)
    model = ev.create_model("ssdlite320_mobilenetv3_large", num_classes=3)
    model.set_input_size(64)
    target = _targets()[:1]
    priors = model.priors(64)
    from edgevision.detection.boxes import box_iou

    best = box_iou(target[0]["boxes"], priors).argmax(dim=0)
    perfect_deltas = model.coder.encode(target[0]["boxes"][best], priors)[None]
    overlaps = box_iou(target[0]["boxes"], priors).max(dim=0).values
    perfect_logits = torch.full((1, len(priors), 4), -10.0)
    perfect_logits[0, :, 0] = 10.0
    for prior in range(len(priors)):
        if overlaps[prior] >= 0.5:
            perfect_logits[0, prior, :] = -10.0
            perfect_logits[0, prior, target[0]["labels"][best[prior]] + 1] = 10.0
    for box in box_iou(target[0]["boxes"], priors).argmax(dim=1):
        perfect_logits[0, box, :] = -10.0
    good = model.loss((perfect_deltas, perfect_logits), target)["loss"]
    bad = model.loss((torch.randn_like(perfect_deltas), torch.randn_like(perfect_logits)), target)["loss"]
    assert good < 0.5 * bad


def test_export_detector_onnx_api(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgevision.detection.export import export_detector_onnx

    torch.manual_seed(0)
    model = ev.create_model("ssdlite320_mobilenetv3_large", num_classes=2).eval()
    report = export_detector_onnx(model, tmp_path / "det.onnx", image_size=64)
    # the API raises unless the graph holds NonMaxSuppression and ORT selects the same rows as PyTorch
    assert (tmp_path / "det.onnx").is_file() and report["detections_checked"] > 0
    import onnx

    assert "NonMaxSuppression" in {node.op_type for node in onnx.load(str(tmp_path / "det.onnx")).graph.node}


def test_export_command_ships_the_detector_with_nms_unless_raw(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    import onnx

    from edgevision.cli import main

    assert main(["export", "ssdlite320_mobilenetv3_large", str(tmp_path / "det.onnx"), "--input", "3x64x64"]) == 0
    assert "post-processing" in capsys.readouterr().out
    assert "NonMaxSuppression" in {node.op_type for node in onnx.load(str(tmp_path / "det.onnx")).graph.node}
    assert main(["export", "ssdlite320_mobilenetv3_large", str(tmp_path / "det.onnx"), "--input", "3x64x64", "--dynamic-hw"]) == 2
    assert "--raw" in capsys.readouterr().err
    assert main(["export", "ssdlite320_mobilenetv3_large", str(tmp_path / "raw.onnx"), "--input", "3x64x64", "--raw"]) == 0
    assert "NonMaxSuppression" not in {node.op_type for node in onnx.load(str(tmp_path / "raw.onnx")).graph.node}


def test_measure_and_bench_accept_a_detector(tmp_path):
    """`edgevision measure NAME` runs a detector (its spec's input size by default; 64 px here), and
    `bench --models 'ssdlite*'` selects detectors (bench's selection used to see classifiers only). No timing asserted."""
    from bench_helpers import ticking_clock

    from edgevision.bench.selection import select_models
    from edgevision.latency import measure

    assert "ssdlite320_mobilenetv3_large" in select_models(["ssdlite*"])
    assert "ssdlite320_mobilenetv3_large" not in select_models(["*"])  # '*' stays the classifier zoo
    result = measure("ssdlite320_mobilenetv3_large", input_shape=(3, 64, 64), runtime="eager", threads=1,
                     time_budget_s=0.5, clock=ticking_clock(), watch_machine=False)
    assert tuple(result.context.input_shape) == (1, 3, 64, 64) and len(result.latencies_ms) >= 1 and result.context.model == "ssdlite320_mobilenetv3_large"
