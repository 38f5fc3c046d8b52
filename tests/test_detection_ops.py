"""Box utilities, SSD priors, box coding and NMS against independent brute-force implementations;
NMS exported as the ONNX ``NonMaxSuppression`` node and checked through ONNX Runtime."""

import itertools

import numpy as np
import pytest
import torch

from edgevision.detection.anchors import BoxCoder, ssd_anchor_counts, ssd_default_boxes
from edgevision.detection.boxes import box_area, box_iou, cxcywh_to_xyxy, xywh_to_xyxy, xyxy_to_cxcywh, xyxy_to_xywh
from edgevision.detection.nms import batched_nms, nms, onnx_non_max_suppression


def _iou_brute(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _nms_brute(boxes, scores, labels, threshold):
    """Textbook greedy NMS in plain Python: repeatedly take the best remaining box of any class."""
    remaining = list(range(len(scores)))
    kept = []
    while remaining:
        best = max(remaining, key=lambda i: (scores[i], -i))
        kept.append(best)
        remaining = [i for i in remaining if i != best and not (labels[i] == labels[best] and _iou_brute(boxes[i], boxes[best]) > threshold)]
    return kept


def _random_boxes(generator, count, extent=100.0):
    corners = torch.rand(count, 2, generator=generator) * extent
    sizes = torch.rand(count, 2, generator=generator) * extent / 3 + 1
    return torch.cat([corners, corners + sizes], dim=1)


def test_conversions_round_trip_and_iou_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    boxes = _random_boxes(generator, 12)
    torch.testing.assert_close(cxcywh_to_xyxy(xyxy_to_cxcywh(boxes)), boxes)
    torch.testing.assert_close(xywh_to_xyxy(xyxy_to_xywh(boxes)), boxes)
    torch.testing.assert_close(box_area(boxes), (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    expected = torch.tensor([[_iou_brute(a.tolist(), b.tolist()) for b in boxes] for a in boxes])
    torch.testing.assert_close(box_iou(boxes, boxes), expected)
    degenerate = torch.tensor([[5.0, 5.0, 5.0, 5.0]])
    assert box_iou(degenerate, degenerate).item() == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_class_aware_nms_matches_brute_force(seed):
    generator = torch.Generator().manual_seed(seed)
    boxes = _random_boxes(generator, 60, extent=60.0)
    scores = torch.rand(60, generator=generator).round(decimals=1)  # many ties: order must still agree
    labels = torch.randint(0, 3, (60,), generator=generator)
    kept = batched_nms(boxes, scores, labels, 0.4).tolist()
    assert kept == _nms_brute(boxes.tolist(), scores.tolist(), labels.tolist(), 0.4)
    single = nms(boxes, scores, 0.4).tolist()
    assert single == _nms_brute(boxes.tolist(), scores.tolist(), [0] * 60, 0.4)
    assert len(set(kept)) == len(kept) and len(kept) >= len(single)


def test_box_coder_inverts_and_priors_follow_the_ssd_layout():
    sizes = [(4, 4), (2, 2), (1, 1)]
    priors = ssd_default_boxes(sizes, (64, 64), aspect_ratios=[[2, 3]] * 3)
    assert priors.shape == (sum(h * w * a for (h, w), a in zip(sizes, ssd_anchor_counts([[2, 3]] * 3))), 4)
    # first prior: scale 0.2 square at the first cell centre (8, 8) of a 64-pixel image
    torch.testing.assert_close(priors[0], torch.tensor([8 - 6.4, 8 - 6.4, 8 + 6.4, 8 + 6.4]))
    generator = torch.Generator().manual_seed(1)
    targets = _random_boxes(generator, len(priors), extent=64.0)
    coder = BoxCoder()
    torch.testing.assert_close(coder.decode(coder.encode(targets, priors), priors), targets, atol=1e-3, rtol=1e-4)


def _random_nms_inputs(seed, batch=2, classes=3, count=40):
    generator = torch.Generator().manual_seed(seed)
    boxes = torch.stack([_random_boxes(generator, count, extent=50.0) for _ in range(batch)])
    scores = torch.rand(batch, classes, count, generator=generator)
    return boxes, scores


def test_eager_onnx_nms_rows_match_brute_force_per_image_and_class():
    boxes, scores = _random_nms_inputs(0)
    rows = onnx_non_max_suppression(boxes, scores, max_per_class=5, iou_threshold=0.5, score_threshold=0.3)
    expected = []
    for b, c in itertools.product(range(2), range(3)):
        candidates = [i for i in range(40) if scores[b, c, i] > 0.3]
        kept = _nms_brute([boxes[b, i].tolist() for i in candidates], [scores[b, c, i].item() for i in candidates], [0] * len(candidates), 0.5)
        expected += [[b, c, candidates[k]] for k in kept[:5]]
    assert rows.tolist() == expected


class _NmsModule(torch.nn.Module):
    def forward(self, boxes, scores):
        return onnx_non_max_suppression(boxes, scores, max_per_class=7, iou_threshold=0.45, score_threshold=0.2)


def test_nms_exports_as_the_onnx_operator_and_agrees_with_onnxruntime(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    boxes, scores = _random_nms_inputs(1)
    path = tmp_path / "nms.onnx"
    torch.onnx.export(_NmsModule(), (boxes, scores), str(path), input_names=["boxes", "scores"], output_names=["selected"],
                      opset_version=17, dynamo=False,
                      dynamic_axes={"boxes": {0: "batch", 1: "anchors"}, "scores": {0: "batch", 2: "anchors"}, "selected": {0: "rows"}})
    assert [node.op_type for node in onnx.load(str(path)).graph.node].count("NonMaxSuppression") == 1
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed in (1, 2, 3):
        boxes, scores = _random_nms_inputs(seed, batch=1 + seed % 2, count=30 + seed)
        (selected,) = session.run(None, {"boxes": boxes.numpy(), "scores": scores.numpy()})
        np.testing.assert_array_equal(selected, _NmsModule()(boxes, scores).numpy())
