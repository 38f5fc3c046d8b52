"""The detection task's deploy evaluator (COCO mAP of a runnable), and the shipped graph: INT8 head + fp32 NMS in one ONNX.

``edgevision deploy`` quantizes and judges the detector's *raw head graph* (``SSDLite.forward``: box
deltas (N, A, 4) and class logits (N, A, K+1); PicoDet/YOLO: DFL distributions and class logits),
with ``model.postprocess`` (decode, score filter, top-k candidates, class-aware NMS, best N per
image) run in fp32 PyTorch on its outputs, so the INT8 form is judged on exactly the detections
``edgevision eval --task detection`` scores (:func:`~edgevision.detection.training.evaluate_detector`).
Why the head and not the whole graph: on an untrained detector whose scores tie, NMS picks differ
between runtimes, so fp32 parity and output SQNR cannot be computed on detections.

What ships is one ONNX file: the chosen head graph (INT8 QDQ or fp32) composed
(``onnx.compose.merge_models``) with :class:`HeadPostprocess`, an fp32 graph of the same
post-processing as ``model.postprocess`` — per-class (SSDLite) or per-image (GFL) top-k
candidates, ``NonMaxSuppression``, then the best ``detections_per_image`` of each image — so the
shipped file's detections are those the metric was verified on. :func:`check_composed` runs both
in ONNX Runtime on held-out images and compares them detection by detection (deploy.json
``postprocess``). ONNX Runtime 1.31 leaves NonMaxSuppression, Softmax and TopK in float; the
quantizer only sees the head.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..deploy.tasks import ForwardModule, TaskMetric
from .export import OUTPUT_NAMES
from .nms import onnx_non_max_suppression

__all__ = ["METRIC", "MAP", "DetectionEvaluator", "deploy_evaluator", "HeadPostprocess", "compose_with_postprocess", "check_composed"]

#: COCO mAP@[.5:.95] is a [0, 1] fraction; budgets are in points (x100)
MAP = TaskMetric(name="mAP", label="mAP@[.5:.95]", higher_is_better=True, budget_option="--max-drop", unit="mAP points", scale=100.0,
                 default_budget=1.0)
METRIC = MAP  # read by edgevision.deploy.tasks.task_metric before any data is loaded


class DetectionEvaluator:
    """mAP of a runnable's raw head outputs after ``model.postprocess`` on ``val_set`` (ground truth ``val_file``)."""

    task = "detection"
    metric = MAP

    def __init__(self, model, calibration_samples, val_set, val_file, *, image_size: int, data: str = "") -> None:
        self.postprocess = model.postprocess
        self.calibration_samples, self.val_set, self.val_file = list(calibration_samples), val_set, val_file
        self.image_size = int(image_size)
        self.input_shape = (model.spec.in_channels, self.image_size, self.image_size)
        self.data = data or f"{len(self.calibration_samples)} calibration / {len(val_set.samples)} val images"

    def calibration_images(self) -> torch.Tensor:
        from .training import load_batch

        return load_batch(self.calibration_samples, self.image_size)[0]

    def verification_images(self) -> torch.Tensor:
        from .training import load_batch

        return load_batch(self.val_set.samples[:8], self.image_size)[0]

    def evaluate(self, forward) -> dict:
        from .training import evaluate_detector

        metrics = evaluate_detector(ForwardModule(forward, postprocess=self.postprocess), self.val_set, self.val_file,
                                    image_size=self.image_size, batch_size=8)
        return {**{k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}, "images": len(self.val_set.samples)}


