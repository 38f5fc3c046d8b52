"""Generalized Focal Loss machinery for anchor-free detectors (Li et al. 2020, GFL) and SimOTA assignment.

- :func:`quality_focal_loss` (GFL Eq. 5): a sigmoid class score that is also the localization
  quality; the target is the IoU of the predicted box with its ground truth at the true class (0
  elsewhere), weighted by ``|y - sigma|^beta`` so easy examples fade.
- :func:`distribution_focal_loss` (GFL Eq. 6): each box edge is a discrete distribution over
  ``0..reg_max`` cells; the loss puts the mass on the two integers around the continuous target
  ``y``: ``-((y_{i+1} - y) log S_i + (y - y_i) log S_{i+1})``.
- :func:`distribution_to_distance` (GFL Eq. 4, the "integral"): the expected value of each edge's
  distribution, i.e. ``sum_i softmax(logits)_i * i`` — plain tensor ops, so it traces into ONNX.
- :func:`generalized_iou` / :func:`giou_loss` (Rezatofighi et al. 2019) on paired xyxy boxes.
- :func:`simota_assign` — SimOTA (Ge et al. 2021, YOLOX Sec. 2.2; the assigner of PP-PicoDet,
  Yu et al. 2021 Sec. 3.3): candidates are points inside a box or within ``center_radius`` strides of
  its centre; the cost is classification cost + ``iou_weight * -log(IoU)``, plus a large penalty for
  points not in both regions; each box takes its ``k`` cheapest points, with the dynamic ``k`` the
  (floored, >= 1) sum of its ``candidate_topk`` largest IoUs; a point claimed twice goes to the box
  where it is cheapest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .boxes import box_area, box_iou

__all__ = [
    "SimOTAAssignment", "bbox_to_distance", "distance_to_bbox", "distribution_focal_loss", "distribution_to_distance",
    "generalized_iou", "giou_loss", "quality_focal_loss", "simota_assign",
]


def quality_focal_loss(logits: torch.Tensor, labels: torch.Tensor, quality: torch.Tensor, beta: float = 2.0) -> torch.Tensor:
    """Per-point QFL summed over classes.

    logits (A, K) raw scores; labels (A,) class of each point, -1 for background; quality (A,) the
    IoU target of positive points (ignored where the label is -1). Returns (A,).
    """
    sigma = logits.sigmoid()
    # every class of every point is a negative (target 0): BCE(sigma, 0) * sigma^beta
    loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none") * sigma.pow(beta)
    positive = torch.nonzero(labels >= 0).flatten()
    if len(positive):
        cls = labels[positive]
        score = quality[positive].to(logits.dtype)
        chosen = logits[positive, cls]
        scale = (score - chosen.sigmoid()).abs().pow(beta)
        loss[positive, cls] = F.binary_cross_entropy_with_logits(chosen, score, reduction="none") * scale
    return loss.sum(dim=-1)


def distribution_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits (..., reg_max + 1) per edge, target (...) continuous in [0, reg_max) -> DFL (...)."""
    left = target.floor().long()
    right = left + 1
    weight_left = right.to(target.dtype) - target
    weight_right = target - left.to(target.dtype)
    log_probs = F.log_softmax(logits, dim=-1)
    return -(log_probs.gather(-1, left[..., None])[..., 0] * weight_left + log_probs.gather(-1, right[..., None])[..., 0] * weight_right)


def distribution_to_distance(logits: torch.Tensor, reg_max: int) -> torch.Tensor:
    """(..., 4 * (reg_max + 1)) edge distributions -> (..., 4) expected distances in stride units."""
    probabilities = F.softmax(logits.reshape(*logits.shape[:-1], 4, reg_max + 1), dim=-1)
    bins = torch.arange(reg_max + 1, dtype=logits.dtype, device=logits.device)
    return (probabilities * bins).sum(dim=-1)


