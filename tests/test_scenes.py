"""The procedural COCO scene generator: exact labels from the visible masks, determinism, area bins."""

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from edgevision.datasets.scenes import COCO_LARGE_AREA, COCO_SMALL_AREA, SCENE_CLASS_NAMES, generate_scenes


@pytest.fixture(scope="module")
def scenes_320(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    return root, generate_scenes(root, split="val", num_images=10, image_size=320, num_classes=5, seed=3)


def test_layout_and_labels_match_the_visible_masks(scenes_320):
    root, path = scenes_320
    assert path == root / "annotations" / "instances_val.json"
    document = json.loads(path.read_text())
    assert [c["id"] for c in document["categories"]] == [1, 2, 3, 4, 5]
    assert [c["name"] for c in document["categories"]] == list(SCENE_CLASS_NAMES[:5])
    by_image = {}
    for annotation in document["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    for image in document["images"]:
        stem = image["file_name"].rsplit(".", 1)[0]
        pixels = np.asarray(Image.open(root / "images" / "val" / image["file_name"]))
        assert pixels.shape == (320, 320, 3)
        semantic = np.asarray(Image.open(root / "masks" / "val" / f"{stem}.png"))
        assert semantic.dtype == np.uint8 and semantic.shape == (320, 320)
        rebuilt = np.zeros_like(semantic)
        covered = np.zeros(semantic.shape, dtype=int)
        for annotation in by_image.get(image["id"], []):
            mask = mask_utils.decode(annotation["segmentation"]).astype(bool)
            rows, cols = np.nonzero(mask)
            # the box is the visible mask's tight box; area is its pixel count
            assert annotation["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1,
                                          rows.max() - rows.min() + 1]
            assert annotation["area"] == mask.sum() == mask_utils.area(annotation["segmentation"])
            assert annotation["iscrowd"] == 0
            rebuilt[mask] = annotation["category_id"]
            covered += mask
        # instances are disjoint after occlusion and their union is exactly the semantic mask
        assert covered.max() <= 1
        np.testing.assert_array_equal(rebuilt, semantic)


def test_sizes_cover_all_coco_area_bins(scenes_320):
    document = json.loads(scenes_320[1].read_text())
    areas = np.array([a["area"] for a in document["annotations"]])
    assert (areas < COCO_SMALL_AREA).sum() >= 3
    assert ((areas >= COCO_SMALL_AREA) & (areas < COCO_LARGE_AREA)).sum() >= 3
    assert (areas >= COCO_LARGE_AREA).sum() >= 1


def test_seeded_and_deterministic(tmp_path):
    first = generate_scenes(tmp_path / "a", num_images=3, image_size=64, num_classes=3, seed=1)
    second = generate_scenes(tmp_path / "b", num_images=3, image_size=64, num_classes=3, seed=1)
    assert first.read_text() == second.read_text()
    for name in ("train_000000.png", "train_000002.png"):
        assert (tmp_path / "a/masks/train" / name).read_bytes() == (tmp_path / "b/masks/train" / name).read_bytes()
    other_seed = generate_scenes(tmp_path / "c", num_images=3, image_size=64, num_classes=3, seed=2)
    other_split = generate_scenes(tmp_path / "a", split="test", num_images=3, image_size=64, num_classes=3, seed=1)
    assert json.loads(other_seed.read_text())["annotations"] != json.loads(first.read_text())["annotations"]
    assert json.loads(other_split.read_text())["annotations"] != json.loads(first.read_text())["annotations"]
    assert {a["category_id"] for a in json.loads(first.read_text())["annotations"]} <= {1, 2, 3}


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 0}, "num_classes must be 1..8"),
    ({"num_classes": 9}, "num_classes must be 1..8"),
    ({"num_images": 0}, "num_images must be >= 1"),
    ({"image_size": 16}, "image_size must be >= 32"),
    ({"split": "../x"}, "split must be a plain name"),
])
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_scenes(tmp_path, **kwargs)
