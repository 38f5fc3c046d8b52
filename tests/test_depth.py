"""Monocular depth (issue 18): FCRN up-projection equivalence and parameter count (Laina et al. 2016),
berHu against a hand computation, the Eigen metrics against numpy, procedural / real / NYU-layout data,
training resume, and the CLI's JSON and bad-input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import edgevision as ev
from edgevision.blocks.up_projection import FastUpConvolution, NaiveUpConvolution, UpProjection, UpProjectionSpec, unpool2x
from edgevision.checkpoint import load, save
from edgevision.cli import main
from edgevision.depth import data as depth_data
from edgevision.depth.data import DepthDataError, NYUDepthFolder, augment_pair, motorcycle_scene, render_scene, write_nyu_layout
from edgevision.depth.loss import berhu_loss
from edgevision.depth.metrics import DepthMetricAccumulator, image_depth_metrics
from edgevision.depth.training import train_depth
from edgevision.models.depth import fcrn

# tiny "photographs" keep the tests off the 2.6 s texture-bank read; the library default is the real bank
TINY_BANK = [np.random.default_rng(i).random((16, 16, 3)).astype(np.float32) for i in range(3)]


def test_unpool_puts_each_value_top_left():
    x = torch.arange(1.0, 5.0).view(1, 1, 2, 2)
    expected = torch.tensor([[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]], dtype=torch.float32)
    assert torch.equal(unpool2x(x)[0, 0], expected)


@pytest.mark.parametrize("size", [(5, 7), (4, 4)])
def test_fast_up_convolution_equals_unpool_then_5x5(size):
    torch.manual_seed(0)
    naive = NaiveUpConvolution(3, 4, bias=True)
    fast = FastUpConvolution(3, 4, bias=True).load_5x5(naive.conv.weight, naive.conv.bias)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected, got = naive(x), fast(x)
    assert got.shape == (2, 4, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(fast.to_5x5(), naive.conv.weight.detach())
    # 25 weights per channel pair in both forms (3x3 + 3x2 + 2x3 + 2x2)
    assert sum(p.numel() for p in fast.parameters()) == sum(p.numel() for p in naive.parameters()) + 3 * 4


def test_up_projection_block_fast_equals_naive():
    torch.manual_seed(0)
    naive = UpProjection(UpProjectionSpec(in_channels=4, out_channels=2, form="naive")).eval()
    fast = UpProjection(UpProjectionSpec(in_channels=4, out_channels=2, form="fast")).eval()
    state = {k: v for k, v in naive.state_dict().items() if not k.startswith(("up.", "projection."))}
    fast.load_state_dict(state, strict=False)
    fast.up.load_5x5(naive.up.conv.weight)
    fast.projection.load_5x5(naive.projection.conv.weight)
    x = torch.randn(1, 4, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), naive(x), atol=1e-5, rtol=1e-5)


def test_fcrn_resnet50_has_the_papers_63_6m_parameters():
    spec = ev.get_spec("fcrn_resnet50")
    with torch.device("meta"):
        model = spec.build()
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 63.6e6) < 0.05e6  # Laina et al. 2016, Sec. 3.1: "63.6 M"
    # by hand: ResNet-50 without fc (25,557,032 - 2,049,000) + 1x1 2048->1024 + BN, per block
    # 2 up-convs (25 C C/2) + 3x3 (C/2)^2 + 3 BN, final 3x3 64->1 + bias
    blocks = sum(2 * 25 * c * (c // 2) + 9 * (c // 2) ** 2 + 3 * 2 * (c // 2) for c in (1024, 512, 256, 128))
    assert count == (25_557_032 - 2_049_000) + 2048 * 1024 + 2 * 1024 + blocks + 9 * 64 + 1
    assert spec.output_size() == (128, 160)  # the paper's 160 x 128 output for the 304 x 228 input


def test_light_variant_output_is_half_resolution_and_round_trips(tmp_path):
    assert "fcrn_mobilenetv2_100" in ev.list_models(task="depth")
    torch.manual_seed(0)
    model = ev.create_model("fcrn_mobilenetv2_100").eval()
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 1, 16, 32) and model.spec.output_size((32, 64)) == (16, 32)
    path = save(model, tmp_path / "m.safetensors", {"task": "depth"})
    with torch.no_grad():
        torch.testing.assert_close(load(path)(x), y)


def test_berhu_matches_hand_computation_on_valid_pixels():
    prediction = torch.tensor([1.1, 1.5, 3.0, 4.0, 100.0])
    target = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0])
    valid = target > 0  # the 100 m residual is invalid and must not set c
    # residuals 0.1, -0.5, 1, 2 -> c = 0.2 * 2 = 0.4; |0.1| <= c; others (x^2 + c^2) / (2c)
    expected = (0.1 + (0.25 + 0.16) / 0.8 + (1 + 0.16) / 0.8 + (4 + 0.16) / 0.8) / 4
    assert berhu_loss(prediction, target, valid).item() == pytest.approx(expected, rel=1e-6)
    assert berhu_loss(target, target).item() == 0.0
    empty = berhu_loss(prediction.requires_grad_(), target, torch.zeros(5, dtype=torch.bool))
    empty.backward()
    assert empty.item() == 0.0


def test_metrics_match_numpy_on_valid_pixels():
    gt = np.array([[0.5, 1.0, 2.0], [4.0, 0.0, np.nan], [12.0, 3.0, 8.0]], dtype=np.float32)
    pred = np.array([[0.6, 0.9, 2.5], [3.0, 5.0, 1.0], [1.0, 0.0001, 9.0]], dtype=np.float32)
    got = image_depth_metrics(torch.from_numpy(pred), torch.from_numpy(gt), 1e-3, 10.0)
    keep = np.isfinite(gt) & (gt > 1e-3) & (gt <= 10.0)
    g, d = gt[keep].astype(np.float64), np.clip(pred[keep], 1e-3, 10.0).astype(np.float64)
    thresh = np.maximum(d / g, g / d)
    expected = {
        "abs_rel": np.mean(np.abs(d - g) / g), "sq_rel": np.mean((d - g) ** 2 / g), "rmse": np.sqrt(np.mean((d - g) ** 2)),
        "rmse_log": np.sqrt(np.mean((np.log(d) - np.log(g)) ** 2)), "log10": np.mean(np.abs(np.log10(d) - np.log10(g))),
        "delta1": np.mean(thresh < 1.25), "delta2": np.mean(thresh < 1.25**2), "delta3": np.mean(thresh < 1.25**3),
    }
    assert got == pytest.approx(expected, rel=1e-6)
    accumulator = DepthMetricAccumulator(1e-3, 10.0)
    accumulator.update(torch.from_numpy(np.stack([pred, pred]))[:, None], torch.from_numpy(np.stack([gt, np.zeros_like(gt)]))[:, None])
    result = accumulator.compute()
    assert result["images"] == 1 and result["skipped_images"] == 1 and result["valid_pixels"] == keep.sum()
    assert result["rmse"] == pytest.approx(expected["rmse"])


def test_ray_casting_is_exact_and_scenes_are_seeded():
    ray = np.array([[0.0, 0.0, 1.0], [0.5, 0.0, 1.0]])
    assert depth_data._hit_plane(ray, 2, 7.0)[0] == 7.0
    assert depth_data._hit_sphere(ray, np.array([0.0, 0.0, 5.0]), 1.0)[0] == pytest.approx(4.0)
    t, axis = depth_data._hit_box(ray, np.array([-1.0, -1.0, 3.0]), np.array([1.0, 1.0, 4.0]))
    assert t[0] == pytest.approx(3.0) and axis[0] == 2
    image, depth, camera = render_scene(3, 24, 32, TINY_BANK)
    again, depth_again, _ = render_scene(3, 24, 32, TINY_BANK)
    assert np.array_equal(image, again) and np.array_equal(depth, depth_again)
    assert not np.array_equal(depth, render_scene(4, 24, 32, TINY_BANK)[1])
    assert image.shape == (24, 32, 3) and np.isfinite(depth).all() and depth.min() > 0.3 and depth.max() < 10
    assert camera.fx == pytest.approx(518.8579 * 32 / 640)


def test_motorcycle_depth_follows_the_middlebury_calibration():
    image, depth, calibration = motorcycle_scene()
    import skimage.data

    disparity = skimage.data.stereo_motorcycle()[2]
    row, col = 250, 370
    assert np.isfinite(disparity[row, col])
    assert depth[row, col] == pytest.approx(994.978 * 0.193001 / (disparity[row, col] + 31.086), rel=1e-5)
    assert image.shape == (500, 741, 3) and (depth[~np.isfinite(disparity)] == 0).all()
    assert 2.0 < depth[depth > 0].min() and depth.max() < 5.1


def test_nyu_layout_round_trip_and_bad_files(tmp_path):
    scenes = [render_scene(i, 24, 32, TINY_BANK)[:2] for i in range(2)]
    write_nyu_layout(tmp_path / "nyu", scenes, split="train")
    folder = NYUDepthFolder(tmp_path / "nyu", "train")
    assert len(folder) == 2
    image, depth = folder[1]
    assert image.shape == (24, 32, 3) and np.abs(depth - scenes[1][1]).max() <= 0.5e-3 + 1e-6
    assert len(NYUDepthFolder(tmp_path / "nyu", "test")) == 2  # no test.txt: the folder is scanned
    (tmp_path / "nyu" / "procedural" / "sync_depth_00001.png").unlink()
    with pytest.raises(DepthDataError, match="does not exist"):
        NYUDepthFolder(tmp_path / "nyu", "train")
    with pytest.raises(DepthDataError, match="has no depth file"):
        NYUDepthFolder(tmp_path / "nyu", "test")
    np.save(tmp_path / "nyu" / "procedural" / "sync_depth_00001.npy", np.full((24, 31), np.nan, dtype=np.float32))
    with pytest.raises(DepthDataError, match="24x32 but its depth .* is 24x31"):
        NYUDepthFolder(tmp_path / "nyu", "test")
    np.save(tmp_path / "nyu" / "procedural" / "sync_depth_00001.npy", np.full((24, 32), np.nan, dtype=np.float32))
    with pytest.raises(DepthDataError, match="non-finite"):
        NYUDepthFolder(tmp_path / "nyu", "test")[1]


def test_augmentation_keeps_image_and_depth_aligned():
    depth = torch.rand(1, 20, 30) * 5 + 1
    image = depth.repeat(3, 1, 1)  # the image *is* the depth, so any misalignment shows
    for seed in range(4):
        generator = torch.Generator().manual_seed(seed)
        out_image, out_depth = augment_pair(image, depth, (12, 16), generator)
        assert out_image.shape == (3, 12, 16) and torch.equal(out_image[0], out_depth[0])
    scaled_image, scaled_depth = augment_pair(image, depth, (20, 30), torch.Generator().manual_seed(0), flip=False, max_scale=2.0)
    assert scaled_depth.max() < depth.max()  # zooming in divides depth by the scale


def test_train_resumes_and_cli_eval_writes_every_metric(tmp_path, capsys):
    scenes = [render_scene(i, 32, 32, TINY_BANK)[:2] for i in range(2)]
    tiny = fcrn("fcrn_tiny", "mobilenetv3_small_075", (16, 8, 8, 8, 8))  # an unregistered spec: the checkpoint carries it
    torch.manual_seed(0)
    model = tiny.build()
    result = train_depth(model, scenes, scenes[:1], epochs=1, batch_size=2, lr=1e-3, crop=(32, 32), min_depth=1e-3, max_depth=10.0,
                         out_dir=tmp_path / "run", log=lambda _: None)
    assert (tmp_path / "run" / "train_state.pt").is_file() and result.final["epoch"] == 1
    again = train_depth(tiny.build(), scenes, scenes[:1], epochs=1, batch_size=2, lr=1e-3, crop=(32, 32),
                        min_depth=1e-3, max_depth=10.0, out_dir=tmp_path / "run", log=lambda _: None)
    assert again.resumed_from_epoch == 1 and again.final == result.final
    assert [json.loads(line)["epoch"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1]
    write_nyu_layout(tmp_path / "nyu", scenes[:2], split="test")
    checkpoint = save(result.model, tmp_path / "m.safetensors", {"task": "depth", "dataset": f"nyu:{tmp_path / 'nyu'}"})
    assert main(["eval", str(checkpoint), "--json", str(tmp_path / "eval.json")]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["task"] == "depth" and report["images"] == 2
    assert {"abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "delta1", "delta2", "delta3"} <= set(report)
    capsys.readouterr()
    (tmp_path / "nyu" / "procedural" / "sync_depth_00000.png").unlink()
    assert main(["eval", str(checkpoint)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "sync_depth_00000.png" in error and "does not exist" in error


def test_cli_train_refuses_bad_depth_input(tmp_path, capsys):
    assert main(["train", "fcrn_mobilenetv2_100", "--task", "depth", "--data", f"nyu:{tmp_path / 'missing'}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "fcrn_mobilenetv2_100", "--task", "depth", "--data", "motorcycle"]) == 2
    assert "evaluation scene" in capsys.readouterr().err
    assert main(["train", "resnet18", "--task", "depth"]) == 2
    assert "not a depth model" in capsys.readouterr().err
    assert main(["train", "fcrn_mobilenetv2_100", "--task", "depth", "--max-depth", "0.0005"]) == 2
    assert "must be greater" in capsys.readouterr().err


def test_depth_model_exports_with_dynamic_height_and_width(tmp_path):
    from edgevision.export import export_onnx

    torch.manual_seed(0)
    model = fcrn("fcrn_tiny", "mobilenetv3_small_075", (16, 8, 8, 8, 8)).build().eval()
    report = export_onnx(model, tmp_path / "depth.onnx", (3, 64, 64), dynamic_hw=True)
    assert report.dynamic_hw and max(report.max_relative_error.values()) < 1e-4
    # the graph's output carries the model's declared name (onnx_output_names), not the classifiers' "logits"
    assert list(report.max_relative_error) == ["depth"]


def _trained_nyu_checkpoint(tmp_path, height: int, width: int):
    """(scenes, train result, checkpoint): a tiny FCRN trained one epoch on 2 NYU-layout frames of height x width at a 32x32 crop,
    saved with the metadata `train --task depth` writes (dataset, training crop, normalisation, depth range); 2 test frames."""
    scenes = [render_scene(i, height, width, TINY_BANK)[:2] for i in range(4)]
    write_nyu_layout(tmp_path / "nyu", scenes[:2], split="train")
    write_nyu_layout(tmp_path / "nyu", scenes[2:], split="test")
    torch.manual_seed(0)
    tiny = fcrn("fcrn_tiny", "mobilenetv3_small_075", (16, 8, 8, 8, 8))
    result = train_depth(tiny.build(), scenes[:2], scenes[2:], epochs=1, batch_size=2, lr=1e-3, crop=(32, 32), min_depth=1e-3, max_depth=10.0,
                         log=lambda _: None)
    checkpoint = save(result.model, tmp_path / "m.safetensors", {"task": "depth", "dataset": f"nyu:{tmp_path / 'nyu'}", "min_depth": 1e-3,
                                                                 "max_depth": 10.0, "preprocess": {"crop": [32, 32], "mean": [0.5] * 3, "std": [0.25] * 3}})
    return scenes, result, checkpoint


def test_cli_deploy_of_a_trained_depth_checkpoint_judges_int8_by_abs_rel(tmp_path, capsys):
    scenes, result, checkpoint = _trained_nyu_checkpoint(tmp_path, 32, 32)
    assert main(["deploy", str(checkpoint), "--max-abs-rel-increase", "0", "--runtimes", "ort", "--no-mixed", "--budget", "0.1", "--out", str(tmp_path / "d")]) == 0
    data = json.loads((tmp_path / "d" / "deploy.json").read_text())
    assert (data["task"], data["metric"], data["budget_option"], data["higher_is_better"]) == ("depth", "abs_rel", "--max-abs-rel-increase", False)
    assert data["input_shape"] == [1, 3, 32, 32] and data["calibration_images"] == 2 and data["metrics_float"]["images"] == 2
    from edgevision.depth.training import evaluate_depth

    expected = evaluate_depth(result.model, scenes[2:], mean=[0.5] * 3, std=[0.25] * 3, min_depth=1e-3, max_depth=10.0)["abs_rel"]
    assert data["metric_float"] == pytest.approx(expected, rel=1e-3)  # the eval path, independently (ORT fp32 vs PyTorch)
    int8 = next(row for row in data["candidates"] if row["label"] == "ort/int8")
    assert int8["metric_change"] == pytest.approx(int8["metric"] - data["metric_float"], abs=1e-5)
    assert int8["verified"] == (int8["metric_change"] <= 0) and "--max-abs-rel-increase" in int8["check"]
    shipped = next(row for row in data["candidates"] if (row["runtime"], row["precision"], row["variant"]) == (data["runtime"], data["precision"], data["variant"]))
    assert shipped["verified"] and (shipped["precision"] == "fp32" or shipped["metric_change"] <= 0)  # an INT8 form (PTQ or mixed) ships only within the budget
    capsys.readouterr()
    assert main(["deploy", str(checkpoint), "--max-drop-db", "0.3", "--out", str(tmp_path / "e")]) == 2
    assert "its budget is --max-abs-rel-increase" in capsys.readouterr().err


def test_cli_deploy_dynamic_size_depth_graph_is_verified_on_other_crops_and_whole_frames(tmp_path):
    from edgevision.deploy.tasks import onnx_forward

    scenes, result, checkpoint = _trained_nyu_checkpoint(tmp_path, 48, 64)
    assert main(["deploy", str(checkpoint), "--dynamic-size", "--max-abs-rel-increase", "1", "--runtimes", "ort", "--no-mixed", "--budget", "0.1",
                 "--out", str(tmp_path / "d")]) == 0
    data = json.loads((tmp_path / "d" / "deploy.json").read_text())
    assert data["dynamic_size"] and data["input_shape"] == [1, 3, 32, 32]
    # 3/4 x 5/4 of the 32x32 crop, and the 48x64 test frames whole
    assert [(row["size"], row["shapes"]) for row in data["size_checks"]] == [("24x40 crops", ["24x40"]), ("whole frames", ["48x64"])]
    fp32 = next(row for row in data["candidates"] if row["label"] == "ort/fp32")
    assert all(row["parity"] <= 1e-4 for row in fp32["size_checks"])
    from edgevision.depth.data import DepthSamples
    from edgevision.depth.training import evaluate_depth

    whole = evaluate_depth(result.model, scenes[2:], mean=[0.5] * 3, std=[0.25] * 3, min_depth=1e-3, max_depth=10.0)["abs_rel"]
    int8 = next(row for row in data["candidates"] if row["label"] == "ort/int8")
    assert int8["size_checks"][1]["float_metric"] == pytest.approx(whole, rel=1e-3)  # whole frames, independently
    image = torch.stack([DepthSamples(scenes[2:3], [0.5] * 3, [0.25] * 3)[0][0]])  # one whole 48x64 frame, normalised
    shipped = onnx_forward(tmp_path / "d" / "model.onnx")(image[..., :40, :56])  # a size nothing was checked at
    with torch.no_grad():
        expected = result.model.eval()(image[..., :40, :56])
    assert shipped.shape == expected.shape and (shipped - expected).abs().max().item() < (1e-3 if data["precision"] == "fp32" else 1.0)


def test_nyu_downsample_by_two_averages_blocks_and_only_valid_depth(tmp_path, capsys):
    from edgevision.depth.data import depth_pairs, downsample_pair

    rng = np.random.default_rng(0)
    image = rng.random((6, 8, 3)).astype(np.float32)
    depth = rng.uniform(1.0, 5.0, (6, 8)).astype(np.float32)
    depth[0:2, 0:2] = 0.0  # a whole Kinect hole: stays invalid
    depth[2, 2] = 0.0  # one missing pixel of its 2x2 block: the other three are averaged
    small_image, small_depth = downsample_pair(image, depth, 2)
    assert small_image.shape == (3, 4, 3) and small_depth.shape == (3, 4)
    np.testing.assert_allclose(small_image[1, 2], image[2:4, 4:6].mean(axis=(0, 1)), rtol=1e-6)
    assert small_depth[0, 0] == 0.0
    assert small_depth[1, 1] == pytest.approx((depth[2, 3] + depth[3, 2] + depth[3, 3]) / 3, rel=1e-6)
    assert small_depth[2, 3] == pytest.approx(depth[4:6, 6:8].mean(), rel=1e-6)
    # through the NYU loader and the CLI: frames halved, the factor recorded and reused by eval
    scenes = [render_scene(i, 64, 88, TINY_BANK)[:2] for i in range(3)]
    write_nyu_layout(tmp_path / "nyu", scenes[:2], split="train")
    write_nyu_layout(tmp_path / "nyu", scenes[2:], split="test")
    _, pairs = depth_pairs(f"nyu:{tmp_path / 'nyu'}", "test", downsample=2)
    assert pairs[0][0].shape == (32, 44, 3) and pairs[0][1].shape == (32, 44)
    torch.manual_seed(0)
    initial = save(fcrn("fcrn_tiny", "mobilenetv3_small_075", (16, 8, 8, 8, 8)).build(), tmp_path / "init.safetensors", {"task": "depth"})
    assert main(["train", str(initial), "--task", "depth", "--data", f"nyu:{tmp_path / 'nyu'}", "--depth-downsample", "2", "--resolution", "32",
                 "--epochs", "1", "--batch-size", "2", "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    checkpoint = str(tmp_path / "run" / "model.safetensors")
    from edgevision.checkpoint import read_metadata

    assert read_metadata(checkpoint)["depth_downsample"] == 2
    valid = {}
    for factor in (None, "1"):
        assert main(["eval", checkpoint, "--json", str(tmp_path / "e.json"), *(["--depth-downsample", factor] if factor else [])]) == 0
        valid[factor] = json.loads((tmp_path / "e.json").read_text())["valid_pixels"]
    assert valid[None] == 32 * 44 and valid["1"] == 64 * 88  # the checkpoint's factor by default; a given one wins
    capsys.readouterr()
    assert main(["train", "fcrn_mobilenetv2_100", "--task", "depth", "--depth-downsample", "2", "--out", str(tmp_path / "p")]) == 2
    error = capsys.readouterr().err
    assert "applies to nyu:DIR frames" in error and error.count("\n") == 1