def distance_to_bbox(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
    """points (..., 2) xy, distances (..., 4) (left, top, right, bottom) in pixels -> xyxy boxes."""
    return torch.cat((points - distances[..., :2], points + distances[..., 2:]), dim=-1)


def bbox_to_distance(points: torch.Tensor, boxes: torch.Tensor, limit: float | None = None) -> torch.Tensor:
    """Inverse of :func:`distance_to_bbox`; ``limit`` clamps into [0, limit] (DFL's reg_max - 0.01)."""
    distances = torch.cat((points - boxes[..., :2], boxes[..., 2:] - points), dim=-1)
    return distances.clamp(0, limit) if limit is not None else distances


def generalized_iou(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Paired (N, 4) x (N, 4) xyxy -> (N,) GIoU = IoU - |hull \\ union| / |hull| (Rezatofighi et al. 2019)."""
    top_left = torch.maximum(first[:, :2], second[:, :2])
    bottom_right = torch.minimum(first[:, 2:], second[:, 2:])
    intersection = (bottom_right - top_left).clamp(min=0).prod(dim=-1)
    union = box_area(first) + box_area(second) - intersection
    hull = (torch.maximum(first[:, 2:], second[:, 2:]) - torch.minimum(first[:, :2], second[:, :2])).clamp(min=0).prod(dim=-1)
    eps = torch.finfo(first.dtype).eps
    iou = intersection / union.clamp(min=eps)
    return iou - (hull - union) / hull.clamp(min=eps)


def giou_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N,) 1 - GIoU of paired boxes."""
    return 1.0 - generalized_iou(predicted, target)


class SimOTAAssignment:
    """Result of :func:`simota_assign` for one image.

    ``matched`` (A,) index of the assigned box or -1; ``labels`` (A,) its class or -1;
    ``ious`` (A,) IoU of the point's predicted box with its assigned box (0 for negatives).
    """

    def __init__(self, matched: torch.Tensor, labels: torch.Tensor, ious: torch.Tensor) -> None:
        self.matched, self.labels, self.ious = matched, labels, ious

    @property
    def positive(self) -> torch.Tensor:
        return self.matched >= 0


_OUTSIDE_COST = 1e5  # SimOTA's penalty for points outside the box-and-centre region (YOLOX uses 1e5)


@torch.no_grad()
def simota_assign(scores: torch.Tensor, predicted_boxes: torch.Tensor, points: torch.Tensor, strides: torch.Tensor,
                  gt_boxes: torch.Tensor, gt_labels: torch.Tensor, *, center_radius: float = 2.5,
                  candidate_topk: int = 10, iou_weight: float = 3.0, cls_weight: float = 1.0) -> SimOTAAssignment:
    """SimOTA for one image (see the module docstring).

    scores (A, K) sigmoid class scores; predicted_boxes (A, 4) xyxy; points (A, 2) xy; strides (A,);
    gt_boxes (M, 4) xyxy; gt_labels (M,) in 0..K-1.
    """
    count = len(points)
    matched = torch.full((count,), -1, dtype=torch.long, device=points.device)
    labels = torch.full((count,), -1, dtype=torch.long, device=points.device)
    ious = torch.zeros(count, dtype=scores.dtype, device=points.device)
    if len(gt_boxes) == 0:
        return SimOTAAssignment(matched, labels, ious)
    x, y = points[:, 0:1], points[:, 1:2]  # (A, 1)
    inside_box = ((x > gt_boxes[:, 0]) & (x < gt_boxes[:, 2]) & (y > gt_boxes[:, 1]) & (y < gt_boxes[:, 3]))  # (A, M)
    centres = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # (M, 2)
    radius = center_radius * strides[:, None]  # (A, 1)
    inside_centre = ((x - centres[:, 0]).abs() < radius) & ((y - centres[:, 1]).abs() < radius)  # (A, M)
    candidates = torch.nonzero((inside_box | inside_centre).any(dim=1)).flatten()
    if len(candidates) == 0:
        return SimOTAAssignment(matched, labels, ious)
    pair_iou = box_iou(predicted_boxes[candidates], gt_boxes)  # (C, M)
    iou_cost = -torch.log(pair_iou + 1e-7)
    # classification cost: BCE of every class against the soft target (IoU at the box's class, 0 elsewhere),
    # summed over classes = sum_k BCE(p_k, 0) - BCE(p_c, 0) + BCE(p_c, IoU) at the box's class c
    probabilities = scores[candidates].clamp(1e-6, 1 - 1e-6)  # (C, K)
    negative_all = -torch.log1p(-probabilities).sum(dim=1, keepdim=True)  # (C, 1)
    p_class = probabilities[:, gt_labels]  # (C, M)
    cls_cost = negative_all + torch.log1p(-p_class) - (pair_iou * torch.log(p_class) + (1 - pair_iou) * torch.log1p(-p_class))
    both = inside_box[candidates] & inside_centre[candidates]
    cost = cls_weight * cls_cost + iou_weight * iou_cost + _OUTSIDE_COST * (~both).to(cls_cost.dtype)  # (C, M)
    # dynamic k per box: the sum of its top candidate IoUs, floored, at least 1
    top_ious = pair_iou.topk(min(candidate_topk, len(candidates)), dim=0).values
    dynamic_k = top_ious.sum(dim=0).int().clamp(min=1)  # (M,)
    chosen = torch.zeros_like(cost, dtype=torch.bool)
    for box in range(len(gt_boxes)):
        k = int(min(int(dynamic_k[box]), len(candidates)))
        chosen[cost[:, box].topk(k, largest=False).indices, box] = True
    claimed = chosen.sum(dim=1) > 1  # a point chosen by several boxes stays with the cheapest
    if claimed.any():
        cheapest = cost[claimed].argmin(dim=1)
        chosen[claimed] = False
        chosen[torch.nonzero(claimed).flatten(), cheapest] = True
    rows, boxes = torch.nonzero(chosen, as_tuple=True)
    points_chosen = candidates[rows]
    matched[points_chosen] = boxes
    labels[points_chosen] = gt_labels[boxes].long()
    ious[points_chosen] = pair_iou[rows, boxes].to(ious.dtype)
    return SimOTAAssignment(matched, labels, ious)
