"""COCO/VOC detection loaders with the bad-input policy, and COCO metrics cross-checked between
pycocotools and faster-coco-eval on the generated scenes."""

import json

import pytest
import torch

from edgevision.datasets.scenes import generate_scenes
from edgevision.detection.data import DetectionDataError, load_coco_detection, load_voc_detection
from edgevision.detection.metrics import coco_detection_metrics


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("det_scenes")
    return generate_scenes(root, split="val", num_images=6, image_size=320, num_classes=3, seed=5)


def test_coco_loader_reads_the_generated_scenes(scenes):
    data = load_coco_detection(scenes, policy="fatal")
    document = json.loads(scenes.read_text())
    assert data.class_names == ["disc", "square", "triangle"]
    assert sum(len(s.boxes) for s in data.samples) == len(document["annotations"])
    first = document["annotations"][0]
    x, y, w, h = first["bbox"]
    sample = next(s for s in data.samples if s.image_id == first["image_id"])
    assert [x, y, x + w, y + h] in sample.boxes.tolist()


def test_bad_coco_input_is_reported_one_line_each_or_fatal(scenes, tmp_path):
    document = json.loads(scenes.read_text())
    document["images"].append({"id": 99, "file_name": "gone.jpg", "width": 320, "height": 320})
    document["images"].append({"id": 98, "file_name": document["images"][0]["file_name"], "width": 320, "height": 320})
    first_image = document["images"][0]["id"]
    document["annotations"] += [
        {"id": 1001, "image_id": first_image, "category_id": 7, "bbox": [1, 1, 5, 5], "iscrowd": 0},
        {"id": 1002, "image_id": first_image, "category_id": 1, "bbox": [300, 300, 50, 50], "iscrowd": 0},
        {"id": 1003, "image_id": first_image, "category_id": 1, "bbox": [10, 10, 0, 5], "iscrowd": 0},
    ]
    bad = tmp_path / "instances_val.json"
    bad.write_text(json.dumps(document))
    image_dir = scenes.parent.parent / "images" / "val"
    data = load_coco_detection(bad, image_dir, policy="skip", class_names=["disc", "square", "circle"])
    text = "\n".join(data.problems)
    assert "missing file" in text and "gone.jpg" in text
    assert "unknown category id 7" in text
    assert "outside the 320x320 image" in text and "zero area" in text
    assert "image 98" in text and "no annotations" in text
    assert "do not match the model's" in text
    assert len(data.problems) == 6
    with pytest.raises(DetectionDataError, match="5 problem"):
        load_coco_detection(bad, image_dir, policy="fatal", class_names=["disc", "square", "circle"])


def test_voc_xml_boxes(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><size><width>100</width><height>80</height></size>"
        "<object><name>cat</name><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>50</xmax><ymax>60</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>500</xmax><ymax>60</ymax></bndbox></object>"
        "<object><name>emu</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>6</ymax></bndbox></object></annotation>")
    data = load_voc_detection(tmp_path, tmp_path, ["cat", "dog"])
    assert data.samples[0].boxes.tolist() == [[10.0, 20.0, 50.0, 60.0]] and data.samples[0].labels.tolist() == [0]
    assert len(data.problems) == 2 and "unknown class 'emu'" in data.problems[1]


def test_coco_metrics_agree_between_pycocotools_and_faster_coco_eval(scenes):
    data = load_coco_detection(scenes)
    generator = torch.Generator().manual_seed(0)
    detections = []
    for sample in data.samples:  # jittered ground truth plus a few false positives
        jitter = sample.boxes + torch.randn(sample.boxes.shape, generator=generator) * 2
        false = torch.tensor([[5.0, 5.0, 60.0, 70.0]])
        detections.append({"boxes": torch.cat([jitter, false]), "scores": torch.rand(len(jitter) + 1, generator=generator),
                           "labels": torch.cat([sample.labels, torch.tensor([1])])})
    ids = [s.image_id for s in data.samples]
    ours = coco_detection_metrics(scenes, ids, detections)
    other = coco_detection_metrics(scenes, ids, detections, backend="faster_coco_eval")
    assert set(ours) == {"mAP", "AP50", "AP75", "APs", "APm", "APl"}
    assert 0.3 < ours["mAP"] < 1.0 and ours["AP50"] >= ours["AP75"]
    for name in ours:
        assert ours[name] == pytest.approx(other[name], abs=1e-6), name
    perfect = coco_detection_metrics(scenes, ids, [{"boxes": s.boxes, "scores": torch.ones(len(s.boxes)), "labels": s.labels} for s in data.samples])
    assert perfect["mAP"] == pytest.approx(1.0)
