"""``train --task segmentation`` / ``eval --task segmentation``: LR-ASPP, DeepLabv3, U-Net on real label formats.

``--data``: default (embedded procedural scenes) | voc:DIR | cityscapes:DIR | coco:FILE.json | masks:DIR.
Training prints per-epoch val mIoU and writes ``model.safetensors`` (metadata: task, dataset,
class_names, preprocess) and ``metrics.json``; eval prints and (``--json``) writes ``miou``,
``pixel_accuracy``, ``per_class_iou``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._common import UsageError, int_in, nonnegative_float

__all__ = ["add_arguments", "train", "evaluate"]


def add_arguments(group, command: str) -> None:
    """This task's own options on ``edgevision {command}``."""
    group.add_argument("--ignore-index", type=int_in(0, 255, "a label id of 8-bit masks"), default=255, metavar="ID", help="segmentation: label id left out of loss and metrics; 255 (void: borders, crop padding) is always left out (default 255)")
    group.add_argument("--seg-on-error", choices=("skip", "fatal"), default="skip",
                       help="segmentation: a bad sample (missing file, size mismatch, unknown class id) is skipped and reported, or fatal")
    if command == "train":
        group.add_argument("--aux-weight", type=nonnegative_float, default=0.5, metavar="W", help="segmentation: weight of the aux head's loss (default 0.5)")
        group.add_argument("--seg-scenes", type=int_in(1, 100_000, "a scene count"), default=96, metavar="N", help="segmentation, --data default: training scenes to generate (default 96)")


def _data(args, seed: int):
    from ...datasets.base import DataError
    from ...segmentation.data import load_segmentation_data

    dataset = args.data or "default"
    cache = Path(args.out) if getattr(args, "out", None) else None
    try:
        count = getattr(args, "seg_scenes", 96)
        return load_segmentation_data(dataset, on_error=args.seg_on_error, cache_dir=cache, scene_images=(count, 32), seed=seed)
    except DataError as error:
        raise UsageError(str(error)) from None


def _report_problems(console, *datasets) -> None:
    for dataset in datasets:
        for line in dataset.report.problems:
            console.print(f"[yellow]skipped[/] {line}")
        for line in dataset.report.notes:
            console.print(f"note: {line}")


def default_out(args: argparse.Namespace) -> Path:
    """The run folder when --out is not given."""
    return Path(f"runs/{args.model}-seg-s{args.seed}")


def train(args: argparse.Namespace) -> int:
    import torch

    from ...checkpoint import save
    from ...registry import UnknownModelError, create_model, model_task
    from ...reparam import reparameterize
    from ...atomic import atomic_write_text
    from ...segmentation.training import IMAGENET_MEAN, IMAGENET_STD, SegmentationRecipe, train_segmentation
    from .._common import stderr_console

    console = stderr_console()
    try:
        if model_task(args.model) != "segmentation":
            raise UsageError(f"{args.model} is a {model_task(args.model)} model; --task segmentation trains: see `edgevision models --task segmentation`")
    except UnknownModelError as error:
        raise UsageError(str(error)) from None
    resolution = args.resolution or 160
    if resolution < 32:
        raise UsageError(f"--resolution must be >= 32 for segmentation (the backbones reduce 16-32x), got {resolution}")
    out = Path(args.out or default_out(args))
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    args.out = str(out)
    train_set, val_set = _data(args, args.seed)
    _report_problems(console, train_set, val_set)
    torch.manual_seed(args.seed)
    model = create_model(args.model, num_classes=train_set.num_classes)
    optimizer = args.optimizer or "adamw"
    recipe = SegmentationRecipe(
        epochs=args.epochs or 10, batch_size=args.batch_size or 8, optimizer=optimizer,
        lr=args.lr or (1e-3 if optimizer == "adamw" else 0.01), aux_weight=args.aux_weight, crop_size=resolution, ignore_index=args.ignore_index,
    )
    console.print(f"training {args.model} on {args.data}: {len(train_set)} train / {len(val_set)} val images, {train_set.num_classes} classes, "
                  f"{resolution}x{resolution} crops, {recipe.epochs} epochs, batch {recipe.batch_size}, {optimizer} lr {recipe.lr:g}")
    log = (lambda line: console.print(line)) if args.progress else None
    try:
        result = train_segmentation(model, train_set, val_set, recipe, seed=args.seed, out_dir=out, workers=args.workers or 0, log=log)
    except ValueError as error:
        raise UsageError(str(error)) from None
    metrics = {key: result.final[key] for key in ("miou", "pixel_accuracy", "per_class_iou", "train_loss")}
    metadata = {
        "task": "segmentation", "dataset": args.data, "class_names": list(train_set.class_names),
        "preprocess": {"resolution": resolution, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "ignore_index": args.ignore_index},
        "recipe": recipe.to_dict(), "seed": args.seed, "metrics": metrics,
    }
    trained = result.model.cpu().eval()
    written = [str(save(trained, out / "model.safetensors", metadata))]
    if args.deploy:
        written.append(str(save(reparameterize(trained), out / "model.deploy.safetensors", metadata)))
    atomic_write_text(out / "metrics.json", json.dumps({"history": result.history, "final": metrics}, indent=1))
    print(f"{args.model}: val mIoU {metrics['miou']:.4f}, pixel accuracy {metrics['pixel_accuracy']:.4f} after {recipe.epochs} epochs, "
          f"{result.train_seconds:.1f} s training; wrote {', '.join(written)} and metrics.json in {out}")
    return 0


def evaluate(args: argparse.Namespace, metadata: dict) -> int:
    from ...atomic import atomic_write_text
    from ...checkpoint import CheckpointError, load
    from ...segmentation.training import evaluate_segmentation

    try:
        model = load(args.checkpoint)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    args.data = args.data or metadata.get("dataset")  # --json was checked writable by `eval` before dispatching
    if not args.data:
        raise UsageError(f"{args.checkpoint!r} does not record its dataset; pass --data")
    args.out = str(Path(args.checkpoint).parent)  # --data default: the scenes cached beside the run
    _, val_set = _data(args, int(metadata.get("seed", 0)))
    from .._common import stderr_console

    _report_problems(stderr_console(), val_set)
    stored = metadata.get("class_names")
    if val_set.num_classes != model.spec.num_classes or (stored and list(stored) != list(val_set.class_names)):
        raise UsageError(f"{args.data} has classes {list(val_set.class_names)[:6]}... ({val_set.num_classes}) but the checkpoint predicts "
                         f"{model.spec.num_classes}{' ' + str(stored[:6]) + '...' if stored else ''}; evaluate on its own dataset")
    resolution = int(metadata.get("preprocess", {}).get("resolution", model.spec.input_size))
    result = evaluate_segmentation(model, val_set, resolution=resolution, batch_size=min(args.batch_size, 16), ignore_index=args.ignore_index)
    report = {"checkpoint": str(args.checkpoint), "task": "segmentation", "dataset": args.data, "resolution": resolution, **result,
              "skipped": val_set.report.problems}
    print(f"{args.checkpoint}: {result['images']} images of {args.data}: mIoU {result['miou']:.4f}, pixel accuracy {result['pixel_accuracy']:.4f}")
    for name, iou in result["per_class_iou"].items():
        print(f"  {name:>16}: {'-' if iou is None else f'{iou:.4f}'}")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=1))
    return 0
