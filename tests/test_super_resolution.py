"""Super-resolution: the paper counts, re-parameterization, bicubic/metrics against independent
implementations, loaders on generated folders, tiling, checkpoints and the CLI's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import edgevision as ev
from edgevision.checkpoint import load, save
from edgevision.cli import main
from edgevision.counting import count_params
from edgevision.reparam import is_deploy_form, reparameterize
from edgevision.super_resolution import CARNSpec, EFDNSpec, GhostShiftConv, sr_mult_adds
from edgevision.super_resolution.data import SRDataError, load_folder_pairs, load_image, make_pair, random_patches
from edgevision.super_resolution.metrics import prepare_y, psnr_y, ssim_y
from edgevision.super_resolution.resize import imresize, resize_weights
from edgevision.super_resolution.tiling import check_sr_input, tiled_super_resolve

TINY = CARNSpec(name="tiny_carn", channels=8, blocks=1, units=1, scale=2, scales=(2, 3, 4))


# ---- models: the papers' counts ------------------------------------------------------------
@pytest.mark.parametrize("name, paper_params, tolerance", [
    ("carn", 1_592_000, 0.001),    # Ahn et al. 2018 Table 2 (multi-scale model)
    ("carn_m", 412_000, 0.01),     # Table 2; ours 414,787 (the release's layers), 0.7% above
])
def test_carn_parameter_counts_match_the_paper(name, paper_params, tolerance):
    assert abs(count_params(ev.create_model(name)) - paper_params) <= tolerance * paper_params


@pytest.mark.parametrize("name, paper_gmacs", [
    ("carn", {2: 222.8, 3: 118.8, 4: 90.9}),   # Table 2, mult-adds for a 1280x720 SR output
    ("carn_m", {2: 91.2, 3: 46.1, 4: 32.5}),
])
def test_carn_mult_adds_at_720p_match_the_paper(name, paper_gmacs):
    spec = ev.registry.get_spec(name)
    for scale, expected in paper_gmacs.items():
        assert sr_mult_adds(spec.with_scale(scale).build(), (720, 1280)) / 1e9 == pytest.approx(expected, abs=0.1)


def test_efdn_deploy_form_has_the_papers_276k_parameters_and_equals_the_train_form():
    torch.manual_seed(0)
    model = ev.create_model("efdn").eval()
    for module in model.modules():  # make the edge branches matter (their init is 1e-3)
        if hasattr(module, "scale") and isinstance(module.scale, torch.nn.Parameter):
            module.scale.data.normal_()
    deployed = reparameterize(model)
    assert count_params(deployed) == 276_192 and not is_deploy_form(model) and is_deploy_form(deployed)
    x = torch.rand(1, 3, 17, 21)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model(x), atol=1e-4, rtol=1e-4)
    assert deployed(x).shape == (1, 3, 68, 84)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_forward_maps_lr_to_scale_times_larger(scale):
    model = TINY.with_scale(scale).build().eval()
    assert model(torch.rand(2, 3, 7, 9)).shape == (2, 3, 7 * scale, 9 * scale)


def test_a_scale_the_model_was_not_built_for_is_refused():
    with pytest.raises(ValueError, match="not x8"):
        TINY.with_scale(8)
    assert EFDNSpec(name="e").with_scale(2).scales == (2,)  # single-scale: the tail is replaced


def test_ghost_shift_learns_through_gumbel_softmax_and_freezes_to_its_argmax():
    torch.manual_seed(0)
    conv = GhostShiftConv(4, 8)
    x = torch.rand(1, 4, 6, 6)
    conv.train()
    conv(x).sum().backward()
    assert conv.shift_logits.grad is not None and conv.shift_logits.grad.abs().sum() > 0
    conv.eval()
    with torch.no_grad():
        conv.shift_logits.copy_(torch.randn(4, 9))
        eval_out = conv(x)
        intrinsic = conv.primary(x)
        choice = conv.shift_logits.argmax(1)
        for j in range(4):  # ghost j is intrinsic j moved by the chosen offset (zero fill)
            dy, dx = int(choice[j]) // 3 - 1, int(choice[j]) % 3 - 1
            padded = torch.nn.functional.pad(intrinsic[0, j], (1, 1, 1, 1))
            expected = padded[1 + dy: 7 + dy, 1 + dx: 7 + dx]
            torch.testing.assert_close(eval_out[0, 4 + j], expected)
        conv.reparameterize()
        torch.testing.assert_close(conv(x), eval_out)


def test_checkpoints_round_trip_in_train_and_deploy_form(tmp_path):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    for model in (TINY.build().eval(), EFDNSpec(name="e", channels=8).build().eval()):
        for form, m in (("train", model), ("deploy", reparameterize(model))):
            path = save(m, tmp_path / f"{form}.safetensors", {"task": "super-resolution"})
            with torch.no_grad():
                torch.testing.assert_close(load(path)(x), m(x), atol=1e-5, rtol=1e-5)


# ---- MATLAB bicubic ----------------------------------------------------------------------
def test_bicubic_halving_uses_matlabs_antialiased_weights():
    # imresize(..., 0.5, 'bicubic') taps: the cubic (a = -0.5) stretched x2, at offsets +-0.25, +-0.75, ... (input pixels / 2)
    expected = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]
    np.testing.assert_allclose(resize_weights(16, 8, 0.5)[4, 5:13], expected, atol=1e-12)
    np.testing.assert_allclose(resize_weights(16, 8, 0.5).sum(1), 1.0)


def test_bicubic_downscale_matches_pil_reducing_bicubic_away_from_the_border():
    # PIL's BICUBIC (a = -0.5, support stretched when reducing) is the same filter; it renormalises at
    # the border where MATLAB mirrors, so only interior pixels are compared
    image = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    pil = np.asarray(Image.fromarray(image, mode="F").resize((12, 16), Image.BICUBIC))
    np.testing.assert_allclose(imresize(image, 0.25)[2:-2, 2:-2], pil[2:-2, 2:-2], atol=1e-5)


def test_bicubic_upscale_reproduces_quadratics_exactly_in_the_interior():
    ramp = np.tile(np.arange(20.0)[None], (8, 1)) ** 2  # Keys' a = -0.5 cubic is exact for degree <= 2
    centres = (np.arange(60) + 0.5) / 3 - 0.5
    np.testing.assert_allclose(imresize(ramp, 3)[4, 6:-6], centres[6:-6] ** 2, atol=1e-9)
    assert np.allclose(imresize(np.full((9, 7), 0.3), 1 / 3), 0.3)  # mirrored border keeps constants


# ---- metrics ---------------------------------------------------------------------------------
def test_psnr_and_ssim_on_y_match_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    torch.manual_seed(0)
    hr = torch.rand(3, 40, 36)
    sr = (hr + 0.05 * torch.randn_like(hr)).clamp(0, 1)
    y_hr, y_sr = prepare_y(hr, 4).numpy(), prepare_y(sr, 4).numpy()
    assert y_hr.shape == (32, 28)
    assert psnr_y(sr, hr, 4) == pytest.approx(peak_signal_noise_ratio(y_hr, y_sr, data_range=255), abs=1e-9)
    reference = structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ssim_y(sr, hr, 4) == pytest.approx(reference, abs=1e-9)
    assert ssim_y(hr, hr, 4) == pytest.approx(1.0) and psnr_y(hr, hr, 4) == float("inf")


# ---- data --------------------------------------------------------------------------------------
def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_folder_layouts_pair_hr_with_lr(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (26, 34, 3), dtype=np.uint8)  # 26x34 -> modcrop x4 -> 24x32 -> LR 6x8
    lr = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    _png(tmp_path / "div2k/DIV2K_valid_HR/0801.png", hr)
    _png(tmp_path / "div2k/DIV2K_valid_LR_bicubic/X4/0801x4.png", lr)
    _png(tmp_path / "set5/HR/baby.png", hr)
    _png(tmp_path / "set5/LR_bicubic/X4/babyx4.png", lr)
    _png(tmp_path / "set14/GTmod12/zebra.png", hr)
    _png(tmp_path / "set14/LRbicx4/zebra.png", lr)
    _png(tmp_path / "urban/image_SRF_4/img_001_SRF_4_HR.png", hr)
    _png(tmp_path / "urban/image_SRF_4/img_001_SRF_4_LR.png", lr)
    for folder, name in (("div2k", "0801"), ("set5", "baby"), ("set14", "zebra"), ("urban", "img_001_SRF_4")):
        (pair,) = load_folder_pairs(tmp_path / folder, 4)
        assert pair.name == name and pair.hr.shape == (3, 24, 32)
        torch.testing.assert_close(pair.lr, torch.from_numpy(lr).permute(2, 0, 1).float() / 255)
    _png(tmp_path / "plain/a.png", hr)  # no LR given: made by bicubic
    (pair,) = load_folder_pairs(tmp_path / "plain", 4)
    torch.testing.assert_close(pair.lr, make_pair("a", pair.hr, 4).lr)
    _png(tmp_path / "set5/LR_bicubic/X3/babyx3.png", lr)  # the x4 LR filed under X3: wrong size for x3
    with pytest.raises(SRDataError, match="x3 set"):
        load_folder_pairs(tmp_path / "set5", 3)
    with pytest.raises(SRDataError, match="no image_SRF_2"):
        load_folder_pairs(tmp_path / "urban", 2)


def test_sixteen_bit_and_gray_pngs_load_to_unit_range(tmp_path):
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    image = load_image(tmp_path / "deep.png")
    assert image.shape == (1, 8, 8) and image.max().item() == pytest.approx(63000 / 65535)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(SRDataError, match="not a readable image"):
        load_image(tmp_path / "bad.png")


def test_random_patches_are_aligned_crops():
    hr = torch.rand(3, 40, 48)
    pair = make_pair("x", hr, 4)
    lr, hr_patches = random_patches([pair], 6, 4, 3, torch.Generator().manual_seed(0))
    assert lr.shape == (3, 3, 6, 6) and hr_patches.shape == (3, 3, 24, 24)
    # each LR patch is the bicubic image of its HR patch up to the crop's border effects: compare centres
    for a, b in zip(lr, hr_patches):
        down = imresize(b.double(), 0.25).float()
        assert (a[:, 2:-2, 2:-2] - down[:, 2:-2, 2:-2]).abs().max() < 2 / 255


# ---- tiling --------------------------------------------------------------------------------------
def test_tiled_output_equals_the_untiled_one_when_the_overlap_covers_the_receptive_field():
    torch.manual_seed(0)
    model = TINY.build().eval()
    lr = torch.rand(1, 3, 37, 29)
    with torch.no_grad():
        whole = model(lr)
        tiled = tiled_super_resolve(model, lr, 2, tile=12, overlap=8)  # receptive radius: 6 LR pixels
        cut = tiled_super_resolve(model, lr, 2, tile=12, overlap=0)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)
    assert (cut - whole).abs().max() > 1e-3  # without context the seams differ: the test can fail


def test_sr_input_checks_name_the_problem():
    spec = EFDNSpec(name="efdn")
    with pytest.raises(ValueError, match="minimum input 15x15"):
        check_sr_input(spec, 3, 10, 40)
    with pytest.raises(ValueError, match="3-channel"):
        check_sr_input(spec, 1, 40, 40)
    with pytest.raises(ValueError, match="smaller than --tile"):
        check_sr_input(spec, 3, 40, 40, tile=16, overlap=16)


# ---- CLI --------------------------------------------------------------------------------------
def test_train_and_eval_cli_report_psnr_beside_bicubic(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i in range(2):
        _png(tmp_path / "data" / f"{i}.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    out = tmp_path / "run"
    assert main(["train", "carn_m", "--task", "super-resolution", "--scale", "2", "--data", str(tmp_path / "data"), "--epochs", "1",
                 "--steps-per-epoch", "1", "--batch-size", "2", "--patch-size", "8", "--out", str(out), "--no-progress"]) == 0
    assert main(["eval", str(out / "model.safetensors"), "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["scale"] == 2 and report["images"] == 2 and {"psnr", "ssim", "bicubic_psnr", "bicubic_ssim"} <= set(report)
    capsys.readouterr()
    assert main(["eval", str(out / "model.safetensors"), "--scale", "4"]) == 2
    err = capsys.readouterr().err
    assert "x2 model" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    # upscale: a 16-bit gray image through tiles, written as an 8-bit gray PNG twice the size
    Image.fromarray((np.arange(30 * 20, dtype=np.uint16).reshape(20, 30) * 100)).save(tmp_path / "deep.png")
    assert main(["upscale", str(out / "model.safetensors"), str(tmp_path / "deep.png"), str(tmp_path / "sr.png"), "--tile", "12", "--tile-overlap", "4"]) == 0
    with Image.open(tmp_path / "sr.png") as written:
        assert written.size == (60, 40) and written.mode == "L"
    capsys.readouterr()
    assert main(["upscale", str(out / "model.safetensors"), str(tmp_path / "deep.png"), str(tmp_path / "sr.png"), "--scale", "3"]) == 2
    assert "x2 model, not x3" in capsys.readouterr().err


def test_int8_is_accepted_only_within_the_psnr_budget(tmp_path):
    from edgevision.deploy.quantize import count_qdq
    from edgevision.super_resolution.data import bundled_pairs
    from edgevision.super_resolution.int8 import quantize_sr

    torch.manual_seed(0)
    model = TINY.build().eval()
    generator = torch.Generator().manual_seed(0)
    calibration = [make_pair(f"c{i}", torch.rand(3, 32, 32, generator=generator), 2) for i in range(4)]
    evaluation = bundled_pairs(2, limit=2, max_side=32)
    result = quantize_sr(model, calibration, evaluation, tmp_path / "tiny.int8.onnx", size=16, max_drop_db=0.5)
    assert count_qdq(tmp_path / "tiny.int8.onnx")[0] > 0 and result["images"] == 2
    assert result["drop_db"] == pytest.approx(result["fp32_psnr"] - result["int8_psnr"])
    assert result["accepted"] == (result["drop_db"] <= 0.5)
    with pytest.raises(ValueError, match="no image has a 64x64 LR crop"):
        quantize_sr(model, calibration, evaluation, tmp_path / "x.onnx", size=64)


def test_dynamic_size_int8_graph_matches_fp32_within_the_budget_at_several_sizes(tmp_path):
    import onnx

    from edgevision.deploy.tasks import onnx_forward
    from edgevision.super_resolution.data import bundled_pairs
    from edgevision.super_resolution.int8 import crop_pairs, quantize_sr
    from edgevision.super_resolution.tiling import onnx_sr_runnable

    torch.manual_seed(0)
    model = TINY.build().eval()
    generator = torch.Generator().manual_seed(0)
    calibration = [make_pair(f"c{i}", torch.rand(3, 32, 32, generator=generator), 2) for i in range(4)]
    evaluation = bundled_pairs(2, limit=2, max_side=48)  # LR 24x24
    result = quantize_sr(model, calibration, evaluation, tmp_path / "t.int8.onnx", size=16, max_drop_db=0.5, dynamic_hw=True,
                         check_sizes=((12, 20), None))
    dims = onnx.load(result["path"]).graph.input[0].type.tensor_type.shape.dim
    assert [d.HasField("dim_value") for d in dims] == [False, True, False, False]  # N x 3 x H x W, H and W free
    assert [(row["lr_size"], row["lr_shapes"]) for row in result["sizes"]] == [("12x20", ["12x20"]), ("whole images", ["24x24"])]
    assert result["accepted"] == (result["drop_db"] <= 0.5 and all(row["drop_db"] <= 0.5 for row in result["sizes"]))
    assert result["worst_drop_db"] == max(result["drop_db"], *(row["drop_db"] for row in result["sizes"]))
    # a budget no graph meets: every calibration is tried on every size, the least bad one is kept, no candidate left behind
    strict = quantize_sr(model, calibration, evaluation, tmp_path / "s.int8.onnx", size=16, max_drop_db=-1.0, dynamic_hw=True,
                         check_sizes=((12, 20),))
    assert [t["method"] for t in strict["tried"]] == ["minmax", "percentile", "entropy"] and not strict["accepted"]
    assert strict["worst_drop_db"] == min(t["worst_drop_db"] for t in strict["tried"])
    assert sorted(p.name for p in tmp_path.glob("s.int8*")) == ["s.int8.fp32.onnx", "s.int8.onnx"]
    # independently: the INT8 graph at three sizes against the fp32 graph, PSNR of its output to the HR photo
    fp32, int8 = onnx_forward(result["fp32_path"]), onnx_forward(result["path"])
    for size in (16, (12, 20), (24, 24)):
        for pair in crop_pairs(evaluation, size, 2):
            a, b = fp32(pair.lr[None]), int8(pair.lr[None])
            assert b.shape == a.shape == (1, 3, *pair.hr.shape[-2:])
            drop = psnr_y(a[0].clamp(0, 1), pair.hr, 2) - psnr_y(b[0].clamp(0, 1), pair.hr, 2)
            assert abs(drop) <= 0.5 and 0 < (a - b).abs().max() < 0.1  # quantized (differs), within the budget
    # tiled INT8 through the ONNX runnable equals one whole-image INT8 pass (per-tensor scales: tiling changes nothing)
    runnable = onnx_sr_runnable(result["path"], TINY)
    lr = torch.rand(1, 3, 37, 29, generator=generator)
    torch.testing.assert_close(tiled_super_resolve(runnable, lr, 2, tile=12, overlap=8), runnable(lr), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="fixed 16x16 input.*--int8-dynamic"):
        onnx_sr_runnable(quantize_sr(model, calibration, evaluation, tmp_path / "f.int8.onnx", size=16)["path"], TINY)
    with pytest.raises(ValueError, match="not the checkpoint's x3"):
        onnx_sr_runnable(result["path"], TINY.with_scale(3))


def test_cli_eval_makes_a_dynamic_int8_graph_that_upscale_runs_through_tiles(tmp_path, capsys, monkeypatch):
    import edgevision.super_resolution.data as sr_data

    rng = np.random.default_rng(1)
    for i in range(2):
        _png(tmp_path / "data" / f"{i}.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    out = tmp_path / "run"
    out.mkdir()
    torch.manual_seed(0)
    checkpoint = str(save(TINY.build().eval(), out / "model.safetensors", {"task": "super-resolution", "scale": 2}))
    assert main(["eval", checkpoint, "--int8-dynamic"]) == 2
    assert "give --max-drop-db DB too" in capsys.readouterr().err
    # calibration reads the bundled training photos: small stand-ins keep the test fast
    small = [(f"c{i}", torch.from_numpy(rng.random((3, 40, 40), dtype=np.float32))) for i in range(3)]
    monkeypatch.setattr(sr_data, "bundled_images", lambda split="test", rgb=True: small)
    assert main(["eval", checkpoint, "--data", str(tmp_path / "data"), "--max-drop-db", "3", "--int8-size", "16", "--int8-dynamic",
                 "--json", str(tmp_path / "e.json")]) == 0
    int8 = json.loads((tmp_path / "e.json").read_text())["int8"]
    graph = out / "model.int8-dynamic.onnx"
    assert int8["dynamic_hw"] and int8["path"] == str(graph) and graph.is_file()
    assert [row["lr_size"] for row in int8["sizes"]] == ["whole images"] and int8["sizes"][0]["lr_shapes"] == ["24x24"]
    Image.fromarray(rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)).save(tmp_path / "lr.png")
    assert main(["upscale", checkpoint, str(tmp_path / "lr.png"), str(tmp_path / "torch.png"), "--tile", "12", "--tile-overlap", "4"]) == 0
    assert main(["upscale", checkpoint, str(tmp_path / "lr.png"), str(tmp_path / "int8.png"), "--tile", "12", "--tile-overlap", "4",
                 "--onnx", str(graph)]) == 0
    with Image.open(tmp_path / "torch.png") as a, Image.open(tmp_path / "int8.png") as b:
        reference, quantized = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert quantized.shape == reference.shape == (60, 82, 3) and 0 < np.abs(quantized - reference).mean() < 3  # INT8: close, not equal
    capsys.readouterr()
    assert main(["upscale", checkpoint, str(tmp_path / "lr.png"), str(tmp_path / "x.png"), "--onnx", str(out / "model.int8-dynamic.fp32.onnx"),
                 "--scale", "2"]) == 0  # the fp32 dynamic graph too
    ev.export_onnx(load(checkpoint), tmp_path / "fixed.onnx", (1, 3, 16, 16))
    capsys.readouterr()
    assert main(["upscale", checkpoint, str(tmp_path / "lr.png"), str(tmp_path / "x.png"), "--onnx", str(tmp_path / "fixed.onnx")]) == 2
    err = capsys.readouterr().err
    assert "--onnx:" in err and "fixed 16x16 input" in err and err.count("\n") == 1 and "Traceback" not in err
