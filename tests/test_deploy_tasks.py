"""`edgevision deploy` on dense task models: the TaskEvaluator protocol, task budgets, deploy.json, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import edgevision as ev
from edgevision.cli import main
from edgevision.deploy import deploy
from edgevision.deploy.tasks import TaskEvaluator, TaskMetric, flat_outputs, onnx_forward, task_metric


class _TinyDense(nn.Module):
    """3 -> 4 channels at full resolution: a dense model small enough to export and quantize in a blink."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))

    def forward(self, x):
        return self.body(x)


class _ReferenceErrorEvaluator:
    """A task whose metric is the max |output - PyTorch output| x 1000 (lower is better): exactly 0 for the float model,
    > 0 for an INT8 graph. Not a subclass of anything: the pipeline must go by the protocol alone."""

    task = "toy"
    metric = TaskMetric(name="error", label="max error", higher_is_better=False, budget_option="--max-drop", unit="milli", scale=1.0)
    data = "random 16x16 images"

    def __init__(self, model) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(12, 3, 16, 16, generator=generator)
        self.input_shape = (3, 16, 16)
        with torch.no_grad():
            self.reference = model.eval()(self.images[6:]).numpy()

    def calibration_images(self):
        return self.images[:6]

    def verification_images(self):
        return self.images[6:9]

    def evaluate(self, forward):
        output = forward(self.images[6:])
        return {"error": float(np.abs(np.asarray(output) - self.reference).max() * 1000)}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = _TinyDense().eval()
    with torch.no_grad():  # non-trivial BN statistics, so folding is exercised
        model.body[1].running_mean.uniform_(-0.5, 0.5)
        model.body[1].running_var.uniform_(0.5, 2.0)
    return model


def test_task_metric_change_is_a_drop_or_an_increase_in_budget_units():
    miou = task_metric("segmentation")
    assert (miou.name, miou.budget_option, miou.higher_is_better) == ("miou", "--max-drop", True)
    assert miou.change(0.50, 0.48) == pytest.approx(2.0)  # fractions -> points
    assert task_metric("super-resolution").change(30.0, 29.8) == pytest.approx(0.2)
    abs_rel = task_metric("depth")
    assert abs_rel.budget_option == "--max-abs-rel-increase" and abs_rel.change(0.10, 0.12) == pytest.approx(0.02)
    assert abs_rel.change(0.10, 0.09) < 0  # better than float: a negative change
    assert (task_metric("detection").name, task_metric("detection").scale) == ("mAP", 100.0)
    with pytest.raises(ValueError, match="no deploy evaluator for task 'classification'"):
        task_metric("classification")


def test_deploy_judges_int8_by_the_evaluators_metric_and_budget(tiny, tmp_path):
    evaluator = _ReferenceErrorEvaluator(tiny)
    assert isinstance(evaluator, TaskEvaluator)
    strict = deploy(tiny, tmp_path / "strict", evaluator=evaluator, trained=True, runtimes=("ort",), max_drop=0.0, budget_s=0.1, rounds=1)
    rows = {row["label"]: row for row in strict.data["candidates"]}
    fp32, int8 = rows["ort/fp32"], rows["ort/int8"]
    assert fp32["verified"] and fp32["metric"] < 1e-1  # the float graph reproduces PyTorch (parity check passed too)
    assert int8["metric"] > 0 and int8["metric_change"] == pytest.approx(int8["metric"] - strict.data["metric_float"], abs=1e-6)
    assert int8["verified"] is False and "--max-drop" in int8["check"] and "increase" in int8["check"]
    assert strict.data["precision"] == "fp32" and strict.data["metric"] == "error" and strict.data["task"] == "toy"
    assert strict.data["metric_float"] == 0.0 and strict.data["budget"] == 0.0 and strict.data["higher_is_better"] is False
    written = json.loads((tmp_path / "strict" / "deploy.json").read_text())
    assert written["candidates"] == json.loads(json.dumps(strict.data["candidates"], default=str))
    assert (tmp_path / "strict" / "model.onnx").is_file() and "| ort/int8 |" in (tmp_path / "strict" / "report.md").read_text()

    # same --out: the export and the INT8 graph are reused (the budget is not part of the artifacts' key)
    loose = deploy(tiny, tmp_path / "strict", evaluator=evaluator, trained=True, runtimes=("ort",), max_drop=1e9, budget_s=0.1, rounds=1)
    int8 = next(row for row in loose.data["candidates"] if row["label"] == "ort/int8")
    assert int8["verified"] is True  # the same graph within a budget that admits it (shipped only if also faster)
    shipped = [(row["runtime"], row["precision"], row["variant"]) for row in loose.data["candidates"] if row["shipped"]]
    assert shipped == [(loose.data["runtime"], loose.data["precision"], loose.data["variant"])]


