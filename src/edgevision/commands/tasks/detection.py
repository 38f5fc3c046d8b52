"""``train --task detection`` / ``eval --task detection``: detectors on COCO JSON (or the embedded scenes).

``--data`` is a COCO instances JSON (images beside it in ``../images/<split>``), or ``scenes`` for the
embedded procedural scenes (generated into the run folder: 256 train / 64 val images, 5 classes).
A train file ``.../instances_train.json`` is validated on ``instances_val.json`` beside it when present.

Training is resumable after ``kill -9``: after every epoch the run folder gets the optimizer state
``optimizer.step<N>.pt`` (N = optimizer steps done), then ``last.safetensors`` (weights, with the step,
the recipe and the per-epoch rows in its metadata) marks that step complete, then older states go.
Rerunning the same command resumes at ``last.safetensors``'s step and ends with the same weights as an
uninterrupted run; a different recipe (model, data, epochs, batch, lr, resolution, seed, augmentation)
starts afresh. ``model.safetensors`` and its ``metrics.jsonl`` / ``metrics.csv`` (one row per epoch, the
last with the validation metrics) are replaced together (:func:`~edgevision.training.loop.commit_metrics`);
``metrics.json`` is the summary written after them.
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
    if command == "train":
        group.add_argument("--det-augment", choices=tuple(AUGMENTATIONS), default="ssd",
                           help="detection: ssd = random scale/crop/expand + flip + photometric jitter (default); flip = flip only; none")


#: --det-augment choices -> the augmentation (built lazily: torch is not imported to build the parser)
AUGMENTATIONS = {"ssd": "SSD_AUGMENTATION", "flip": "FLIP_ONLY", "none": None}


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


def _state_file(out: Path, step: int) -> Path:
    """The optimizer state of ``step``, saved beside last.safetensors and named for its step."""
    return out / f"optimizer.step{step}.pt"


def _resume_point(out: Path, recipe: dict):
    """(model, epoch, step, optimizer state, rows) of last.safetensors when it was written by this recipe, else None."""
    import torch

    from ...checkpoint import CheckpointError, load, read_metadata

    last = out / "last.safetensors"
    if not last.is_file():
        return None
    try:
        previous = read_metadata(last)
    except (CheckpointError, OSError, ValueError):
        return None
    step = previous.get("step")
    if previous.get("recipe") != recipe or not isinstance(step, int) or not _state_file(out, step).is_file():
        return None
    return (load(last), int(previous["epoch"]), step, torch.load(_state_file(out, step), weights_only=True), list(previous["history"]))


def train(args: argparse.Namespace) -> int:
    import torch

    from ...atomic import atomic_path
    from ...checkpoint import save
    from ...detection import data as detection_data
    from ...detection.training import MEAN, STD, evaluate_detector, train_detector
    from ...registry import create_model
    from ...training.loop import MetricsLog

    out = Path(args.out or default_out(args))
    out.mkdir(parents=True, exist_ok=True)
    train_file, val_file = _splits(args.data, out, args.seed)
    train_set = _load(train_file, args)
    val_set = _load(val_file, args, class_names=train_set.class_names)
    size = args.resolution or 320
    augmentation = getattr(detection_data, AUGMENTATIONS[args.det_augment]) if AUGMENTATIONS[args.det_augment] else None
    epochs, batch_size, lr = args.epochs or 10, args.batch_size or 16, args.lr or 3e-3
    torch.manual_seed(args.seed)
    try:
        model = create_model(args.model, num_classes=len(train_set.class_names))
    except (KeyError, ValueError) as error:
        raise UsageError(str(error).strip("'\"")) from None
    if getattr(model.spec, "task", None) != "detection":
        raise UsageError(f"{args.model} is not a detection model; see `edgevision models --task detection`")
    model = _with_options(model, args)
    recipe = {"model": args.model, "spec": json.loads(model.spec.to_json()), "data": str(train_file), "class_names": train_set.class_names,
              "epochs": epochs, "batch_size": batch_size, "lr": lr, "resolution": size, "seed": args.seed, "optimizer": "adamw", "schedule": "cosine",
              "augmentation": augmentation.to_dict() if augmentation else None}
    metadata = {"task": "detection", "dataset": str(val_file), "class_names": train_set.class_names,
                "preprocess": {"resolution": size, "mean": list(MEAN), "std": list(STD)}, "seed": args.seed, "recipe": recipe}
    start_epoch, optimizer_state, rows = 0, None, []
    resumed = _resume_point(out, recipe)
    if resumed is not None:
        model, start_epoch, step, optimizer_state, rows = resumed
        print(f"resuming {out / 'last.safetensors'} at epoch {start_epoch}/{epochs} (step {step})")
    log = MetricsLog(out)  # restores the metrics of a run killed while committing; drops a killed run's rows
    for row in rows:
        log.append(row)

    def checkpoint_epoch(state: dict) -> None:
        # the optimizer state of step N, then last.safetensors naming step N, then older states go:
        # a kill anywhere leaves last.safetensors with its own step's state to resume from
        with atomic_path(_state_file(out, state["step"])) as temporary:
            torch.save(state["optimizer"], temporary)
        rows.append({"epoch": state["epoch"], "step": state["step"], "train_loss": state["losses"][-1], "lr": state["lr"]})
        save(model, out / "last.safetensors", {**metadata, "epoch": state["epoch"], "step": state["step"], "history": rows})
        for stale in out.glob("optimizer.step*.pt"):
            if stale != _state_file(out, state["step"]):
                stale.unlink(missing_ok=True)
        log.append(rows[-1])

    result = train_detector(model, train_set, epochs=epochs, batch_size=batch_size, lr=lr, image_size=size, seed=args.seed,
                            augmentation=augmentation, start_epoch=start_epoch, optimizer_state=optimizer_state,
                            losses=[row["train_loss"] for row in rows], on_epoch=checkpoint_epoch, log=lambda line: None)
    metrics = evaluate_detector(model, val_set, val_file, image_size=size)
    final = {**rows[-1], **metrics, "val_images": len(val_set.samples)}
    log.rows.pop()  # the last epoch's row, now with the validation metrics of the weights it ends with
    log.append(final)
    log.commit(lambda: save(model, out / "model.safetensors", {**metadata, "metrics": final}))
    losses = [row["train_loss"] for row in rows]
    _write(out / "metrics.json", {"model": args.model, "task": "detection", "epochs": len(losses), "losses": losses,
                                  "train_seconds": result["train_seconds"], **metrics})
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
