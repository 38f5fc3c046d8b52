"""``train --task super-resolution`` / ``eval --task super-resolution``: patch training of the SR zoo
(CARN, CARN-M, GhostSR-CARN, EFDN, real-time SRGAN) on L1, optionally with a relativistic GAN term, teacher
distillation (``--teacher``) and DRN dual regression (``--dual``), and the Y-channel PSNR/SSIM report beside bicubic."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .._common import UsageError, int_in, nonnegative_float, nonnegative_int, positive_float, positive_int, stderr_console

__all__ = ["add_arguments", "train", "evaluate", "load_sr_data"]

TASK = "super-resolution"


def add_arguments(group, command: str) -> None:
    """This task's own options on ``edgevision {command}``."""
    group.add_argument("--scale", type=int_in(2, 8, "an SR scale (2, 3, 4 or 8)"), default=None,
                       help="SR factor (train: default the model's, 4; eval: must be the checkpoint's)")
    group.add_argument("--tile", type=positive_int, default=None, metavar="PX",
                       help="SR: run in LR tiles of PX pixels (bounded memory; default: whole images)")
    group.add_argument("--tile-overlap", type=int_in(0, 1024, "LR pixels of context"), default=16, metavar="PX", help="SR: LR context around each tile (default 16)")
    if command == "eval":
        group.add_argument("--max-drop-db", type=nonnegative_float, default=None, metavar="DB",
                           help="SR: also quantize to INT8 (ONNX Runtime, static) and accept it if PSNR drops at most DB on LR crops")
        group.add_argument("--int8-size", type=int_in(8, 1024, "an LR side"), default=64, metavar="PX",
                           help="SR: LR side of the INT8 graph's calibration and evaluation crops, its input size unless --int8-dynamic (default 64)")
        group.add_argument("--int8-dynamic", action="store_true",
                           help="SR: make the INT8 graph take any height and width (for `upscale --onnx` and tiles); also checked on a "
                           "non-square crop and the whole images -> CKPT.int8-dynamic.onnx")
    if command == "train":
        group.add_argument("--patch-size", type=int_in(4, 1024, "an LR patch side"), default=None, metavar="PX",
                           help="SR: LR training patch side (default 24; 96-pixel HR patches at x4)")
        group.add_argument("--steps-per-epoch", type=positive_int, default=100, metavar="N", help="SR: optimizer steps per epoch (default 100)")
        group.add_argument("--val-size", type=positive_int, default=256, metavar="PX",
                           help="SR: HR centre crop of each bundled test photo for the end-of-run report (default 256)")
        group.add_argument("--teacher", default=None, metavar="CKPT",
                           help="SR: distill from this trained SR checkpoint (same scale): output L1 + matched feature maps via 1x1 adapters")
        group.add_argument("--distill-weight", type=nonnegative_float, default=1.0, metavar="W", help="SR: weight of L1 to the teacher's output (default 1)")
        group.add_argument("--feature-weight", type=nonnegative_float, default=1.0, metavar="W",
                           help="SR: weight of the matched-layer feature L1 (default 1; 0: output distillation only)")
        group.add_argument("--gan-weight", type=nonnegative_float, default=0.0, metavar="W",
                           help="SR: adversarial weight, relativistic average GAN with a patch discriminator (ESRGAN: 5e-3; default 0: off)")
        group.add_argument("--gan-start", type=_start_fraction, default=0.0, metavar="F",
                           help="SR: fraction of the steps trained without the GAN term first (ESRGAN's PSNR warm-up; default 0)")
        group.add_argument("--dual", action="store_true", help="SR: DRN dual regression, a learned downsampler closing the loop SR -> LR")
        group.add_argument("--dual-weight", type=positive_float, default=None, metavar="LAMBDA", help="SR: weight of the dual L1 (DRN: 0.1; implies --dual)")


def load_sr_data(text: str | None, scale: int, split: str):
    """--data -> SR pairs: ``default`` (bundled photos: train = JPEGs, valid = PNGs) or a dataset folder (``folder:DIR`` or DIR)."""
    from ...super_resolution.data import SRDataError, bundled_images, bundled_pairs, load_folder_pairs, make_pair

    try:
        if text in (None, "default"):
            if split == "train":
                return [make_pair(name, hr, scale) for name, hr in bundled_images("train")], "bundled-jpeg"
            return bundled_pairs(scale), "bundled-png"
        folder = text.split(":", 1)[1] if text.startswith("folder:") else text
        return load_folder_pairs(folder, scale, split="train" if split == "train" else "valid"), f"folder:{folder}"
    except SRDataError as error:
        raise UsageError(str(error)) from None