def test_segmentation_deploy_records_miou_of_float_and_int8(tmp_path):
    from test_segmentation import _mask_folder

    from edgevision.segmentation import LRASPPSpec
    from edgevision.segmentation.data import load_mask_folder
    from edgevision.segmentation.deploy import SegmentationEvaluator
    from edgevision.segmentation.training import evaluate_segmentation

    _mask_folder(tmp_path / "data", "train", 2)
    _mask_folder(tmp_path / "data", "val", 2)
    train_set, val_set = load_mask_folder(tmp_path / "data", "train"), load_mask_folder(tmp_path / "data", "val")
    torch.manual_seed(0)
    model = LRASPPSpec(name="tiny_lraspp", backbone=ev.get_spec("mobilenetv3_small_100"), low_tap="stages.0.0", high_tap="stages.1.1",
                       num_classes=3, input_size=32).build().eval()
    evaluator = SegmentationEvaluator(train_set, val_set, resolution=32)
    result = deploy(model, tmp_path / "out", evaluator=evaluator, trained=True, runtimes=("ort",), max_drop=100.0, budget_s=0.1, rounds=1)
    data = result.data
    expected = evaluate_segmentation(model, val_set, resolution=32)["miou"]  # independent run of the eval path
    assert data["metric"] == "miou" and data["budget_unit"] == "mIoU points" and data["metric_float"] == pytest.approx(expected)
    assert data["input_shape"] == [1, 3, 32, 32] and data["calibration_images"] == 2
    int8 = next(row for row in data["candidates"] if row["label"] == "ort/int8")
    assert int8["metric_change"] == pytest.approx(100 * (expected - int8["metric"]), abs=1e-4)
    assert int8["verified"] == (int8["metric_change"] <= 100.0)
    shipped = onnx_forward(tmp_path / "out" / "model.onnx")(evaluator.verification_images())
    assert flat_outputs(shipped).size == 2 * 3 * 32 * 32