def deploy_evaluator(model, metadata: dict, data: str | None, *, calibration: int = 32, verification: int = 32, input_size=None,
                     work_dir: Path | None = None) -> DetectionEvaluator:
    """``data``: a COCO instances JSON (default: the checkpoint's validation file; calibration from ``instances_train.json``
    beside it, else from images of the same file not used for verification), or ``scenes`` for freshly generated scenes."""
    import tempfile

    from .data import load_coco_detection

    size = int(input_size or metadata.get("preprocess", {}).get("resolution") or model.spec.input_size)
    data = data or metadata.get("dataset") or "scenes"
    names = metadata.get("class_names")
    if data in ("scenes", "default"):
        from ..datasets.scenes import generate_scenes

        root = Path(work_dir or tempfile.mkdtemp(prefix="edgevision-det-")) / "scenes"
        train_file = generate_scenes(root, split="train", num_images=calibration, seed=int(metadata.get("seed", 0)))
        val_file = generate_scenes(root, split="val", num_images=verification, seed=int(metadata.get("seed", 0)))
    else:
        val_file = Path(data)
        if not val_file.is_file():
            raise ValueError(f"--data {data}: no such COCO annotation file; give instances_<split>.json or 'scenes'")
        train_file = val_file.with_name(val_file.name.replace("val", "train"))
    val_set = load_coco_detection(val_file, class_names=names)
    if metadata.get("task") == "detection" and len(val_set.class_names) != model.spec.num_classes:
        raise ValueError(f"{data} has {len(val_set.class_names)} classes but the checkpoint predicts {model.spec.num_classes}; deploy on its own dataset")
    if train_file.is_file() and train_file != val_file:
        calibration_samples = load_coco_detection(train_file, class_names=val_set.class_names).samples[:calibration]
    else:  # one file: the first images calibrate, the others verify (disjoint)
        if len(val_set.samples) < 2:
            raise ValueError(f"{val_file} has {len(val_set.samples)} image(s); calibration and verification need at least 2")
        cut = min(calibration, len(val_set.samples) // 2)
        calibration_samples, val_set.samples = val_set.samples[:cut], val_set.samples[cut:]
    return DetectionEvaluator(model, calibration_samples, val_set, str(val_file), image_size=size,
                              data=f"{data} ({len(calibration_samples)} calibration / {len(val_set.samples)} val images, {size} px)")


class HeadPostprocess(nn.Module):
    """``model.postprocess`` as a traceable graph on the raw head outputs, for ONNX.

    forward(*head outputs) -> (batch index (D,), boxes (D, 4) xyxy pixels, scores (D,), labels (D,) 0..K-1), rows
    ordered by image, then descending score. Same steps as ``postprocess``: top ``topk_candidates`` candidates (per
    class for SSDLite, over (point, class) pairs of the image for the GFL heads; ``candidates_per_class`` of the
    model's deployable), scores above ``score_threshold``, class-aware NMS at ``nms_iou``, the best
    ``detections_per_image`` of each image. Decoding is the deployable's own (``boxes_and_scores``).
    """

    def __init__(self, model: nn.Module, image_size) -> None:
        super().__init__()
        self.decoder = model.deployable(image_size)
        self.spec = model.spec

    def forward(self, *outputs: torch.Tensor):
        spec = self.spec
        boxes, scores = self.decoder.boxes_and_scores(*outputs)  # (N, A, 4), (N, K, A)
        images, classes, anchors = scores.shape
        if self.decoder.candidates_per_class:
            top = scores.topk(min(spec.topk_candidates, anchors), dim=2).indices
            candidate = torch.zeros_like(scores).scatter(2, top, 1.0)
        else:  # postprocess flattens (A, K) point-major
            flat = scores.transpose(1, 2).reshape(images, anchors * classes)
            top = flat.topk(min(spec.topk_candidates, anchors * classes), dim=1).indices
            candidate = torch.zeros_like(flat).scatter(1, top, 1.0).reshape(images, anchors, classes).transpose(1, 2)
        # a non-candidate scores 0, never above the threshold (>= 0); max_per_class never binds below the per-image cap
        rows = onnx_non_max_suppression(boxes, scores * candidate, max_per_class=spec.detections_per_image,
                                        iou_threshold=spec.nms_iou, score_threshold=spec.score_threshold)
        batch, label, anchor = rows[:, 0], rows[:, 1], rows[:, 2]
        score = scores[batch, label, anchor]
        # best N per image: sort by (image, -score) (float64: exact for every fp32 score), rank within the image
        order = (batch.double() * 4.0 - score.double()).argsort()
        batch, label, anchor, score = batch[order], label[order], anchor[order], score[order]
        per_image = (batch[:, None] == torch.arange(images, device=batch.device)[None, :]).sum(0)  # (N,)
        rank = torch.arange(batch.shape[0], device=batch.device) - (per_image.cumsum(0) - per_image)[batch]
        keep = rank < spec.detections_per_image
        return batch[keep], boxes[batch, anchor][keep], score[keep], label[keep]


def _opset(model) -> int:
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def compose_with_postprocess(head_onnx: str | os.PathLike, model: nn.Module, output: str | os.PathLike, *, image_size: int) -> dict:
    """Write ``output``: the head graph ``head_onnx`` (fp32 or INT8 QDQ) feeding :class:`HeadPostprocess` in fp32, one ONNX.

    Returns ``{"path", "head_nodes", "postprocess_nodes", "nodes", "ops"}`` (op type -> count of the composed graph).
    """
    import onnx
    from onnx import compose, helper

    from ..atomic import atomic_path

    head = onnx.load(str(head_onnx))
    head_outputs = [o.name for o in head.graph.output]
    channels = model.spec.in_channels
    post = HeadPostprocess(model, image_size).eval()
    with torch.no_grad():
        raw = model.eval()(torch.randn(2, channels, image_size, image_size, generator=torch.Generator().manual_seed(0)))
    raw = raw if isinstance(raw, (tuple, list)) else (raw,)
    if len(raw) != len(head_outputs):
        raise ValueError(f"{head_onnx} has {len(head_outputs)} outputs but {type(model).__name__} returns {len(raw)}; give its raw head graph")
    inputs = [f"head_output_{i}" for i in range(len(raw))]
    with tempfile.TemporaryDirectory(prefix="edgevision-nms-") as scratch:
        post_path = Path(scratch) / "postprocess.onnx"
        with warnings.catch_warnings():  # the tracer's notes on index ops: the composed graph is checked in ORT instead
            warnings.simplefilter("ignore")
            torch.onnx.export(post, tuple(raw), str(post_path), input_names=inputs, output_names=list(OUTPUT_NAMES), opset_version=_opset(head),
                              dynamo=False, dynamic_axes={**{name: {0: "batch"} for name in inputs}, **{name: {0: "detections"} for name in OUTPUT_NAMES}})
        postprocess = onnx.load(str(post_path))
    ir = max(head.ir_version, postprocess.ir_version)
    head.ir_version = postprocess.ir_version = ir
    merged = compose.merge_models(head, postprocess, io_map=list(zip(head_outputs, inputs)), prefix2="postprocess/")
    # the public output names (batch_index, boxes, scores, labels), as `edgevision export` writes them
    renamed = []
    for value in list(merged.graph.output):
        public = value.name.removeprefix("postprocess/")
        merged.graph.node.append(helper.make_node("Identity", [value.name], [public], name=f"output/{public}"))
        renamed.append(helper.make_value_info(public, value.type))
    del merged.graph.output[:]
    merged.graph.output.extend(renamed)
    merged.graph.name = f"{head.graph.name or 'head'}+postprocess"
    onnx.checker.check_model(merged)
    with atomic_path(Path(output)) as temporary:
        onnx.save(merged, str(temporary))
    ops: dict[str, int] = {}
    for node in merged.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"path": str(output), "head_nodes": len(head.graph.node), "postprocess_nodes": len(postprocess.graph.node),
            "nodes": len(merged.graph.node), "ops": dict(sorted(ops.items()))}