def _spec_for(args, scale_option):
    from ...registry import get_spec, list_models
    from ...task_spec import TaskModelSpec

    name = args.model
    if name.endswith(".safetensors"):
        from ...checkpoint import CheckpointError, load

        try:
            model = load(name)
        except CheckpointError as error:
            raise UsageError(str(error)) from None
        spec = model.spec
        if getattr(spec, "task", None) != TASK:
            raise UsageError(f"{name!r} holds a {getattr(spec, 'task', 'classification')} model, not a super-resolution one")
        if scale_option is not None and scale_option != spec.scale:
            raise UsageError(f"{name!r} is a x{spec.scale} model; fine-tune it at --scale {spec.scale} or train a registered model at x{scale_option}")
        return spec, model
    if name not in list_models(name, task=TASK):
        known = ", ".join(list_models(task=TASK))
        raise UsageError(f"{name!r} is not a registered super-resolution model; choose one of {known}")
    spec = get_spec(name)
    assert isinstance(spec, TaskModelSpec)
    if scale_option is not None:
        try:
            spec = spec.with_scale(scale_option)
        except ValueError as error:
            raise UsageError(str(error)) from None
    return spec, None


def _start_fraction(text: str) -> float:
    value = nonnegative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction of the run in [0, 1), got {text!r}")
    return value


def _load_teacher(args, spec):
    """--teacher CKPT -> the frozen teacher generator (a trained SR checkpoint at the student's scale), or None."""
    if args.teacher is None:
        return None
    from ...checkpoint import CheckpointError, load

    if not args.teacher.endswith(".safetensors"):
        raise UsageError(f"--teacher {args.teacher!r} must be a trained super-resolution checkpoint (.safetensors), e.g. runs/carn-x4/model.safetensors")
    try:
        teacher = load(args.teacher)
    except CheckpointError as error:
        raise UsageError(f"--teacher: {error}") from None
    teacher_spec = teacher.spec
    if getattr(teacher_spec, "task", None) != TASK:
        raise UsageError(f"--teacher {args.teacher!r} holds a {getattr(teacher_spec, 'task', 'classification')} model, not a super-resolution one")
    if teacher_spec.scale != spec.scale:
        raise UsageError(f"--teacher {args.teacher!r} is a x{teacher_spec.scale} model but the student trains at x{spec.scale}; give a x{spec.scale} teacher")
    if (args.patch_size or 24) < teacher_spec.min_input_size:
        raise UsageError(f"--patch-size {args.patch_size or 24} is smaller than the teacher {teacher_spec.name}'s minimum input {teacher_spec.min_input_size}")
    return teacher


def _objectives(args, spec, model, teacher):
    """The run's SRObjectives and its recipe description, or (None, None) for a plain L1 run."""
    from ...super_resolution.objectives import DRN_DUAL_WEIGHT, SRObjectiveConfig, SRObjectives

    dual_weight = args.dual_weight if args.dual_weight is not None else (DRN_DUAL_WEIGHT if args.dual else 0.0)
    if teacher is None and not args.gan_weight and not dual_weight:
        return None, None
    config = SRObjectiveConfig(gan_weight=args.gan_weight, gan_start=args.gan_start, distill_weight=args.distill_weight,
                               feature_weight=args.feature_weight, dual_weight=dual_weight)
    objectives = SRObjectives(model, spec.scale, config, teacher=teacher, in_channels=spec.in_channels)
    return objectives, config.describe(f"{args.teacher} ({teacher.spec.name})" if teacher is not None else None)


def _check_images(pairs, spec, tile, overlap) -> None:
    from ...super_resolution.tiling import check_sr_input

    for pair in pairs:
        try:
            check_sr_input(spec, pair.lr.shape[0], *pair.lr.shape[-2:], tile=tile, overlap=overlap)
        except ValueError as error:
            raise UsageError(f"{pair.name}: {error}") from None
        smallest = 11 + 2 * spec.scale  # SSIM's 11x11 window after the scale-pixel border crop
        if min(pair.hr.shape[-2:]) < smallest:
            raise UsageError(f"{pair.name}: an HR image of {pair.hr.shape[-2]}x{pair.hr.shape[-1]} is too small to score at x{spec.scale} "
                             f"(PSNR/SSIM need at least {smallest} pixels a side after trimming); remove it from the folder")


def _print_report(console, report) -> None:
    console.print(f"x{report['scale']} on {report['images']} image(s): PSNR {report['psnr']:.2f} dB (bicubic {report['bicubic_psnr']:.2f}), "
                  f"SSIM {report['ssim']:.4f} (bicubic {report['bicubic_ssim']:.4f}) — {report['metric']}")


_SIDE_FILES = ("optimizer.pt", "objectives.safetensors", "discriminator_optimizer.pt")


