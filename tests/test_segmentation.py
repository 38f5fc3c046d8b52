"""Segmentation: torchvision-structured parameter counts, shapes, aux path, checkpoint round trip,
metrics against sklearn, paired augmentation consistency, the label formats and their bad input, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import edgevision as ev
from edgevision.cli import main
from edgevision.datasets.base import DataError
from edgevision.segmentation.data import (
    PairedTransform, load_cityscapes, load_coco_semantic, load_mask_folder, load_voc,
)
from edgevision.segmentation.metrics import ConfusionMatrix


def _params(name: str, **kwargs) -> int:
    with torch.device("meta"):
        model = ev.create_model(name, **kwargs)
    return sum(p.numel() for p in model.parameters())


def test_torchvision_parameter_counts():
    # torchvision model cards: lraspp_mobilenet_v3_large 3,221,538; deeplabv3_mobilenet_v3_large 11,029,328 (with aux)
    assert _params("lraspp_mobilenet_v3_large") == 3_221_538
    assert _params("deeplabv3_mobilenet_v3_large") == 11_029_328
    assert _params("lraspp_mobilenet_v3_large", num_classes=5) == 3_221_538 - (21 - 5) * ((40 + 1) + (128 + 1))  # low + high classifier per class
    # Mobile DeepLabv3 (Sandler et al. 2018, Table 7: OS 16, no atrous branches): 2.11M params
    assert round(_params("deeplabv3_mobilenet_v2") / 1e6, 2) == 2.11
    assert set(ev.list_models(task="segmentation")) >= {"lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v2", "unet_mobilenet_v2"}
    assert "lraspp_mobilenet_v3_large" not in ev.list_models()


def test_torchvision_dilation_and_taps():
    with torch.device("meta"):
        model = ev.create_model("lraspp_mobilenet_v3_large")
    assert model.spec.taps() == ("stages.2.0", "stages.6.0")  # torchvision: features[4] (first 1/8 block) and features[16]
    strided = model.stages[5][0].depthwise.conv  # torchvision's features[13]: stride 2 -> 1, dilated 2 itself
    assert strided.stride == (1, 1) and strided.dilation == (2, 2) and strided.padding == (4, 4)
    assert model.stages[5][0].depthwise.norm.eps == 1e-3


@pytest.mark.parametrize("name", ["lraspp_mobilenet_v3_small", "deeplabv3_mobilenet_v2_os8", "unet_mobilenet_v2"])
def test_logits_at_input_resolution(name):
    model = ev.create_model(name, num_classes=4).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 48))
    assert out.shape == (1, 4, 64, 48)


def test_output_stride_8_keeps_one_eighth_maps():
    model = ev.create_model("deeplabv3_mobilenet_v2_os8", num_classes=3).eval()
    with torch.no_grad():
        (features,) = model.forward_features(torch.randn(1, 3, 64, 64))
    assert features.shape == (1, 320, 8, 8)


def test_aux_head_only_on_the_training_path():
    torch.manual_seed(0)
    model = ev.create_model("deeplabv3_mobilenet_v3_large", num_classes=3).eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        logits, aux = model.forward_with_aux(x)
        assert torch.equal(model(x), logits)
    assert aux.shape == logits.shape == (1, 3, 48, 48)
    assert ev.create_model("lraspp_mobilenet_v3_small").forward_with_aux(torch.randn(1, 3, 32, 32))[1] is None


def test_checkpoint_round_trip_and_reparameterize(tmp_path):
    model = ev.create_model("lraspp_mobilenet_v3_small", num_classes=3).eval()
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        expected = model(x)
    ev.save(model, tmp_path / "m.safetensors", {"task": "segmentation"})
    loaded = ev.load(tmp_path / "m.safetensors").eval()
    assert loaded.spec == model.spec
    with torch.no_grad():
        assert torch.equal(loaded(x), expected)
        assert torch.allclose(ev.reparameterize(loaded)(x), expected, atol=1e-4)


def test_miou_matches_sklearn():
    from sklearn.metrics import confusion_matrix, jaccard_score

    rng = np.random.default_rng(0)
    targets = rng.integers(0, 4, size=(3, 2, 9, 11))
    targets[rng.random(targets.shape) < 0.1] = 255
    predictions = rng.integers(0, 4, size=targets.shape)
    predictions[targets == 2] = 2  # a class predicted perfectly where it occurs
    matrix = ConfusionMatrix(5)  # class 4 never occurs: no IoU, left out of the mean
    for p, t in zip(predictions, targets):
        matrix.update(torch.from_numpy(p), torch.from_numpy(t))
    result = matrix.compute()
    keep = targets.reshape(-1) != 255
    t, p = targets.reshape(-1)[keep], predictions.reshape(-1)[keep]
    assert np.array_equal(matrix.matrix.numpy(), confusion_matrix(t, p, labels=range(5)))
    reference = jaccard_score(t, p, labels=range(4), average=None)
    assert np.allclose([result["per_class_iou"][str(c)] for c in range(4)], reference)
    assert result["per_class_iou"]["4"] is None
    assert result["miou"] == pytest.approx(reference.mean())
    assert result["pixel_accuracy"] == pytest.approx((t == p).mean())


def test_paired_transform_keeps_image_and_mask_aligned():
    mask = torch.from_numpy(np.random.default_rng(1).integers(0, 5, size=(40, 30)))
    image = torch.stack([mask * 50, mask * 50, mask * 0]).to(torch.uint8)  # the label is readable from the pixel
    crop = PairedTransform(30, train=True, scale_range=(1.0, 1.0), seed=0)  # scale 1: a crop of the 40x30 image
    kinds = set()
    for _ in range(12):
        out_image, out_mask = crop(image, mask)
        assert torch.equal(out_image[0].long(), out_mask * 50)  # image and mask moved together
        for top in range(11):
            window = mask[top : top + 30]
            kinds |= {"plain"} if torch.equal(out_mask, window) else {"flipped"} if torch.equal(out_mask, window.flip(-1)) else set()
    assert kinds == {"plain", "flipped"}
    padded_image, padded_mask = PairedTransform(48, train=True, scale_range=(30 / 48, 30 / 48), seed=0)(image, mask)
    assert padded_image.shape == (3, 48, 48) and padded_mask.shape == (48, 48)
    valid = padded_mask != 255
    assert torch.equal(padded_image[0][valid].long(), padded_mask[valid] * 50) and (padded_image[:, ~valid] == 0).all()
    _, upscaled = PairedTransform(32, train=True, scale_range=(2.0, 2.0), seed=0)(image, mask)
    assert set(upscaled.unique().tolist()) <= {0, 1, 2, 3, 4}  # nearest: never a blend of labels


def _palette_png(path, array):
    image = Image.fromarray(array.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0] * 128)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _jpeg(path, height=16, width=20):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((height, width, 3), 100, np.uint8)).save(path)


def test_voc_reads_palette_indices_and_reports_bad_samples(tmp_path):
    for name in ("a", "b", "c", "d"):
        _jpeg(tmp_path / "JPEGImages" / f"{name}.jpg")
    good = np.zeros((16, 20)); good[2:6, 3:9] = 15; good[6, :] = 255
    _palette_png(tmp_path / "SegmentationClass" / "a.png", good)
    _palette_png(tmp_path / "SegmentationClass" / "b.png", np.full((16, 20), 30))  # 30: no VOC class
    _palette_png(tmp_path / "SegmentationClass" / "c.png", np.zeros((8, 8)))  # size mismatch; d: no mask
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nb\nc\nd\n")
    dataset = load_voc(tmp_path, "train")
    assert len(dataset) == 1 and dataset.num_classes == 21
    image, mask = dataset[0]
    assert image.shape == (3, 16, 20) and mask[3, 4] == 15 and mask[6, 0] == 255
    problems = " | ".join(dataset.report.problems)
    assert "class ids [30]" in problems and "mask is 8x8 but the image is 20x16" in problems and "d.png is missing" in problems
    with pytest.raises(DataError, match="class ids"):
        load_voc(tmp_path, "train", on_error="fatal")


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    _jpeg(tmp_path / "leftImg8bit" / "val" / "bonn" / "bonn_000_leftImg8bit.png", 4, 4)
    ids = np.array([[7, 8, 26, 0], [33, 24, 1, 255], [7, 7, 7, 7], [11, 11, 11, 11]], np.uint8)
    path = tmp_path / "gtFine" / "val" / "bonn" / "bonn_000_gtFine_labelIds.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(ids, mode="L").save(path)
    _, mask = load_cityscapes(tmp_path, "val")[0]
    assert mask.tolist() == [[0, 1, 13, 255], [18, 11, 255, 255], [0] * 4, [2] * 4]


def test_coco_semantic_masks_from_polygons_and_crowds(tmp_path):
    _jpeg(tmp_path / "images" / "train" / "x.jpg", 10, 10)
    _jpeg(tmp_path / "images" / "train" / "y.jpg", 10, 10)
    document = {
        "images": [{"id": 1, "file_name": "x.jpg", "width": 10, "height": 10}, {"id": 2, "file_name": "y.jpg", "width": 10, "height": 10}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0, "segmentation": [[0, 0, 5, 0, 5, 5, 0, 5]]},
            {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 1, "segmentation": [[6, 6, 9, 6, 9, 9, 6, 9]]},
            {"id": 3, "image_id": 9, "category_id": 3, "iscrowd": 0, "segmentation": [[0, 0, 1, 0, 1, 1]]},
            {"id": 4, "image_id": 1, "category_id": 99, "iscrowd": 0, "segmentation": [[0, 0, 1, 0, 1, 1]]},
        ],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train.json").write_text(json.dumps(document))
    dataset = load_coco_semantic(tmp_path / "annotations" / "instances_train.json")
    assert dataset.class_names == ("background", "dog", "cat")  # sorted by category id: 3 -> 1, 7 -> 2
    _, mask = dataset[0]
    assert mask[2, 2] == 2 and mask[7, 7] == 255 and mask[9, 0] == 0
    assert any("image id 9" in p for p in dataset.report.problems) and any("category id 99" in p for p in dataset.report.problems)
    assert any("1 images have no annotations" in n for n in dataset.report.notes)
    with pytest.raises(DataError, match="image id 9"):
        load_coco_semantic(tmp_path / "annotations" / "instances_train.json", on_error="fatal")


def _mask_folder(root, split, count, size=32):
    rng = np.random.default_rng(len(split))
    for index in range(count):
        mask = np.zeros((size, size), np.uint8)
        mask[4:20, 6:22] = 1 + index % 2
        image = np.stack([mask * 100, 50 + mask * 0, rng.integers(0, 50, (size, size))], -1).astype(np.uint8)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "images" / split / f"{index}.png")
        Image.fromarray(mask, mode="L").save(root / "masks" / split / f"{index}.png")
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps({"categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))


def test_mask_folder_reads_the_scene_generator_layout(tmp_path):
    from edgevision.datasets.scenes import generate_scenes

    generate_scenes(tmp_path, split="val", num_images=2, image_size=64, num_classes=3, seed=0)
    dataset = load_mask_folder(tmp_path, "val")
    assert dataset.class_names == ("background", "disc", "square", "triangle")
    image, mask = dataset[1]
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64) and 0 < int(mask.max()) <= 3


def test_cli_train_then_eval_json(tmp_path, capsys):
    _mask_folder(tmp_path / "data", "train", 4)
    _mask_folder(tmp_path / "data", "val", 2)
    out = tmp_path / "run"
    assert main(["train", "lraspp_mobilenet_v3_small", "--task", "segmentation", "--data", f"masks:{tmp_path / 'data'}", "--epochs", "1",
                 "--resolution", "32", "--batch-size", "2", "--out", str(out), "--no-progress"]) == 0
    from edgevision.checkpoint import read_metadata

    assert read_metadata(out / "model.safetensors")["task"] == "segmentation"
    assert main(["eval", str(out / "model.safetensors"), "--json", str(tmp_path / "e.json")]) == 0
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report["per_class_iou"]) == {"background", "a", "b"} and 0 <= report["miou"] <= 1 and 0 <= report["pixel_accuracy"] <= 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "lraspp_mobilenet_v3_small", "--task", "segmentation", "--data", "voc:/nonexistent"], "ImageSets/Segmentation/train.txt not found"),
        (["train", "lraspp_mobilenet_v3_small", "--task", "segmentation", "--data", "kitti:/x"], "unknown segmentation dataset"),
        (["train", "mobilenetv2_100", "--task", "segmentation"], "is a classification model"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(capsys, tmp_path, argv, message):
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_int8_quantization_reports_miou_drop(tmp_path):
    from edgevision.segmentation.deploy import quantize_segmentation

    _mask_folder(tmp_path / "data", "train", 2)
    _mask_folder(tmp_path / "data", "val", 2)
    train_set, val_set = load_mask_folder(tmp_path / "data", "train"), load_mask_folder(tmp_path / "data", "val")
    from edgevision.segmentation import LRASPPSpec

    torch.manual_seed(0)  # a small LR-ASPP (taps at 1/4 and 1/8) keeps the export + PTQ quick
    backbone = ev.get_spec("mobilenetv3_small_100")
    model = LRASPPSpec(name="tiny_lraspp", backbone=backbone, low_tap="stages.0.0", high_tap="stages.1.1", num_classes=3, input_size=32).build()
    result = quantize_segmentation(model, train_set, val_set, tmp_path / "m.int8.onnx", resolution=32, max_drop=100.0)
    assert (tmp_path / "m.int8.onnx").is_file() and result.calibration_images == 2
    assert 0 <= result.int8_miou <= 1 and result.accepted == (result.drop_points <= 100.0)
    assert result.drop_points == pytest.approx(100 * (result.fp32_miou - result.int8_miou))


def test_a_dataset_class_ignored_on_top_of_void_keeps_void_out_of_loss_and_metrics():
    """--ignore-index 0 with masks that hold 255 (crop padding): 255 used to reach cross-entropy as a class id."""
    from edgevision.segmentation.metrics import ConfusionMatrix
    from edgevision.segmentation.training import segmentation_loss

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 1)
    images = torch.randn(2, 3, 8, 8)
    masks = torch.randint(0, 4, (2, 8, 8))
    masks[:, :2] = 255  # void rows, as padding writes them
    loss = segmentation_loss(conv, images, masks, aux_weight=0.0, ignore_index=0)
    # equal to cross-entropy over the pixels that are neither void nor class 0
    logits = conv(images)
    keep = (masks != 255) & (masks != 0)
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], masks[keep])
    assert torch.allclose(loss, expected, atol=1e-6)

    matrix = ConfusionMatrix(4, ignore_index=0)
    matrix.update(logits, masks)
    assert matrix.compute()["pixels"] == int(keep.sum())


def test_training_interrupted_after_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path):
    """train_state.pt after every epoch: a run stopped in epoch 2 and rerun on the same folder ends with the weights and
    history of one that was never stopped (the kill -9 version: tests/test_segmentation_durability.py)."""
    from edgevision.segmentation import LRASPPSpec
    from edgevision.segmentation.training import SegmentationRecipe, train_segmentation

    _mask_folder(tmp_path / "data", "train", 4)
    _mask_folder(tmp_path / "data", "val", 2)
    recipe = SegmentationRecipe(epochs=3, batch_size=2, crop_size=32)
    spec = LRASPPSpec(name="tiny_lraspp", backbone=ev.get_spec("mobilenetv3_small_100"), low_tap="stages.0.0", high_tap="stages.1.1",
                      num_classes=3, input_size=32)

    def trained(out, log=None):
        torch.manual_seed(0)
        model = spec.build()
        data = load_mask_folder(tmp_path / "data", "train"), load_mask_folder(tmp_path / "data", "val")
        return train_segmentation(model, *data, recipe, seed=0, out_dir=out, log=log)

    whole = trained(tmp_path / "whole")

    class Stop(Exception):
        pass

    def stop_in_epoch_two(line: str) -> None:
        if line.startswith("epoch 2/"):  # logged after epoch 2's steps, before its state is saved
            raise Stop

    with pytest.raises(Stop):
        trained(tmp_path / "stopped", log=stop_in_epoch_two)
    assert torch.load(tmp_path / "stopped" / "train_state.pt", weights_only=True)["epoch"] == 1
    lines = []
    resumed = trained(tmp_path / "stopped", log=lines.append)
    assert lines[0].startswith("resuming from epoch 1") and [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert [row["train_loss"] for row in resumed.history] == pytest.approx([row["train_loss"] for row in whole.history], rel=1e-5)
    for name, value in whole.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], value, rtol=1e-5, atol=1e-6, msg=name)
