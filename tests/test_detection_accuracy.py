"""Checks that would catch an accuracy defect in the detection pipeline, end to end without training:
ground truth fed as detections scores mAP 1 through our evaluator (category-id mapping, xyxy -> xywh),
perfect head outputs survive loading, resizing, decoding, NMS and rescaling to mAP 1, the SSD loss of
perfect outputs is ~0, and detection calibration (matching at IoU 0.5, ECE) against hand-computed values.
"""

import json

import pytest
import torch
from PIL import Image

import edgevision as ev
from edgevision.detection.boxes import box_iou
from edgevision.detection.data import load_coco_detection
from edgevision.detection.ssdlite import match_priors
from edgevision.detection.metrics import coco_detection_metrics, detection_calibration, match_detections
from edgevision.detection.training import detector_corruption_map, evaluate_detector, load_batch, predict_detections

# Non-contiguous, unsorted category ids: label i is the i-th id in sorted order (3 -> 0, 7 -> 1, 12 -> 2).
_CATEGORIES = [{"id": 7, "name": "b"}, {"id": 3, "name": "a"}, {"id": 12, "name": "c"}]
_ANNOTATIONS = [  # COCO [x, y, w, h] in the original 128 x 96 images
    (1, 3, [10, 8, 50, 40]), (1, 12, [70, 30, 40, 50]), (2, 7, [20, 20, 30, 30]), (2, 3, [60, 10, 60, 80]), (2, 12, [5, 50, 40, 40])]


def _document():
    return {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 128, "height": 96} for i in (1, 2)],
            "categories": _CATEGORIES,
            "annotations": [{"id": k, "image_id": image, "category_id": category, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
                            for k, (image, category, box) in enumerate(_ANNOTATIONS, start=1)]}


@pytest.fixture
def coco_files(tmp_path):
    images = tmp_path / "images" / "val"
    images.mkdir(parents=True)
    for i in (1, 2):
        Image.new("RGB", (128, 96), (40 * i, 90, 160)).save(images / f"{i}.jpg")
    (tmp_path / "annotations").mkdir()
    path = tmp_path / "annotations" / "instances_val.json"
    path.write_text(json.dumps(_document()))
    return path


def _truth_as_detections(data):
    return [{"boxes": s.boxes, "scores": torch.linspace(0.9, 0.5, len(s.labels)), "labels": s.labels} for s in data.samples]


def test_ground_truth_as_detections_is_map_one_and_wrong_ids_or_box_format_are_not(coco_files):
    data = load_coco_detection(coco_files, policy="fatal")
    ids = [s.image_id for s in data.samples]
    detections = _truth_as_detections(data)
    assert coco_detection_metrics(coco_files, ids, detections)["mAP"] == pytest.approx(1.0)
    assert coco_detection_metrics(coco_files, ids, detections, backend="faster_coco_eval")["mAP"] == pytest.approx(1.0)
    shifted = [{**d, "labels": (d["labels"] + 1) % 3} for d in detections]  # a label offset of one
    assert coco_detection_metrics(coco_files, ids, shifted)["AP50"] == pytest.approx(0.0)
    as_xywh = [{**d, "boxes": torch.cat((d["boxes"][:, :2], d["boxes"][:, 2:] - d["boxes"][:, :2]), 1)} for d in detections]
    assert coco_detection_metrics(coco_files, ids, as_xywh)["mAP"] < 0.5  # boxes must go in as xyxy


class _Oracle(torch.nn.Module):
    """Wraps a detector and returns the head outputs that encode the ground truth of the images in the
    order they are fed (deltas from the box coder, logits 10 / -10), so only post-processing is tested."""

    def __init__(self, model, targets):
        super().__init__()
        self.model, self.targets, self.seen = model, targets, 0

    def forward(self, images):
        priors = self.model.priors(images.shape[-1])
        deltas, logits = [], []
        for target in self.targets[self.seen: self.seen + len(images)]:
            foreground, best_box = match_priors(target["boxes"], priors)
            image_logits = torch.full((len(priors), self.model.spec.num_classes + 1), -10.0)
            image_logits[:, 0] = 10.0
            image_logits[foreground, 0] = -10.0
            image_logits[foreground, target["labels"][best_box[foreground]] + 1] = 10.0
            deltas.append(self.model.coder.encode(target["boxes"][best_box], priors))
            logits.append(image_logits)
        self.seen += len(images)
        return torch.stack(deltas), torch.stack(logits)

    def postprocess(self, outputs, image_size):
        return self.model.postprocess(outputs, image_size)

    def loss(self, outputs, targets):
        return self.model.loss(outputs, targets)


def _oracle(data, size=64):
    torch.manual_seed(0)
    model = ev.create_model("ssdlite320_mobilenetv3_large", num_classes=3)
    _, targets = load_batch(data.samples, size)  # boxes in the resized 64 x 64 frame
    return _Oracle(model, targets)


