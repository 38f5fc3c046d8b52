"""``edgevision train``: train a registered model (or fine-tune a checkpoint) and write a self-describing checkpoint.

The run folder (``--out``) gets ``model.safetensors`` (train form; ``--deploy`` adds
``model.deploy.safetensors``), ``metrics.jsonl`` and ``metrics.csv``. Under ``torchrun`` it
trains data-parallel on every process (``--batch-size`` is the global batch); rank 0 writes.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..task_spec import TASK_NAMES
from ._common import UsageError, check_input_memory, output_lock, fraction, int_in, nonempty, nonnegative_float, nonnegative_int, output_dir, positive_float, positive_int, seed
from .tasks import add_task_arguments, task_command

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train a model on a dataset (embedded MNIST by default) with the basic or Bag-of-Tricks recipe",
        description="Train a registered model, or fine-tune a checkpoint (MODEL = path/to/model.safetensors) with a new head. "
        "Writes a self-describing checkpoint (spec + safetensors weights + metadata) and per-epoch metrics.",
    )
    parser.add_argument("model", help="registered model name, or a .safetensors checkpoint to fine-tune")
    parser.add_argument("--task", choices=TASK_NAMES, default="classification", help="what the model predicts (default classification); "
                        "the other tasks' options are listed in their groups below")
    parser.add_argument("--data", type=nonempty, default="default", help="default | cifar10:DIR | cifar100:DIR | imagefolder:DIR | npz:FILE (default: default). Dense tasks: segmentation "
                        "default | voc:DIR | cityscapes:DIR | coco:JSON | masks:DIR; detection scenes | instances_<split>.json; "
                        "super-resolution default (bundled photos) | folder:DIR; depth procedural[:N] | nyu:DIR")
    parser.add_argument("--epochs", type=positive_int, default=None, metavar="N", help="epochs (default: the recipe's, 10)")
    parser.add_argument("--resolution", type=positive_int, default=None, metavar="R", help="training resolution R x R (default 32; dense tasks: their own)")
    parser.add_argument("--recipe", default="tricks", choices=("basic", "tricks"), help="recipe preset (default tricks)")
    parser.add_argument("--out", type=output_dir, default=None, metavar="DIR", help="run folder (default runs/MODEL-RECIPE-sSEED)")
    parser.add_argument("--batch-size", type=positive_int, default=None, metavar="B", help="global batch size; the lr scales linearly (default 64)")
    parser.add_argument("--lr", type=positive_float, default=None, help="learning rate at the batch size (overrides the scaled one)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default=None, help="optimizer (default: the recipe's, sgd)")
    parser.add_argument("--ema", type=fraction, default=None, metavar="DECAY", help="keep and save an EMA of the weights, e.g. 0.999")
    parser.add_argument("--grad-clip", type=positive_float, default=None, metavar="NORM", help="clip the gradient L2 norm")
    parser.add_argument("--cutmix", type=nonnegative_float, default=None, metavar="ALPHA", help="CutMix alpha (0 off)")
    parser.add_argument("--seed", type=seed, default=0, help="seed for initialization, batch order and augmentation (default 0)")
    parser.add_argument("--workers", type=int_in(0, 256, "a worker count"), default=None, help="DataLoader worker processes (default: 0 for in-memory data, cores-1 for image folders)")
    parser.add_argument("--freeze-backbone", action="store_true", help="when fine-tuning a checkpoint: train only the new classifier")
    parser.add_argument("--on-corrupt", choices=("skip", "fail"), default="skip", help="image folders: skip (and report) or stop at a corrupt image")
    parser.add_argument("--deploy", action="store_true", help="also save the re-parameterized deploy form")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_task_arguments(parser, "train")
    parser.set_defaults(handler=run)


def _recipe(args: argparse.Namespace):
    import dataclasses

    from ..training import get_recipe

    recipe = get_recipe(args.recipe)
    changes = {}
    if args.epochs is not None:
        if args.epochs < 1:
            raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
        changes["epochs"] = args.epochs
        changes["warmup_epochs"] = min(recipe.warmup_epochs, args.epochs / 2)  # keep warm-up a minority of a short run
    for option, name in (("optimizer", "optimizer"), ("ema", "ema_decay"), ("grad_clip", "grad_clip_norm"), ("cutmix", "cutmix_alpha")):
        if getattr(args, option) is not None:
            changes[name] = getattr(args, option)
    if changes.get("optimizer") == "adamw":
        changes.update(nesterov=False, lr=recipe.lr / 25)  # AdamW: 1e-3 at batch 64 instead of SGD's 0.025
    try:
        recipe = dataclasses.replace(recipe, **changes)
        if args.batch_size is not None:
            if args.batch_size < 1:
                raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
            recipe = recipe.with_batch_size(args.batch_size)
        if args.lr is not None:
            recipe = dataclasses.replace(recipe, lr=args.lr)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return recipe


def _model(args: argparse.Namespace, num_classes: int, in_channels: int):
    """(model, source description, fresh_init)."""
    from ..checkpoint import CheckpointError, load
    from ..registry import create_model
    from ..training.transfer import new_head_from

    if args.model.endswith(".safetensors"):
        try:
            source = load(args.model)
            model = new_head_from(source.train(), num_classes, "frozen" if args.freeze_backbone else "full")
        except (CheckpointError, ValueError, TypeError) as error:
            raise UsageError(str(error)) from None
        return model, {"from_checkpoint": str(args.model), "mode": "frozen" if args.freeze_backbone else "full"}, False
    if args.freeze_backbone:
        raise UsageError("--freeze-backbone needs MODEL to be a trained checkpoint (.safetensors); a new model has nothing to freeze")
    try:
        return create_model(args.model, num_classes=num_classes, in_chans=in_channels), None, True
    except KeyError as error:
        raise UsageError(f"{error}; or give a .safetensors checkpoint to fine-tune") from None


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import save
    from ..datasets import DataError, load_data
    from ..reparam import reparameterize
    from ..training import init_from_environment, seed_everything, train
    from ..training.loop import commit_metrics
    from ..training.ddp import shutdown
    from ._common import stderr_console

    if args.task != "classification":
        module = task_command(args.task)
        if args.out is None:  # the task's own default folder, so that it is locked like a given --out
            args.out = str(module.default_out(args))
        with output_lock(args.out, "run folder", enabled=_is_rank_zero()):  # two trainings into one folder: the second is refused
            return module.train(args)
    if args.resolution is None:
        args.resolution = 32
    if args.resolution < 8:
        raise UsageError(f"--resolution must be >= 8 (networks downsample 32x; 32 is the smallest sensible), got {args.resolution}")
    recipe = _recipe(args)
    check_input_memory((recipe.batch_size, 3, args.resolution, args.resolution), "--batch-size x 3 x --resolution^2")
    out = Path(args.out or f"runs/{Path(args.model).stem}-{args.recipe}-s{args.seed}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder")
    context = init_from_environment()
    console = stderr_console()
    held = contextlib.ExitStack()
    try:
        held.enter_context(output_lock(out, "run folder", enabled=context.is_main))  # a second training into this folder is refused
        try:
            data = load_data(args.data, image_size=args.resolution, on_corrupt=args.on_corrupt)
        except DataError as error:
            raise UsageError(str(error)) from None
        for message in data.skipped:
            console.print(f"[yellow]skipped corrupt image[/] {message}")
        seed_everything(args.seed)
        model, transfer, fresh_init = _model(args, data.num_classes, data.in_channels)
        if context.is_main:
            console.print(
                f"training {args.model} on {data.name}: {len(data.train)} train / {len(data.val)} val images, "
                f"{data.num_classes} classes, {args.resolution}x{args.resolution}, recipe {recipe.name}, {recipe.epochs} epochs, "
                f"batch {recipe.batch_size}, lr {recipe.lr:g}" + (f", {context.world_size} processes" if context.enabled else "")
            )
        try:
            result = train(model, data, recipe, resolution=args.resolution, seed=args.seed, out_dir=out if context.is_main else None,
                           workers=args.workers, progress=args.progress, fresh_init=fresh_init, pending_metrics=True)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if not context.is_main:
            return 0
        metadata = {
            "task": "classification",
            "dataset": data.name,
            "class_names": list(data.class_names),
            "multi_label": data.multi_label,
            "preprocess": {"resolution": args.resolution, "mean": list(data.mean), "std": list(data.std)},
            "recipe": recipe.to_dict(),
            "seed": args.seed,
            "metrics": result.final,
            "transfer": transfer,
            "world_size": context.world_size,
        }
        trained = result.model.cpu()

        def write_checkpoints() -> list[str]:
            written = [str(save(trained, out / "model.safetensors", metadata))]
            if args.deploy:
                written.append(str(save(reparameterize(trained), out / "model.deploy.safetensors", metadata)))
            return written

        written = commit_metrics(out, write_checkpoints)  # metrics.* change only with the checkpoint they describe
        final = result.final
        score = f"val top-1 {final['val_top1']:.2%}" if "val_top1" in final else f"val F2 {final.get('val_f2', float('nan')):.3f}"
        print(f"{args.model}: {score} after {recipe.epochs} epochs, {result.train_seconds:.1f} s training, "
              f"{final['train_images_per_second_overall']:.0f} images/s; wrote {', '.join(written)} and metrics.jsonl/csv in {out}")
        return 0
    except BaseException:
        held.__exit__(*sys.exc_info())  # with the error: a refused run removes the folder it created (if still empty)
        raise
    finally:
        held.close()
        shutdown()


def _is_rank_zero() -> bool:
    """Under torchrun only rank 0 writes the run folder (and so holds its lock)."""
    import os

    return os.environ.get("RANK", "0") == "0"
