"""Detection training augmentation (detection/data.py): images, boxes, instance masks and semantic masks
moved by one geometry (scale/crop/expand, flip), photometric jitter on pixels only, deterministic in a seed."""

from dataclasses import replace

import pytest
import torch

from edgevision.datasets.scenes import generate_scenes
from edgevision.detection.data import (FLIP_ONLY, SSD_AUGMENTATION, DetectionAugmentation, augment_detection,
                                       load_coco_detection)
from edgevision.detection.training import _pixels, load_batch

SIZE = 64


def _rectangles_image():
    """A black 96 x 128 image with five white rectangles, 24 px apart (>= 6 px after the smallest scale), four touching the border."""
    boxes = torch.tensor([[0.0, 0.0, 20.0, 14.0], [44.0, 6.0, 76.0, 40.0], [100.0, 0.0, 128.0, 50.0],
                          [10.0, 64.0, 50.0, 96.0], [74.0, 74.0, 128.0, 96.0]])
    image = torch.zeros(3, 96, 128)
    semantic = torch.zeros(96, 128, dtype=torch.long)
    for index, (x0, y0, x1, y1) in enumerate(boxes.long().tolist()):
        image[:, y0:y1, x0:x1] = 1.0
        semantic[y0:y1, x0:x1] = index + 1
    return image, boxes, torch.arange(len(boxes)), semantic


def test_boxes_still_frame_the_objects_after_scale_crop_flip_and_jitter():
    image, boxes, labels, semantic = _rectangles_image()
    augmentation = replace(SSD_AUGMENTATION, fill=0.0)  # black padding, so "object" is "bright" everywhere
    generator = torch.Generator().manual_seed(0)
    checked = 0
    for _ in range(24):
        drawn = augment_detection(image, boxes, labels, SIZE, augmentation, generator, semantic=semantic)
        bright = drawn.image.mean(0) > 0.3  # grey objects stay grey under the jitter: bright iff object
        assert drawn.image.shape == (3, SIZE, SIZE) and drawn.semantic.shape == (SIZE, SIZE)
        for (x0, y0, x1, y1), label in zip(drawn.boxes.tolist(), drawn.labels.tolist()):
            assert 0 <= x0 < x1 <= SIZE and 0 <= y0 < y1 <= SIZE
            inner = bright[round(y0) + 2: round(y1) - 2, round(x0) + 2: round(x1) - 2]
            assert inner.all(), "a box interior is not the object"
            assert (drawn.semantic[round(y0) + 1: round(y1) - 1, round(x0) + 1: round(x1) - 1] == label + 1).all()
            # the ring 2-3 px outside each box edge (inside the image) is background: the box is tight
            for ring in (bright[max(round(y0) - 3, 0): max(round(y0) - 2, 0), round(x0): round(x1)],
                         bright[round(y1) + 2: round(y1) + 3, round(x0): round(x1)],
                         bright[round(y0): round(y1), max(round(x0) - 3, 0): max(round(x0) - 2, 0)],
                         bright[round(y0): round(y1), round(x1) + 2: round(x1) + 3]):
                assert not ring.any(), "object pixels just outside a box"
            checked += 1
    assert checked > 60


def test_instance_masks_boxes_and_semantic_masks_agree_on_generated_scenes(tmp_path):
    annotations = generate_scenes(tmp_path, split="train", num_images=4, image_size=96, num_classes=3, seed=3)
    data = load_coco_detection(annotations, masks=True, policy="fatal")
    from PIL import Image
    import numpy as np

    generator_seed, agreed, cut = 0, 0, 0
    for sample in data.samples:
        masks = sample.instance_masks()
        # the generator's boxes are the tight boxes of its exact visible masks
        for mask, box in zip(masks, sample.boxes):
            rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
            assert box.tolist() == [cols.min().item(), rows.min().item(), cols.max().item() + 1, rows.max().item() + 1]
        semantic = torch.from_numpy(np.array(Image.open(annotations.parents[1] / "masks" / "train" / sample.image.with_suffix(".png").name))).long()
        image = _pixels(sample)
        for _ in range(6):
            generator_seed += 1
            plain = augment_detection(image, sample.boxes, sample.labels, SIZE, SSD_AUGMENTATION, torch.Generator().manual_seed(generator_seed))
            masked = augment_detection(image, sample.boxes, sample.labels, SIZE, SSD_AUGMENTATION, torch.Generator().manual_seed(generator_seed),
                                       masks=masks, semantic=semantic)
            torch.testing.assert_close(plain.image, masked.image)  # the masks change nothing else
            geometric = dict(zip(plain.kept.tolist(), plain.boxes))
            for index, mask, box, label in zip(masked.kept.tolist(), masked.masks, masked.boxes, masked.labels):
                assert index in geometric  # masks only ever drop boxes, never add them
                assert (masked.semantic[mask] == label + 1).all()  # the instance mask lies on its class in the semantic mask
                reference = geometric[index]
                x0, y0, x1, y1 = box.tolist()
                assert mask[int(y0):int(y1), int(x0):int(x1)].sum() == mask.sum()  # the box is the mask's tight box
                if 0 < reference[0] and 0 < reference[1] and reference[2] < SIZE and reference[3] < SIZE:  # not cut by the crop
                    # nearest sampling of a mask shrunk up to 3.7x can skip a one-pixel tip (a star's point): up to ~1.3 px here
                    torch.testing.assert_close(box, reference, atol=1.5, rtol=0)
                    agreed += 1
                else:  # cut: the clipped box may be looser than the mask, never tighter
                    assert box[0] >= reference[0] - 1 and box[1] >= reference[1] - 1 and box[2] <= reference[2] + 1 and box[3] <= reference[3] + 1
                    cut += 1
    assert agreed > 20 and cut > 3