def test_perfect_head_outputs_give_map_one_after_resize_decode_nms_and_rescale(coco_files):
    data = load_coco_detection(coco_files, policy="fatal")
    oracle = _oracle(data)
    assert evaluate_detector(oracle, data, coco_files, image_size=64, batch_size=1)["mAP"] == pytest.approx(1.0)
    oracle.seen = 0
    detections = predict_detections(oracle, data, image_size=64)
    for sample, result in zip(data.samples, detections):  # back in original 128 x 96 pixels
        assert len(result["boxes"]) == len(sample.boxes)
        assert box_iou(result["boxes"], sample.boxes).max(1).values.min() > 0.99


def test_every_box_claims_a_prior_and_weak_overlaps_stay_background():
    priors = torch.tensor([[0, 0, 10, 10], [0, 0, 20, 20], [50, 50, 60, 60], [100, 100, 140, 140]], dtype=torch.float32)
    boxes = torch.tensor([[0, 0, 19, 19], [95, 95, 110, 110]], dtype=torch.float32)  # the second overlaps prior 3 at IoU 0.06
    foreground, best_box = match_priors(boxes, priors)
    assert foreground.tolist() == [False, True, False, True]  # prior 0: IoU 0.28 < 0.5; prior 3 is the best of box 1
    assert best_box[1] == 0 and best_box[3] == 1


def test_ssd_loss_of_perfect_outputs_is_near_zero(coco_files):
    data = load_coco_detection(coco_files, policy="fatal")
    oracle = _oracle(data)
    oracle.model.set_input_size(64)
    images, targets = load_batch(data.samples, 64)
    losses = oracle.loss(oracle(images), targets)
    assert losses["bbox_regression"] < 1e-6 and losses["classification"] < 1e-6


def test_match_detections_and_detection_ece_by_hand():
    document = {"images": [{"id": 1, "width": 100, "height": 100}], "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "iscrowd": 0},
                                {"id": 2, "image_id": 1, "category_id": 1, "bbox": [50, 50, 20, 20], "iscrowd": 0},
                                {"id": 3, "image_id": 1, "category_id": 2, "bbox": [10, 60, 30, 30], "iscrowd": 0}]}
    boxes = torch.tensor([[0, 0, 20, 20], [1, 0, 20, 20], [10, 60, 40, 90], [50, 50, 60, 60], [0, 0, 20, 20], [50, 50, 70, 70]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.75, 0.7, 0.55, 0.2, 0.65], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 0, 1, 1])
    # 0.9: a, IoU 1 -> right; 0.75: a, the same box already claimed -> wrong; 0.7: b, IoU 1 -> right;
    # 0.55: a, IoU 0.25 with the second a box -> wrong; 0.65: b on an a box -> wrong; 0.2 is below min_score
    found_scores, correct = match_detections(document, [1], [{"boxes": boxes, "scores": scores, "labels": labels}], min_score=0.3)
    assert sorted(zip(found_scores.tolist(), correct.tolist())) == [(0.55, False), (0.65, False), (0.7, True), (0.75, False), (0.9, True)]
    report = detection_calibration(document, [1], [{"boxes": boxes, "scores": scores, "labels": labels}], bins=5, min_score=0.3)
    # bins (0.4, 0.6]: {0.55 wrong} -> 0.55; (0.6, 0.8]: {0.65 w, 0.7 r, 0.75 w} -> |1 - 2.1|; (0.8, 1]: {0.9 r} -> 0.1
    assert report.ece == pytest.approx((0.55 + 1.1 + 0.1) / 5)
    assert report.to_dict()["bin_counts"] == (0, 0, 1, 3, 1) and report.detections == 5
    assert report.to_dict()["bin_accuracy"][3] == pytest.approx(1 / 3)
    assert detection_calibration(document, [1], [{"boxes": boxes, "scores": scores, "labels": labels}], min_score=0.85).ece == pytest.approx(0.1)
    nothing = detection_calibration(document, [1], [{"boxes": boxes, "scores": scores, "labels": labels}], min_score=0.95)
    assert nothing.detections == 0 and nothing.ece != nothing.ece  # NaN, not a perfect 0


def test_corruption_map_reports_every_corruption_and_severity(coco_files):
    data = load_coco_detection(coco_files, policy="fatal")
    oracle = _oracle(data)
    seen_inputs = []
    forward = oracle.forward

    def recording_forward(images):
        seen_inputs.append(images.clone())
        oracle.seen = 0  # every pass starts at the first image again
        return forward(images)

    oracle.forward = recording_forward
    report = detector_corruption_map(oracle, data, coco_files, image_size=64, batch_size=2, names=("brightness", "gaussian_noise"), severities=(1, 5))
    assert report["severities"] == [1, 5] and set(report["mAP"]) == {"brightness", "gaussian_noise"}
    assert report["clean_mAP"] == pytest.approx(1.0) and report["mAP"]["brightness"] == [pytest.approx(1.0)] * 2
    assert report["mean_corruption_mAP"] == pytest.approx(1.0) and report["relative_mean_corruption_mAP"] == pytest.approx(1.0)
    assert len(seen_inputs) == 5  # clean + 2 corruptions x 2 severities, each batch of 2 images
    assert (seen_inputs[1] > seen_inputs[0] - 1e-6).all() and not torch.allclose(seen_inputs[1], seen_inputs[0])  # brighter
    assert seen_inputs[0].min() >= -1.0 and seen_inputs[1].max() <= 1.0 + 1e-6  # still in the [-1, 1] input range
