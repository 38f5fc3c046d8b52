"""``train --task depth`` / ``eval --task depth``: FCRN-style monocular depth (``edgevision.depth``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._common import UsageError, float_in, int_in, positive_float

__all__ = ["add_arguments", "train", "evaluate"]

#: crop H x W when --resolution is not given, per data source (procedural scenes are rendered 120 x 160)
PROCEDURAL_CROP = (96, 128)


def add_arguments(group, command: str) -> None:
    """This task's own options on ``edgevision {command}``."""
    group.add_argument("--max-depth", type=positive_float, default=None, metavar="M",
                       help="depth: ground truth beyond M metres is invalid, predictions are clamped to it (default: the model's, 10 for NYU-v2)")
    group.add_argument("--min-depth", type=positive_float, default=None, metavar="M", help="depth: ground truth at or below M metres is invalid (default 0.001)")
    group.add_argument("--depth-scale", type=positive_float, default=1000.0, metavar="S", help="depth: 16-bit PNG value per metre (default 1000: NYU-v2 mm)")
    group.add_argument("--depth-downsample", type=int, choices=(1, 2, 4), default=None, metavar="F",
                       help="depth: shrink nyu:DIR frames F times first (2: FCRN's 640x480 -> 320x240 before the 228x304 crop; "
                       "default 1, eval: the checkpoint's)")
    if command == "train":
        group.add_argument("--depth-scenes", type=int_in(1, 100_000, "a scene count"), default=48, metavar="N", help="depth: procedural training scenes (default 48)")
        group.add_argument("--depth-max-scale", type=float_in(1, 4, "a scale factor >= 1"), default=1.0, metavar="S",
                           help="depth: random scale augmentation in [1, S], depth divided by the scale (default 1: off)")


def _depth_range(args: argparse.Namespace, spec) -> tuple[float, float]:
    low = args.min_depth if args.min_depth is not None else getattr(spec, "min_depth", 1e-3)
    high = args.max_depth if args.max_depth is not None else getattr(spec, "max_depth", 10.0)
    if high <= low:
        raise UsageError(f"--max-depth {high:g} must be greater than --min-depth {low:g}")
    return low, high


def _crop(args: argparse.Namespace, source: str, spec) -> tuple[int, int]:
    if args.resolution is not None:
        if args.resolution < 32:
            raise UsageError(f"--resolution must be >= 32 for depth (the crop height; the width is 4/3 of it), got {args.resolution}")
        return args.resolution, args.resolution * 4 // 3
    return PROCEDURAL_CROP if source.split(":")[0] in ("default", "procedural") else tuple(spec.input_size)


def default_out(args: argparse.Namespace) -> Path:
    """The run folder when --out is not given."""
    return Path(f"runs/{Path(args.model).stem}-depth-s{args.seed}")