def test_augmentation_is_deterministic_under_a_seed():
    image, boxes, labels, semantic = _rectangles_image()

    def draw(seed):
        return augment_detection(image, boxes, labels, SIZE, SSD_AUGMENTATION, torch.Generator().manual_seed(seed), semantic=semantic)

    first, again, other = draw(7), draw(7), draw(8)
    assert torch.equal(first.image, again.image) and torch.equal(first.boxes, again.boxes) and torch.equal(first.semantic, again.semantic)
    assert not torch.equal(first.image, other.image)


def test_degenerate_and_mostly_cut_boxes_are_dropped():
    image, boxes, labels, _ = _rectangles_image()
    zoom_in = DetectionAugmentation(scale_range=(2.0, 2.5), min_visible=0.3, min_size=2.0)
    generator, dropped = torch.Generator().manual_seed(1), 0
    for _ in range(20):
        drawn = augment_detection(image, boxes, labels, SIZE, zoom_in, generator)
        widths, heights = drawn.boxes[:, 2] - drawn.boxes[:, 0], drawn.boxes[:, 3] - drawn.boxes[:, 1]
        assert (widths >= 2).all() and (heights >= 2).all() and (drawn.boxes >= 0).all() and (drawn.boxes <= SIZE).all()
        dropped += len(boxes) - len(drawn.boxes)
    assert dropped > 0


def test_flip_only_is_the_evaluation_resize_with_a_mirror(tmp_path):
    annotations = generate_scenes(tmp_path, split="val", num_images=2, image_size=80, num_classes=2, seed=1)
    data = load_coco_detection(annotations)
    generator = torch.Generator().manual_seed(0)
    for sample in data.samples:
        drawn = augment_detection(_pixels(sample), sample.boxes, sample.labels, SIZE, FLIP_ONLY, generator)
        for flip in (False, True):
            images, (target,) = load_batch([sample], SIZE, flip=torch.tensor([flip]))
            if torch.allclose(drawn.boxes, target["boxes"]):
                # the same pixels up to the resampler (torch bilinear with antialiasing vs PIL's)
                assert (drawn.image * 2 - 1 - images[0]).abs().mean() < 0.03
                break
        else:
            raise AssertionError("FLIP_ONLY moved the boxes unlike the evaluation resize (mirrored or not)")


def test_bad_augmentation_settings_name_the_field():
    with pytest.raises(ValueError, match="scale_range"):
        DetectionAugmentation(scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="brightness"):
        DetectionAugmentation(brightness=1.5)


def test_loading_masks_reports_an_annotation_without_segmentation(tmp_path):
    import json

    annotations = generate_scenes(tmp_path, split="val", num_images=1, image_size=48, num_classes=2, seed=2)
    document = json.loads(annotations.read_text())
    document["annotations"][0].pop("segmentation")
    annotations.write_text(json.dumps(document))
    data = load_coco_detection(annotations, masks=True)
    assert any("no segmentation (masks were asked for)" in line for line in data.problems)
    sample = data.samples[0]
    assert len(sample.segmentations) == len(sample.boxes) == len(document["annotations"]) - 1
    assert sample.instance_masks().shape == (len(sample.boxes), 48, 48)
    with pytest.raises(ValueError, match="masks=True"):
        load_coco_detection(annotations).samples[0].instance_masks()