@pytest.mark.parametrize(
    "argv, message",
    [
        (["lraspp_mobilenet_v3_small", "--max-drop-db", "0.3"], "--max-drop-db does not apply to segmentation model lraspp_mobilenet_v3_small: its budget is --max-drop in mIoU points"),
        (["carn_m", "--max-drop", "0.5"], "its budget is --max-drop-db in dB"),
        (["carn_m", "--max-abs-rel-increase", "0.5"], "--max-abs-rel-increase does not apply to super-resolution model"),
        (["lraspp_mobilenet_v3_small", "--search", "16"], "--search sizes the classifier's mixed-precision search"),
        (["resnet18", "--max-drop-db", "0.3"], "--max-drop-db is a super-resolution (PSNR dB) budget; resnet18 is a classifier"),
        (["carn_m", "--max-drop-db", "-1"], "--max-drop-db must be >= 0"),
    ],
)
def test_cli_budget_flags_must_match_the_task(capsys, tmp_path, argv, message):  # checked before the model is built
    assert main(["deploy", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "deploy.json").exists()


def test_int8_detector_head_ships_composed_with_fp32_nms_and_gives_the_same_detections(tmp_path):
    """One ONNX: the INT8 head feeding the fp32 decode + NonMaxSuppression graph; ORT's detections on it equal the INT8
    head's outputs (ORT) decoded by SSDLite.postprocess in PyTorch, image by image."""
    from dataclasses import replace

    import onnx

    from edgevision.deploy import quantize
    from edgevision.detection.deploy_eval import check_composed, compose_with_postprocess
    from edgevision.export import export_onnx

    torch.manual_seed(0)
    model = ev.create_model("ssdlite320_mobilenetv3_large", num_classes=2).eval()
    # an INT8 head has few distinct scores: a high threshold and a short list keep the kept scores untied
    model.spec = replace(model.spec, score_threshold=0.3, detections_per_image=20)
    with torch.no_grad():  # BN statistics of one batch: varied scores
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None
        model.train()(torch.randn(8, 3, 64, 64))
    model.eval()
    images = torch.randn(6, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    export_onnx(model, tmp_path / "head.onnx", (3, 64, 64), deploy=True)
    quantize(tmp_path / "head.onnx", images[:4], tmp_path / "head.int8.onnx")
    report = compose_with_postprocess(tmp_path / "head.int8.onnx", model, tmp_path / "model.onnx", image_size=64)
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["batch_index", "boxes", "scores", "labels"] and len(graph.input) == 1
    assert report["ops"]["NonMaxSuppression"] == 1 and report["ops"]["QuantizeLinear"] > 50  # INT8 head + NMS, one graph
    check = check_composed(tmp_path / "model.onnx", tmp_path / "head.int8.onnx", model, images, image_size=64)
    assert check["same"] and check["head_outputs_error"] == 0.0 and check["compared_images"] == 6 and check["detections"] > 6
    assert check["max_score_error"] <= 1e-6 and check["max_box_error"] <= 1e-3

    # the check can fail: the fp32 head composed with NMS is not what the INT8 head + postprocess gives
    compose_with_postprocess(tmp_path / "head.onnx", model, tmp_path / "fp32.onnx", image_size=64)
    wrong = check_composed(tmp_path / "fp32.onnx", tmp_path / "head.int8.onnx", model, images, image_size=64)
    assert not wrong["same"] and wrong["mismatch"]


class _TinyBackbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1), nn.ReLU()) for i in range(4)
        ])

    def forward(self, x):
        return self.features(x)


