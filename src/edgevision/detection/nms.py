"""Non-maximum suppression written here: greedy, class-aware, batched, and exportable as ONNX ``NonMaxSuppression``.

Semantics are those of the ONNX operator (opset 10+) so eager PyTorch and the deployed graph agree:
a box survives the score filter when ``score > score_threshold``; a kept box suppresses every
lower-ranked box of the same image and class whose IoU with it is ``> iou_threshold``; ties in
score keep the earlier box; at most ``max_per_class`` boxes per (image, class). The output rows are
``(batch, class, box)`` indices ordered by batch, then class, then descending score — the order
ONNX Runtime produces.

:func:`nms` and :func:`batched_nms` are the eager building blocks (``batched_nms`` offsets each
class's boxes so classes never overlap, one greedy pass for all classes).
:func:`onnx_non_max_suppression` runs eagerly and exports, through an autograd Function with a
TorchScript-exporter ``symbolic``, as the single ONNX node.
"""

from __future__ import annotations

import torch

from .boxes import box_iou

__all__ = ["batched_nms", "nms", "onnx_non_max_suppression"]


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS of (N, 4) xyxy ``boxes`` by (N,) ``scores`` -> kept indices, by descending score."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # stable: ties keep the earlier box
    ranked = boxes[order]
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    keep = []
    for rank in range(len(order)):
        if suppressed[rank]:
            continue
        keep.append(rank)
        # one row of the IoU matrix at a time: O(N) memory (post-processing sees tens of thousands of boxes)
        suppressed[rank + 1:] |= box_iou(ranked[rank: rank + 1], ranked[rank + 1:])[0] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: boxes of different ``labels`` never suppress each other -> kept indices."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # shift each class into its own region of the plane, larger than every box (torchvision's trick)
    span = boxes.max() - boxes.min() + 1
    offsets = labels.to(boxes.dtype) * span
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _eager_non_max_suppression(boxes, scores, max_per_class: int, iou_threshold: float, score_threshold: float):
    rows = []
    for batch in range(boxes.shape[0]):
        for cls in range(scores.shape[1]):
            candidates = torch.nonzero(scores[batch, cls] > score_threshold).flatten()
            kept = candidates[nms(boxes[batch, candidates], scores[batch, cls, candidates], iou_threshold)][:max_per_class]
            rows.extend((batch, cls, int(index)) for index in kept)
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)


class _NonMaxSuppression(torch.autograd.Function):
    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou_threshold: float, score_threshold: float):
        if torch.jit.is_tracing():  # the export records symbolic() instead; skip the data-dependent loop
            return torch.zeros(0, 3, dtype=torch.long)
        return _eager_non_max_suppression(boxes, scores, max_per_class, iou_threshold, score_threshold)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou_threshold: float, score_threshold: float):
        return g.op(
            "NonMaxSuppression", boxes, scores,
            g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.long)),
            g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float)),
            g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float)),
            center_point_box_i=0,  # corner boxes; IoU is the same for (x1,y1,x2,y2) and (y1,x1,y2,x2)
        )


def onnx_non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, *, max_per_class: int,
                             iou_threshold: float, score_threshold: float) -> torch.Tensor:
    """(B, N, 4) xyxy boxes, (B, C, N) scores -> (K, 3) int64 ``(batch, class, box)`` rows (see the module docstring)."""
    if boxes.dim() != 3 or boxes.shape[-1] != 4 or scores.dim() != 3 or scores.shape[2] != boxes.shape[1]:
        raise ValueError(f"onnx_non_max_suppression wants boxes (B, N, 4) and scores (B, C, N), got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    return _NonMaxSuppression.apply(boxes, scores, int(max_per_class), float(iou_threshold), float(score_threshold))