def _side_file(out: Path, name: str, step: int, *, reading: bool = False) -> Path:
    """A training state saved beside last.safetensors, named for the step it belongs to (optimizer.step40.pt);
    ``reading``: a run folder written before the states carried their step has only the plain name."""
    stem, _, suffix = name.partition(".")
    path = out / f"{stem}.step{step}.{suffix}"
    return out / name if reading and not path.exists() and (out / name).exists() else path


def _remove_side_files(out: Path, keep_step: int) -> None:
    """Drop the training states of every step but ``keep_step`` (the step last.safetensors now holds)."""
    for name in _SIDE_FILES:
        stem, _, suffix = name.partition(".")
        for path in out.glob(f"{stem}.step*.{suffix}"):
            if path != _side_file(out, name, keep_step):
                path.unlink(missing_ok=True)


def default_out(args: argparse.Namespace, spec=None) -> Path:
    """The run folder when --out is not given (named after the model and its scale)."""
    spec = spec if spec is not None else _spec_for(args, args.scale)[0]
    return Path(f"runs/{spec.name}-x{spec.scale}-s{args.seed}")


def train(args: argparse.Namespace) -> int:
    import torch

    from ...atomic import atomic_write_text
    from ...checkpoint import read_metadata, save
    from ...checkpoint import load as load_checkpoint
    from ...reparam import reparameterize
    from ...super_resolution.data import bundled_pairs
    from ...super_resolution.engine import SRTrainConfig, evaluate_sr, train_sr

    if args.optimizer == "sgd":
        raise UsageError("--task super-resolution trains with Adam (the CARN/EFDN recipe); leave --optimizer out or give adamw")
    spec, start_model = _spec_for(args, args.scale)
    scale = spec.scale
    torch.manual_seed(args.seed)
    patch = args.patch_size or 24
    if patch < spec.min_input_size:
        raise UsageError(f"--patch-size {patch} is smaller than {spec.name}'s minimum input {spec.min_input_size}")
    train_pairs, dataset = load_sr_data(args.data, scale, "train")
    val_pairs = bundled_pairs(scale, max_side=args.val_size) if args.data in (None, "default") else load_sr_data(args.data, scale, "valid")[0]
    _check_images(val_pairs, spec, args.tile, args.tile_overlap)
    epochs = args.epochs or 10
    config = SRTrainConfig(steps=epochs * args.steps_per_epoch, batch_size=args.batch_size or 16, patch_size=patch,
                           lr=args.lr or 1e-3, seed=args.seed)
    out = Path(args.out or default_out(args, spec))
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.safetensors"
    metadata = {"task": TASK, "dataset": dataset, "scale": scale, "preprocess": {"range": "[0, 1] RGB", "lr": "MATLAB bicubic, 8-bit"},
                "recipe": {"loss": "l1", "optimizer": "adam", **{k: getattr(config, k) for k in ("steps", "batch_size", "patch_size", "lr", "seed")}}}
    console = stderr_console()
    start_step, optimizer_state, discriminator_state = 0, None, None
    model = start_model if start_model is not None else spec.build()
    base_loss = "l1-pyramid" if getattr(model, "pyramid_steps", 0) else "l1"  # DRN: L1 summed over every x2 step's image
    metadata["recipe"]["loss"] = base_loss
    teacher = _load_teacher(args, spec)
    objectives, objective_recipe = _objectives(args, spec, model, teacher)
    if objectives is not None:
        metadata["recipe"].update(loss="+".join([base_loss] + [t for t, on in (("distill", objectives.teacher is not None), ("dual", objectives.dual is not None),
                                                                        ("gan", objectives.discriminator is not None)) if on]),
                                  objectives=objective_recipe)
    training_state = out / "objectives.safetensors"  # discriminator, dual downsampler, adapters: training-only, never in the model
    if last.is_file():  # resume after a kill: the last epoch's weights and optimizer state
        previous = read_metadata(last)
        if previous.get("spec") == json.loads(spec.to_json()) and previous.get("recipe") == metadata["recipe"]:
            model = load_checkpoint(last)
            start_step = int(previous.get("step", 0))
            state_file = _side_file(out, "optimizer.pt", start_step, reading=True)
            optimizer_state = torch.load(state_file, weights_only=True) if state_file.is_file() else None
            if objectives is not None:
                from safetensors.torch import load_file

                objectives, _ = _objectives(args, spec, model, teacher)  # adapters bound to the reloaded model's taps
                objectives.load_state_dict(load_file(_side_file(out, training_state.name, start_step, reading=True)))
                discriminator_file = _side_file(out, "discriminator_optimizer.pt", start_step, reading=True)
                discriminator_state = torch.load(discriminator_file, weights_only=True) if discriminator_file.is_file() else None
            console.print(f"resuming {last} at step {start_step}/{config.steps}")
    result = {"terms": {}}
    for epoch_end in range(start_step + args.steps_per_epoch, config.steps + args.steps_per_epoch, args.steps_per_epoch):
        stop = min(epoch_end, config.steps)
        if stop <= start_step:
            continue
        result = train_sr(model, train_pairs, scale, config, start_step=start_step, stop_step=stop, optimizer_state=optimizer_state,
                          objectives=objectives, discriminator_optimizer_state=discriminator_state)
        optimizer_state, discriminator_state = result["optimizer"], result["discriminator_optimizer"]
        from ...atomic import atomic_path

        # the training states of step `stop` go to files named for that step, then last.safetensors marks the step
        # complete, then the previous step's files go: a kill anywhere leaves last's own step's states to resume from
        with atomic_path(_side_file(out, "optimizer.pt", stop)) as temporary:
            torch.save(optimizer_state, temporary)
        if objectives is not None:
            from safetensors.torch import save_file

            with atomic_path(_side_file(out, training_state.name, stop)) as temporary:
                save_file({k: v.contiguous() for k, v in objectives.state_dict().items()}, str(temporary))
            if discriminator_state is not None:
                with atomic_path(_side_file(out, "discriminator_optimizer.pt", stop)) as temporary:
                    torch.save(discriminator_state, temporary)
        save(model, last, {**metadata, "step": stop})  # it marks the epoch complete
        _remove_side_files(out, keep_step=stop)
        if args.progress:
            console.print(f"step {stop}/{config.steps}  " + "  ".join(f"{k} {v:.4f}" for k, v in result["terms"].items()))
        start_step = stop
    final = save(model, out / "model.safetensors", {**metadata, "step": config.steps})
    report = evaluate_sr(model, val_pairs, scale, tile=args.tile, overlap=args.tile_overlap)
    if args.deploy:
        save(reparameterize(model), out / "deploy.safetensors", {**metadata, "step": config.steps})
    atomic_write_text(out / "metrics.json", json.dumps({"model": spec.name, "checkpoint": str(final), "recipe": metadata["recipe"],
                                                         "final_terms": result["terms"], **report}, indent=2))
    _print_report(console, report)
    print(str(final))
    return 0