class _TinyBackboneDense(nn.Module):
    """A dense model laid out like the task models: backbone.features.{0..3} (4 nodes each) and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _TinyBackbone()
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.head(self.backbone(x))


def test_task_mixed_precision_and_qat_run_under_the_task_budget(tmp_path):
    from edgevision.deploy.mixed import quantizable_units
    from edgevision.export import export_onnx

    torch.manual_seed(0)
    model = _TinyBackboneDense().eval()
    export_onnx(model, tmp_path / "m.onnx", (3, 16, 16), deploy=True)
    import onnx

    graph = onnx.load(str(tmp_path / "m.onnx"))
    assert set(quantizable_units(graph)) == {"backbone", "head"}  # the classifier rule: the whole backbone is one unit
    assert set(quantizable_units(graph, 12)) == {f"backbone.features.{i}" for i in range(4)} | {"head"}

    evaluator = _ReferenceErrorEvaluator(model)
    loose = deploy(model, tmp_path / "loose", evaluator=evaluator, trained=True, runtimes=("ort",), max_drop=1e9, budget_s=0.1, rounds=1,
                   qat_steps=3)
    rows = {row["label"]: row for row in loose.data["candidates"]}
    assert {"ort/int8", "ort/int8/mixed", "ort/int8/qat"} <= set(rows)
    assert rows["ort/int8/qat"]["metric"] > 0 and rows["ort/int8/qat"]["verified"] is True  # judged by the task metric
    ptq_change = rows["ort/int8"]["metric_change"]
    assert ptq_change > 0 and loose.data["qat_steps"] == 3

    # a budget the fully quantized graph misses: the search returns units to float until the task metric is within it
    budget = ptq_change / 2
    strict = deploy(model, tmp_path / "strict", evaluator=evaluator, trained=True, runtimes=("ort",), max_drop=budget, budget_s=0.1, rounds=1,
                    precisions=("fp32", "int8"))
    plan = strict.data["mixed_precision"]
    assert "max error" in plan["criterion"] and plan["full_change"] == pytest.approx(ptq_change, rel=1e-3)
    assert {unit["name"] for unit in plan["units"]} == {f"backbone.features.{i}" for i in range(4)} | {"head"}
    assert plan["met"] and plan["mixed_change"] <= budget and plan["kept_float_units"]
    mixed = next(row for row in strict.data["candidates"] if row["label"] == "ort/int8/mixed")
    assert mixed["verified"] is True and mixed["metric_change"] == pytest.approx(plan["mixed_change"], abs=1e-6)
    assert "## Mixed precision" in (tmp_path / "strict" / "report.md").read_text()


def test_op_report_finds_the_float_islands_of_an_int8_graph(tmp_path):
    """Conv -> HardSwish -> Conv: ORT has no integer hard-swish, so the INT8 graph runs it in fp32 between DQ and Q."""
    from edgevision.deploy import quantize
    from edgevision.deploy.ops import op_report
    from edgevision.export import export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Hardswish(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    export_onnx(model, tmp_path / "m.onnx", (3, 16, 16), deploy=True)
    quantize(tmp_path / "m.onnx", torch.randn(4, 3, 16, 16), tmp_path / "m.int8.onnx")
    fp32, int8 = op_report(tmp_path / "m.onnx", runs=2), op_report(tmp_path / "m.int8.onnx", runs=2)
    assert fp32["float_islands"] == {} and fp32["integer_ms"] == 0 and "QLinearConv" not in fp32["ops"]
    assert int8["ops"]["QLinearConv"]["nodes"] == 3  # every conv runs in integer kernels (the ReLU folds into its conv)
    assert set(int8["float_islands"]) & {"HardSwish", "HardSigmoid"} and "Relu" not in int8["float_islands"]
    assert int8["ops"]["QuantizeLinear"]["nodes"] >= 2 and int8["total_ms"] > 0


# ---- deploy --dynamic-size (super-resolution, depth) ----------------------------------------------------------------
def test_dynamic_size_sr_deploy_ships_a_free_size_graph_verified_at_other_sizes(tmp_path):
    import onnx

    from edgevision.super_resolution import CARNSpec
    from edgevision.super_resolution.data import bundled_pairs, make_pair
    from edgevision.super_resolution.int8 import SREvaluator, mean_psnr

    torch.manual_seed(0)
    model = CARNSpec(name="tiny_carn", channels=8, blocks=1, units=1, scale=2, scales=(2,)).build().eval()
    generator = torch.Generator().manual_seed(0)
    calibration = [make_pair(f"c{i}", torch.rand(3, 40, 40, generator=generator), 2) for i in range(4)]
    evaluation = bundled_pairs(2, limit=3, max_side=48)  # LR 24x24
    evaluator = SREvaluator(calibration, evaluation, size=16, scale=2)
    result = deploy(model, tmp_path / "out", evaluator=evaluator, trained=True, runtimes=("ort",), max_drop_db=50.0, mixed=False,
                    budget_s=0.1, rounds=1, dynamic_size=True)
    data = json.loads((tmp_path / "out" / "deploy.json").read_text())
    assert data["dynamic_size"] and not data["input_size_fixed"] and data["input_shape"] == [1, 3, 16, 16]
    assert [(row["size"], row["shapes"]) for row in data["size_checks"]] == [("12x20 crops", ["12x20"]), ("whole images", ["24x24"])]
    dims = onnx.load(str(tmp_path / "out" / "model.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, True, False, False]  # N x 3 x H x W: H and W free
    by_label = {row["label"]: row for row in data["candidates"]}
    fp32, int8 = by_label["ort/fp32"], by_label["ort/int8"]
    assert all(row["within"] and row["parity"] <= 1e-4 for row in fp32["size_checks"])
    for row in int8["size_checks"]:  # the task metric at each size, float vs INT8, in the budget's unit
        assert row["change"] == pytest.approx(row["float_metric"] - row["metric"], abs=1e-5) and row["within"] == (row["change"] <= 50.0)
    assert int8["size_checks"][1]["float_metric"] == pytest.approx(mean_psnr(lambda x: model(x), evaluation, 2), abs=1e-3)  # whole images, independently
    # the shipped graph at a size it was never calibrated, timed or checked at: the PyTorch model's output (fp32) or close (INT8)
    lr = torch.rand(1, 3, 13, 29, generator=generator)
    shipped = onnx_forward(tmp_path / "out" / "model.onnx")(lr)
    assert shipped.shape == (1, 3, 26, 58)
    with torch.no_grad():
        error = (shipped - model(lr)).abs().max().item()
    assert error < (1e-4 if data["precision"] == "fp32" else 0.2)
    assert "any H x W" in (tmp_path / "out" / "report.md").read_text() and result.data["size_checks"] == data["size_checks"]
    from edgevision.super_resolution.tiling import onnx_sr_runnable, tiled_super_resolve

    runnable = onnx_sr_runnable(tmp_path / "out" / "model.onnx", model.spec)  # what `upscale --onnx` opens: accepted
    assert tiled_super_resolve(runnable, lr, 2, tile=8, overlap=4).shape == (1, 3, 26, 58)


def test_a_candidate_failing_at_another_size_is_not_verified_and_the_check_names_the_size():
    from edgevision.deploy.pipeline import Candidate
    from edgevision.deploy.task_pipeline import _judge_sizes
    from edgevision.deploy.tasks import SizeCheck
    from edgevision.super_resolution.int8 import PSNR

    checks = [SizeCheck("12x20 crops", [torch.zeros(2, 3, 12, 20)], lambda forward: {}), SizeCheck("whole images", [torch.zeros(1, 3, 24, 24)], lambda forward: {})]
    references, outputs = [np.ones(8), np.ones(8)], [np.ones(8), np.full(8, 1.01)]
    candidate = Candidate("ort", "int8", "ptq", "model.onnx", verified=True, check="PSNR within")
    _judge_sizes(candidate, checks, references, outputs, [{"psnr": 30.0}, {"psnr": 31.0}], [{"psnr": 29.9}, {"psnr": 30.2}], metric=PSNR,
                 budget=0.3, trained=True, min_sqnr_db=20.0)
    assert candidate.verified is False and [row["within"] for row in candidate.size_checks] == [True, False]
    assert candidate.check.startswith("PSNR within; but at whole images (24x24): PSNR (Y) drop 0.8 dB > 0.3")
    untrained = Candidate("ort", "int8", "ptq", "model.onnx", verified=True, check="SQNR ok")
    _judge_sizes(untrained, checks, references, outputs, [], [], metric=PSNR, budget=0.3, trained=False, min_sqnr_db=30.0)
    assert untrained.verified is True and untrained.check == "SQNR ok; also within at 12x20 crops, whole images"  # 40 dB >= 30


@pytest.mark.parametrize("argv, message", [
    (["resnet18", "--dynamic-size"], "--dynamic-size is for fully convolutional task models (super-resolution, depth); a classification model"),
    (["lraspp_mobilenet_v3_large", "--dynamic-size"], "a segmentation model's graph keeps its input size here"),
])
def test_dynamic_size_is_refused_for_fixed_size_tasks_before_anything_is_built(capsys, tmp_path, argv, message):
    assert main(["deploy", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o" / "deploy.json").exists()
