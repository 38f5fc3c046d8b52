"""``train --task detection`` / ``eval --task detection``: detectors on COCO JSON (or the embedded scenes).

``--data`` is a COCO instances JSON (images beside it in ``../images/<split>``), or ``scenes`` for the
embedded procedural scenes (generated into the run folder: 256 train / 64 val images, 5 classes).
A train file ``.../instances_train.json`` is validated on ``instances_val.json`` beside it when present.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._common import UsageError, float_in

__all__ = ["add_arguments", "train", "evaluate"]


def add_arguments(group, command: str) -> None:
    """This task's own options on ``edgevision {command}``."""
    group.add_argument("--score-threshold", type=float_in(0, 1, "a score", high_open=True), default=None, help="detection: keep detections scoring above this (default: the model's)")
    group.add_argument("--nms-iou", type=float_in(0, 1, "an IoU", low_open=True), default=None, help="detection: NMS IoU threshold (default: the model's)")
    if command == "eval":
        group.add_argument("--calibration-min-score", type=float_in(0, 1, "a score"), default=0.3,
                           help="detection --calibration: score detections at or above this (default 0.3)")
    group.add_argument("--bad-annotations", choices=("skip", "fatal"), default="skip",
                       help="detection: skip and report bad annotations, or stop on the first file with any (default skip)")


def _splits(data: str, out: Path, seed: int):
    if data in ("scenes", "default"):
        from ...datasets.scenes import generate_scenes

        root = out / "scenes"
        return (generate_scenes(root, split="train", num_images=256, seed=seed),
                generate_scenes(root, split="val", num_images=64, seed=seed))
    train_file = Path(data)
    if not train_file.is_file():
        raise UsageError(f"--data {data}: no such COCO annotation file; give instances_<split>.json or 'scenes'")
    val_file = train_file.with_name(train_file.name.replace("train", "val"))
    return train_file, (val_file if val_file.is_file() and val_file != train_file else train_file)


def _load(path, args, class_names=None):
    from ...detection.data import DetectionDataError, load_coco_detection

    try:
        data = load_coco_detection(path, policy=args.bad_annotations, class_names=class_names)
    except DetectionDataError as error:
        raise UsageError(str(error)) from None
    for line in data.problems:
        print(f"warning: {line}")
    return data


def _with_options(model, args):
    from dataclasses import replace

    changes = {k: v for k, v in (("score_threshold", args.score_threshold), ("nms_iou", args.nms_iou)) if v is not None}
    if changes:
        model.spec = replace(model.spec, **changes)
    return model


def _write(path, document) -> None:
    from ...atomic import atomic_write_text

    atomic_write_text(path, json.dumps(document, indent=2) + "\n")


def default_out(args: argparse.Namespace) -> Path:
    """The run folder when --out is not given."""
    return Path(f"runs/{Path(args.model).stem}-detection-s{args.seed}")


def train(args: argparse.Namespace) -> int:
    import torch

    from ...checkpoint import save
    from ...detection.training import MEAN, STD, evaluate_detector, train_detector
    from ...registry import create_model

    out = Path(args.out or default_out(args))
    out.mkdir(parents=True, exist_ok=True)
    train_file, val_file = _splits(args.data, out, args.seed)
    train_set = _load(train_file, args)
    val_set = _load(val_file, args, class_names=train_set.class_names)
    size = args.resolution or 320
    torch.manual_seed(args.seed)
    try:
        model = create_model(args.model, num_classes=len(train_set.class_names))
    except (KeyError, ValueError) as error:
        raise UsageError(str(error).strip("'\"")) from None
    if getattr(model.spec, "task", None) != "detection":
        raise UsageError(f"{args.model} is not a detection model; see `edgevision models --task detection`")
    model = _with_options(model, args)
    result = train_detector(model, train_set, epochs=args.epochs or 10, batch_size=args.batch_size or 16,
                            lr=args.lr or 3e-3, image_size=size, seed=args.seed)
    metrics = evaluate_detector(model, val_set, val_file, image_size=size)
    save(model, out / "model.safetensors", metadata={
        "task": "detection", "dataset": str(val_file), "class_names": train_set.class_names,
        "preprocess": {"resolution": size, "mean": list(MEAN), "std": list(STD)}, "seed": args.seed})
    _write(out / "metrics.json", {"model": args.model, "task": "detection", "epochs": len(result["losses"]),
                                  "losses": result["losses"], "train_seconds": result["train_seconds"], **metrics})
    print(f"{args.model}: mAP {metrics['mAP']:.3f} AP50 {metrics['AP50']:.3f} on {len(val_set.samples)} images; {out / 'model.safetensors'}")
    return 0


def evaluate(args: argparse.Namespace, metadata: dict) -> int:
    from ...checkpoint import load
    from ...detection.metrics import coco_detection_metrics, detection_calibration
    from ...detection.training import detector_corruption_map, predict_detections

    data = args.data or metadata.get("dataset")
    if not data or not Path(data).is_file():
        raise UsageError(f"--data {data}: give the COCO annotation file to evaluate on")
    model = _with_options(load(args.checkpoint), args)
    dataset = _load(data, args, class_names=metadata.get("class_names"))
    size = metadata.get("preprocess", {}).get("resolution", 320)
    batch_size = min(args.batch_size, 64)
    image_ids = [s.image_id for s in dataset.samples]
    detections = predict_detections(model, dataset, image_size=size, batch_size=batch_size)
    metrics = {"checkpoint": str(args.checkpoint), "task": "detection", "data": str(data), "images": len(image_ids),
               **coco_detection_metrics(data, image_ids, detections)}
    print(" ".join(f"{k} {metrics[k]:.3f}" for k in ("mAP", "AP50", "AP75", "APs", "APm", "APl")))
    if args.calibration:
        from ...evaluation.calibration import reliability_diagram

        report = detection_calibration(data, image_ids, detections, bins=args.bins, iou_threshold=0.5, min_score=args.calibration_min_score)
        folder = Path(args.out) if args.out else Path(args.checkpoint).parent
        folder.mkdir(parents=True, exist_ok=True)
        png = reliability_diagram(report.calibration, folder / f"{Path(args.checkpoint).stem}.reliability.png", title=model.spec.name,
                                  confidence_label="detection score (right = matched at IoU 0.5)")
        metrics["calibration"] = report.to_dict()
        print(f"detection calibration: ECE {report.ece:.4f} over {report.detections} detections scoring >= "
              f"{report.min_score:g} ({args.bins} bins, matched at IoU 0.5); reliability diagram: {png}")
    if args.corruptions:
        robustness = detector_corruption_map(model, dataset, data, image_size=size, batch_size=batch_size)
        metrics["corruptions"] = robustness
        for name, values in robustness["mAP"].items():
            print(f"mAP under {name} (severity 1..5): " + " ".join(f"{v:.3f}" for v in values))
        print(f"clean mAP {robustness['clean_mAP']:.3f}; mean corruption mAP {robustness['mean_corruption_mAP']:.3f}")
    if args.json:
        _write(args.json, metrics)
    return 0