def _int8(args, model, pairs) -> dict:
    from ...super_resolution.int8 import quantize_sr

    calibration, _ = load_sr_data("default", model.spec.scale, "train")
    output = Path(args.checkpoint).with_suffix(".int8-dynamic.onnx" if args.int8_dynamic else f".int8-{args.int8_size}.onnx")
    try:
        result = quantize_sr(model, calibration, pairs, output, size=args.int8_size, max_drop_db=args.max_drop_db, dynamic_hw=args.int8_dynamic)
    except ValueError as error:
        raise UsageError(str(error)) from None
    for row in result.get("sizes", []):
        stderr_console().print(f"INT8 at {row['lr_size']} ({row['images']} image(s)): PSNR {row['int8_psnr']:.2f} dB vs fp32 {row['fp32_psnr']:.2f}, "
                               f"drop {row['drop_db']:.3f} dB")
    stderr_console().print(f"INT8 ({result['method']}): PSNR {result['int8_psnr']:.2f} dB vs fp32 {result['fp32_psnr']:.2f} on {result['images']} "
                           f"{args.int8_size}-px LR crops, drop {result['drop_db']:.3f} dB ({'within' if result['accepted'] else 'OVER'} "
                           f"the {args.max_drop_db} dB budget) -> {output}")
    return result


def evaluate(args: argparse.Namespace, metadata: dict) -> int:
    from ...atomic import atomic_write_text
    from ...checkpoint import load
    from ...super_resolution.engine import evaluate_sr

    if args.int8_dynamic and args.max_drop_db is None:
        raise UsageError("--int8-dynamic shapes the INT8 graph that --max-drop-db makes; give --max-drop-db DB too (e.g. 0.3)")
    model = load(args.checkpoint)
    spec = model.spec
    if args.scale is not None and args.scale != spec.scale:
        raise UsageError(f"{args.checkpoint!r} is a x{spec.scale} model (built for x{', x'.join(map(str, spec.scales))} with x{spec.scale} trained); "
                         f"evaluate it at --scale {spec.scale}")
    data = args.data or ("default" if str(metadata.get("dataset", "")).startswith("bundled") else metadata.get("dataset"))
    pairs, dataset = load_sr_data(data, spec.scale, "valid")
    _check_images(pairs, spec, args.tile, args.tile_overlap)
    report = {"checkpoint": args.checkpoint, "model": spec.name, "dataset": dataset,
              **evaluate_sr(model, pairs, spec.scale, tile=args.tile, overlap=args.tile_overlap)}
    if args.max_drop_db is not None:
        report["int8"] = _int8(args, model, pairs)
    text = json.dumps(report, indent=2)
    if args.json:
        atomic_write_text(args.json, text)
    _print_report(stderr_console(), report)
    print(text)
    return 0