def train(args: argparse.Namespace) -> int:
    from ...checkpoint import CheckpointError, load, save
    from ...depth.data import DepthDataError, depth_pairs
    from ...depth.spec import DepthModelSpec
    from ...depth.training import IMAGENET_MEAN, IMAGENET_STD, train_depth
    from ...registry import create_model, get_spec
    from ...training.loop import seed_everything
    from ...console import stderr_console

    console = stderr_console()
    seed_everything(args.seed)
    if args.model.endswith(".safetensors"):
        try:
            model = load(args.model).train()
        except CheckpointError as error:
            raise UsageError(str(error)) from None
    else:
        try:
            spec = get_spec(args.model)
        except KeyError as error:
            raise UsageError(str(error).strip("'\"")) from None
        if not isinstance(spec, DepthModelSpec):
            raise UsageError(f"{args.model} is not a depth model; see `edgevision models --task depth`")
        _depth_range(args, spec), _crop(args, args.data, spec)  # refused before the model is built
        model = create_model(args.model)
    spec = model.spec
    if not isinstance(spec, DepthModelSpec):
        raise UsageError(f"{args.model} is not a depth model; see `edgevision models --task depth`")
    min_depth, max_depth = _depth_range(args, spec)
    crop = _crop(args, args.data, spec)
    try:
        downsample = args.depth_downsample or 1
        name, train_pairs = depth_pairs(args.data, "train", args.depth_scenes, args.depth_scale, downsample)
        _, val_pairs = depth_pairs(args.data, "test", args.depth_scenes, args.depth_scale, downsample)
        epochs = args.epochs or 10
        batch_size = args.batch_size or 8
        lr = args.lr or (1e-2 if args.optimizer == "sgd" else 1e-3)
        out = Path(args.out or default_out(args))
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {str(out)!r} is a file; give a folder")
        console.print(f"training {spec.name} on {name}: {len(train_pairs)} train / {len(val_pairs)} test images, crop {crop[0]}x{crop[1]}, "
                      f"{epochs} epochs, batch {batch_size}, lr {lr:g}, depth ({min_depth:g}, {max_depth:g}] m")
        result = train_depth(model, train_pairs, val_pairs, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=args.optimizer or "adamw",
                             crop=crop, min_depth=min_depth, max_depth=max_depth, max_scale=args.depth_max_scale, seed=args.seed,
                             out_dir=out, progress=args.progress, log=lambda text: console.print(text), pending_metrics=True)
    except DepthDataError as error:
        raise UsageError(str(error)) from None
    except ValueError as error:
        raise UsageError(str(error)) from None
    metadata = {
        "task": "depth",
        "dataset": name,
        "preprocess": {"resolution": crop[0], "crop": list(crop), "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "min_depth": min_depth,
        "max_depth": max_depth,
        "depth_scale": args.depth_scale,
        "depth_downsample": downsample,
        "seed": args.seed,
        "epochs": epochs,
        "metrics": result.final,
    }
    from ...training.loop import commit_metrics

    path = commit_metrics(out, lambda: save(result.model.cpu(), out / "model.safetensors", metadata))  # metrics.jsonl with its checkpoint
    final = result.final
    print(f"{spec.name}: test abs rel {final['val_abs_rel']:.4f}, RMSE {final['val_rmse']:.4f} m, delta1 {final['val_delta1']:.3f} "
          f"after {epochs} epochs, {result.train_seconds:.1f} s training; wrote {path} and metrics.jsonl in {out}")
    return 0


def evaluate(args: argparse.Namespace, metadata: dict) -> int:
    from ...atomic import atomic_write_text, check_writable
    from ...checkpoint import CheckpointError, load
    from ...depth.data import DepthDataError, checkpoint_downsample, depth_pairs
    from ...depth.metrics import DEPTH_METRICS
    from ...depth.training import IMAGENET_MEAN, IMAGENET_STD, evaluate_depth

    if args.json:
        check_writable(args.json)
    try:
        model = load(args.checkpoint)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    if getattr(model.spec, "task", None) != "depth":
        raise UsageError(f"{args.checkpoint!r} holds a {getattr(model.spec, 'task', 'classification')} model, not a depth model")
    min_depth = args.min_depth if args.min_depth is not None else float(metadata.get("min_depth", model.spec.min_depth))
    max_depth = args.max_depth if args.max_depth is not None else float(metadata.get("max_depth", model.spec.max_depth))
    if max_depth <= min_depth:
        raise UsageError(f"--max-depth {max_depth:g} must be greater than --min-depth {min_depth:g}")
    preprocess = metadata.get("preprocess", {})
    source = args.data or metadata.get("dataset") or "procedural"
    try:
        name, pairs = depth_pairs(source, "test", depth_scale=args.depth_scale, downsample=checkpoint_downsample(source, metadata, args.depth_downsample))
        metrics = evaluate_depth(model, pairs, mean=preprocess.get("mean", IMAGENET_MEAN), std=preprocess.get("std", IMAGENET_STD),
                                 min_depth=min_depth, max_depth=max_depth, batch_size=min(args.batch_size, 16))
    except DepthDataError as error:
        raise UsageError(str(error)) from None
    report = {"checkpoint": str(args.checkpoint), "model": model.spec.name, "task": "depth", "dataset": name,
              "min_depth": min_depth, "max_depth": max_depth, **metrics}
    print(f"{model.spec.name} on {name} ({metrics['images']} images): " + ", ".join(f"{k} {metrics[k]:.4f}" for k in DEPTH_METRICS))
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0