def check_composed(composed_onnx: str | os.PathLike, head_onnx: str | os.PathLike, model: nn.Module, images: torch.Tensor, *,
                   image_size: int, atol: float = 1e-4, threads: int = 1) -> dict:
    """Run the composed graph and (head graph in ORT -> ``model.postprocess`` in PyTorch) on ``images``; compare per image.

    The composed graph's inner head outputs must equal the head graph's (relative error <= 1e-6 on every image);
    detections agree when each image has the same number, the same labels and scores (within ``atol``) after sorting
    by (label, -score), and the same boxes (within ``atol`` x image size) where a score is more than ``atol`` from its class neighbours'.
    An image where a kept detection's score is also another box's score in its class is left out of ``same`` and counted in
    ``tied_images`` (``tied_images_differing``: those whose count or labels differ): which of two tied boxes NMS
    visits first is each implementation's choice, and that changes what it suppresses (an untrained GFL head
    saturates many scores at exactly 1.0; an INT8 head has few distinct scores). Returns ``{"images", "detections",
    "same", "head_outputs_error", "compared_images", "max_score_error", "max_box_error", "mismatch", "tied_images",
    "tied_images_differing"}`` (``mismatch``: the first difference, or "").
    """
    from ..deploy.tasks import onnx_forward

    head = onnx_forward(head_onnx, threads)
    composed = onnx_forward(composed_onnx, threads)
    outputs = head(images)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    raw = tuple(torch.as_tensor(o) for o in outputs)
    expected = model.postprocess(raw, image_size)
    with torch.no_grad():
        all_scores = model.deployable(image_size).boxes_and_scores(*raw)[1].numpy()  # (N, K, A)
    batch, boxes, scores, labels = (np.asarray(t) for t in composed(images))
    detections, score_error, box_error, mismatch, tied, tied_differ = 0, 0.0, 0.0, "", 0, 0
    for index, reference in enumerate(expected):
        mine = batch == index
        got_boxes, got_scores, got_labels = boxes[mine], scores[mine], labels[mine]
        want_boxes, want_scores, want_labels = (reference[k].numpy() for k in ("boxes", "scores", "labels"))
        detections += len(want_scores)
        class_scores = all_scores[index][want_labels]  # (D, A): every candidate's score in each detection's class
        if ((class_scores == want_scores[:, None]).sum(1) > 1).any():  # a kept score shared by another box of its class
            tied += 1
            same_here = len(got_scores) == len(want_scores) and np.array_equal(np.sort(got_labels), np.sort(want_labels))
            tied_differ += not same_here
            continue
        if len(got_scores) != len(want_scores):
            mismatch = mismatch or f"image {index}: {len(got_scores)} detections in the composed graph, {len(want_scores)} from postprocess"
            continue
        got_order, want_order = np.lexsort((-got_scores, got_labels)), np.lexsort((-want_scores, want_labels))
        if not np.array_equal(got_labels[got_order], want_labels[want_order]):
            mismatch = mismatch or f"image {index}: labels differ"
            continue
        difference = np.abs(got_scores[got_order] - want_scores[want_order])
        score_error = max(score_error, float(difference.max(initial=0.0)))
        # a box is compared where its score is more than atol from its neighbours' in the same class (else the order may swap)
        sorted_labels, sorted_scores = want_labels[want_order], want_scores[want_order]
        apart = (np.diff(sorted_scores) < -atol) | (np.diff(sorted_labels) != 0)  # (D-1,) row i vs row i+1
        unique = np.concatenate([[True], apart]) & np.concatenate([apart, [True]])
        box_error = max(box_error, float(np.abs(got_boxes[got_order][unique] - want_boxes[want_order][unique]).max(initial=0.0)))
    # the head inside the composed graph computes what the head graph alone does (checked on every image, tied or not)
    import onnx

    from ..deploy.verify import onnx_outputs, relative_error

    names = [o.name for o in onnx.load(str(head_onnx), load_external_data=False).graph.output]
    inner = onnx_outputs(composed_onnx, images, names, threads)
    head_error = max(relative_error(np.asarray(o), inner[name]) for name, o in zip(names, outputs))
    if head_error > 1e-6:
        mismatch = mismatch or f"the head inside the composed graph differs from the head graph by {head_error:.2g} of its output scale"
    compared = len(expected) - tied
    if not mismatch and score_error > atol:
        mismatch = f"scores differ by {score_error:.3g} > {atol}"
    if not mismatch and box_error > atol * image_size:
        mismatch = f"boxes differ by {box_error:.3g} px > {atol * image_size:.3g}"
    return {"images": int(images.shape[0]), "detections": detections, "same": not mismatch, "head_outputs_error": head_error,
            "compared_images": compared, "max_score_error": score_error, "max_box_error": box_error, "mismatch": mismatch,
            "tied_images": tied, "tied_images_differing": tied_differ}
