"""``edgevision prune``: latency-aware structured pruning (NetAdapt) of a model on a dataset, with distillation.

Writes ``DIR/model.safetensors`` (the pruned spec inside: ``ev.load`` rebuilds it) and
``DIR/prune.json``: params, MACs, measured median ms and accuracy before and after, the widths of
every block and every step taken.

Latency is measured end to end on ``--runtime`` (the start as the lowest of two readings: a process's
first reading is inflated), or, with ``--table``, predicted from this machine's block latency table
(the sum of the blocks' entries, FBNet Eq. 5; ``--predictor`` adds the fitted correction and the
regressor for blocks never measured; missing blocks are measured on demand into the table unless
``--no-build``). A table prices every candidate the same way in every process, so the run does not
depend on the machine's moment-to-moment speed, and it is much faster than timing every proposal.

Resumable after kill -9: the dense (trained) model, the measured start, and the network after every
accepted NetAdapt step are written atomically under ``DIR/.prune-resume/``; running the same command
again continues from the last of them (a run with other settings refuses the folder), and the folder
is removed once ``model.safetensors`` and ``prune.json`` are written. A resumed run continues from
the same weights and steps; the random streams of the fine-tunes after it are not those of an
uninterrupted run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._common import (UsageError, check_input_memory, output_file, output_lock, select_runtimes, nonempty, nonnegative_int, output_dir,
                      positive_float, positive_int, seed, threads)

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "prune",
        help="shrink a model's widths until it meets a measured latency target (NetAdapt on the spec)",
        description="Prune channel groups one step at a time, keeping the step with the least accuracy lost per "
        "millisecond saved on the target runtime, fine-tuning briefly after each step; then fine-tune (optionally "
        "distilling from the unpruned model). Without --checkpoint the dense model is trained first (--epochs).",
    )
    parser.add_argument("model", help="registered model name")
    parser.add_argument("--checkpoint", type=nonempty, default=None, metavar="F", help="trained weights of MODEL (.safetensors from `edgevision train`)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-ms", type=positive_float, default=None, metavar="X", help="latency target in ms on --runtime")
    target.add_argument("--target-ratio", type=positive_float, default=None, metavar="R", help="keep this fraction of the measured latency, in (0, 1)")
    parser.add_argument("--runtime", default="ort", help="runtime the latency is measured on (default ort)")
    parser.add_argument("--criterion", default="l1", choices=("l1", "l2", "bn", "taylor", "random"), help="channel importance (default l1)")
    parser.add_argument("--epochs", type=nonnegative_int, default=1, metavar="N", help="final fine-tune epochs (and dense training without --checkpoint)")
    parser.add_argument("--step-steps", type=nonnegative_int, default=10, metavar="S", help="fine-tune steps after each pruning step (default 10)")
    parser.add_argument("--step-fraction", type=positive_float, default=0.125, help="each proposal removes this fraction of a group (default 0.125)")
    parser.add_argument("--distill", action="store_true", help="distill from the unpruned model while fine-tuning (Hinton KD, T=4)")
    parser.add_argument("--data", type=nonempty, default="default", help="default | cifar10:DIR | cifar100:DIR | imagefolder:DIR | npz:FILE")
    parser.add_argument("--resolution", type=positive_int, default=32, metavar="R", help="input resolution R x R (default 32)")
    parser.add_argument("--eval-images", type=positive_int, default=256, help="held-out images that score each proposal (default 256)")
    parser.add_argument("--time-budget", type=positive_float, default=1.0, metavar="S", help="seconds per latency measurement (default 1)")
    parser.add_argument("--threads", type=threads, default=None, metavar="N", help="intra-op threads for latency (default: physical cores; 2 with --table, as `lut build`)")
    parser.add_argument("--table", type=output_file, default=None, metavar="FILE", help="predict latency from this block latency table (`edgevision lut build`) instead of measuring every proposal; missing blocks are measured into it")
    parser.add_argument("--predictor", type=nonempty, default=None, metavar="FILE", help="with --table: price networks with this fitted predictor (predictor.json of `edgevision lut validate`): its correction, and its regressor for blocks the table lacks")
    parser.add_argument("--no-build", action="store_true", help="with --table: never measure missing blocks (the predictor's regressor prices them, else exit 2 naming `edgevision lut build`)")
    parser.add_argument("--seed", type=seed, default=0)
    parser.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="output folder")
    parser.set_defaults(handler=run)


def _checked(args: argparse.Namespace) -> None:
    if args.target_ratio is not None and not 0.0 < args.target_ratio < 1.0:
        raise UsageError(f"--target-ratio must be in (0, 1) (the fraction of the measured latency to keep), got {args.target_ratio}")
    if args.target_ms is not None and args.target_ms <= 0:
        raise UsageError(f"--target-ms must be positive, got {args.target_ms}")
    if args.epochs < 0 or args.step_steps < 0:
        raise UsageError("--epochs and --step-steps must be >= 0")
    if not 0.0 < args.step_fraction < 1.0:
        raise UsageError(f"--step-fraction must be in (0, 1), got {args.step_fraction}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file; give a folder")
    check_resolution(args.resolution)
    if args.runtime == "all":
        raise UsageError("--runtime takes one runtime (the one the latency target is for), not 'all'")
    from ..latency.runtimes import RUNTIMES

    select_runtimes(args.runtime, tuple(RUNTIMES))
    if args.table is None and (args.predictor is not None or args.no_build):
        raise UsageError("--predictor and --no-build price networks from a latency table; give --table FILE as well")
    if args.predictor is not None:  # read now, before any model is built or trained
        from ..lut import LutError
        from ..lut.predictor import read_predictor_file

        try:
            read_predictor_file(args.predictor)
        except LutError as error:
            raise UsageError(f"--predictor: {error}") from None


def _table_latency(args: argparse.Namespace, console):
    """(network -> predicted ms, the open table) from ``--table`` (and ``--predictor``), at ``--resolution``."""
    from ..lut import LatencyPredictor, LatencyTable, LutError, MeasurementSetting
    from ..resolve import resolve
    from ..search.latency import LatencyModel

    setting = MeasurementSetting(runtime=args.runtime, threads=args.threads or 2)
    try:
        table = LatencyTable(args.table)
    except LutError as error:
        raise UsageError(f"--table: {error}") from None
    try:
        predictor = None if args.predictor is None else LatencyPredictor.load(args.predictor, table)
    except LutError as error:
        table.close()
        raise UsageError(f"--predictor: {error}") from None
    if predictor is not None and predictor.setting != setting:
        table.close()
        raise UsageError(f"--predictor {args.predictor} was fitted for {predictor.setting.to_dict()}, not {setting.to_dict()}; "
                         f"pass the matching --runtime/--threads")

    def progress(done: int, total: int, block) -> None:
        console.print(f"measuring missing block {done}/{total} into {table.path}: {block.spec.kind} {block.in_channels}->{block.out_channels} at {block.input_size[0]} px")

    model = LatencyModel(table, setting, predictor=predictor, build_missing=not args.no_build, block_budget_s=args.time_budget, progress=progress)
    return (lambda network: model.network_ms(resolve(network.spec, input_size=args.resolution))), table, model


def check_resolution(resolution: int, batch: int = 64) -> None:
    """What train refuses before building (shared by prune and sparsify): too small for a 32x downsampling, or past memory."""
    if resolution < 8:
        raise UsageError(f"--resolution must be >= 8 (networks downsample 32x; 32 is the smallest sensible), got {resolution}")
    check_input_memory((batch, 3, resolution, resolution), "a training batch of 64 x 3 x --resolution^2")


def load_inputs(args: argparse.Namespace):
    """The data, the seeded model (with ``trained``: whether --checkpoint gave it weights), the input shape (C, H, W)
    and the batch preprocessor every command that reshapes a trained network (prune, allinone) starts from."""
    from ..datasets import BatchPreprocessor, DataError, load_data
    from ..training import seed_everything

    try:
        data = load_data(args.data, image_size=args.resolution)
    except DataError as error:
        raise UsageError(str(error)) from None
    seed_everything(args.seed)
    model, trained = _load_model(args, data.num_classes, data.in_channels)
    shape = (data.in_channels, args.resolution, args.resolution)
    preprocess = BatchPreprocessor(args.resolution, data.in_channels, data.mean, data.std)
    return data, model, trained, shape, preprocess


def _load_model(args: argparse.Namespace, num_classes: int, in_channels: int):
    from ..checkpoint import CheckpointError, load
    from ..registry import create_model

    from ..registry import get_spec

    try:
        wanted = get_spec(args.model).name  # the name is checked before anything is built or loaded
    except KeyError as error:
        raise UsageError(str(error)) from None
    if args.checkpoint is None:
        return create_model(args.model, num_classes=num_classes, in_chans=in_channels), False
    try:
        model = load(args.checkpoint)
    except (CheckpointError, ValueError, OSError) as error:
        raise UsageError(f"--checkpoint {args.checkpoint}: {error}") from None
    if model.spec.name != wanted or model.resolved.blocks[-1].out_channels != num_classes:
        raise UsageError(
            f"--checkpoint {args.checkpoint} holds {model.spec.name} with {model.resolved.blocks[-1].out_channels} classes, "
            f"not {args.model} with the {num_classes} classes of the data; give MODEL's own checkpoint"
        )
    return model.train(), True


RESUME_DIR = ".prune-resume"
_NOT_SETTINGS = ("out", "handler", "command")


def _fingerprint(args: argparse.Namespace) -> dict:
    """The settings a resumed run must share with the one that wrote the folder."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_SETTINGS and not callable(v)}


class _Resume:
    """``DIR/.prune-resume`` (``DIR/.sparsify-resume``): state.json (settings, phase, measurements) + checkpoints."""

    def __init__(self, out: Path, args: argparse.Namespace, folder: str = RESUME_DIR, command: str = "prune") -> None:
        from ..atomic import sweep_stale_temporaries

        self.folder = out / folder
        self.settings = _fingerprint(args)
        self.state: dict = {}
        if (self.folder / "state.json").is_file():
            sweep_stale_temporaries(self.folder)  # a write torn by the kill
            try:
                self.state = json.loads((self.folder / "state.json").read_text())
            except (OSError, ValueError):
                self.state = {}
            if self.state and self.state.get("settings") != json.loads(json.dumps(self.settings)):
                raise UsageError(
                    f"--out {out} holds an unfinished {command} run with other settings; rerun that command to resume it, "
                    f"or delete {self.folder} (or use another --out) to start over"
                )

    def write(self, **fields) -> None:
        from ..atomic import atomic_write_text

        self.folder.mkdir(parents=True, exist_ok=True)
        self.state = {**self.state, **fields, "settings": self.settings}
        atomic_write_text(self.folder / "state.json", json.dumps(self.state, indent=1))

    def save_model(self, name: str, model) -> None:
        from ..checkpoint import save

        self.folder.mkdir(parents=True, exist_ok=True)
        save(model, self.folder / f"{name}.safetensors")

    def load_model(self, name: str):
        from ..checkpoint import load

        return load(self.folder / f"{name}.safetensors").train()

    def save_state(self, name: str, module) -> None:
        """Raw tensors (a module mid-way, e.g. with SR-STE parametrizations): safetensors, written atomically."""
        from safetensors.torch import save_file

        from ..atomic import atomic_path

        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.folder / f"{name}.safetensors") as temporary:
            save_file({k: v.detach().contiguous() for k, v in module.state_dict().items()}, str(temporary))

    def load_state(self, name: str, module) -> None:
        from safetensors.torch import load_file

        module.load_state_dict(load_file(str(self.folder / f"{name}.safetensors")))

    def finish(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import contextlib

    # one writer at a time: a second run on this --out is refused naming the first; `cleanup` closes the latency table
    with output_lock(args.out, "prune output directory"), contextlib.ExitStack() as cleanup:
        return _run(args, cleanup)


def _run(args: argparse.Namespace, cleanup) -> int:
    import dataclasses

    import torch
    from torch.utils.data import Subset

    from ..atomic import atomic_write_text
    from ..checkpoint import save
    from ..counting import count_macs, count_params
    from ..datasets import make_loader
    from ..evaluation import predict, topk_accuracy
    from ..latency import measure
    from ..lut import LutError
    from ..prune import PruneError
    from ..prune.netadapt import NetAdaptProgress, netadapt, settled_latency
    from ..training import get_recipe, train
    from ..training.distill import DistillationLoss
    from ._common import stderr_console

    _checked(args)
    console = stderr_console()
    out = Path(args.out)
    resume = _Resume(out, args)
    if args.table is not None and not args.no_build:  # it may measure into the table: one such writer at a time
        from ..lut.build import table_lock

        cleanup.enter_context(table_lock(args.table))
    data, model, trained, shape, preprocess = load_inputs(args)
    scoring = Subset(data.val, range(min(args.eval_images, len(data.val))))
    recipe = get_recipe("basic")

    def finetune(network, epochs: int = 1, max_steps: int | None = None, teacher=None):
        if epochs == 0 or max_steps == 0:
            return network
        run_recipe = dataclasses.replace(recipe, epochs=epochs, lr=recipe.lr / (1 if teacher is None and not trained else 4))
        distill = DistillationLoss(teacher) if teacher is not None else None
        result = train(network, data, run_recipe, resolution=args.resolution, seed=args.seed, max_steps=max_steps,
                       evaluate_every_epoch=False, fresh_init=False, distill=distill)
        return result.model.cpu().to(memory_format=torch.contiguous_format)

    def accuracy(network, dataset=scoring) -> float:
        logits, labels = predict(network, dataset, lambda batch: preprocess(batch, train=False))
        return float(topk_accuracy(logits, labels, (1,))[1])

    table = pricing = None
    if args.table is None:
        def latency(network) -> float:
            return measure(network.eval(), shape, runtime=args.runtime, threads=args.threads, deploy=True, time_budget_s=args.time_budget).median_ms
    else:
        latency, table, pricing = _table_latency(args, console)
        cleanup.callback(table.close)
        try:
            latency(model)  # price the dense widths now: a table that cannot (--no-build, blocks missing) is refused before any training
        except LutError as error:
            raise UsageError(f"--table: {error}") from None
    readings = 2 if table is None else 1  # a table prices the same network the same every time
    if "before" in resume.state:  # the dense phase finished in an earlier (killed) run
        model = resume.load_model("dense")
        before = resume.state["before"]
        console.print(f"resuming the unfinished run in {resume.folder}")
    else:
        if not trained and args.epochs:
            console.print(f"no --checkpoint: training the dense {args.model} for {args.epochs} epoch(s) first")
            model = finetune(model, epochs=args.epochs)
        elif not trained:
            console.print(f"[yellow]no --checkpoint and --epochs 0: pruning an untrained {args.model} (accuracy is chance)[/]")
        before = {"params": count_params(model), "macs": count_macs(model, args.resolution, data.in_channels),
                  "median_ms": settled_latency(latency, model, readings), "accuracy": accuracy(model, data.val)}
        resume.save_model("dense", model)
        resume.write(before=before)
    teacher = __import__("copy").deepcopy(model).eval() if args.distill else None
    console.print(f"{args.model}: {before['median_ms']:.3f} ms on {args.runtime}, top-1 {before['accuracy']:.2%}; pruning")
    progress = None
    if "progress" in resume.state:
        progress = NetAdaptProgress.from_dict(resume.load_model("current"), resume.state["progress"])

    def checkpoint(now: NetAdaptProgress) -> None:  # the network first: state.json never names a step not on disk
        resume.save_model("current", now.model)
        resume.write(progress=now.to_dict())

    try:
        result = netadapt(
            model, latency, accuracy, target_ms=args.target_ms, target_ratio=args.target_ratio, criterion=args.criterion,
            batches=_taylor_batches(data, preprocess, make_loader) if args.criterion == "taylor" else None,
            finetune=lambda network: finetune(network, max_steps=args.step_steps, teacher=teacher),
            step_fraction=args.step_fraction, log=console.print, resume=progress, checkpoint=checkpoint,
            start_ms=before["median_ms"], start_readings=readings,
        )
    except (PruneError, LutError) as error:
        raise UsageError(str(error)) from None
    pruned = finetune(result.model, epochs=args.epochs, teacher=teacher)
    after = {"params": count_params(pruned), "macs": count_macs(pruned, args.resolution, data.in_channels),
             "median_ms": latency(pruned), "accuracy": accuracy(pruned, data.val)}
    report = {
        "model": args.model,
        "checkpoint": args.checkpoint,
        "runtime": args.runtime,
        "criterion": args.criterion,
        "distill": args.distill,
        "data": data.name,
        "resolution": args.resolution,
        # where every ms in this report comes from: measured end to end, or predicted from the block latency table
        "latency": {"source": "measured" if table is None else ("predictor" if args.predictor else "table"), "table": args.table,
                    "predictor": args.predictor, "threads": args.threads if table is None else pricing.setting.threads,
                    "blocks_measured_on_demand": None if pricing is None else pricing.measured_on_demand},
        "target_ms": result.target_ms,
        "floor_ms": result.floor_ms,
        "reached": after["median_ms"] <= result.target_ms,
        "before": before,
        "after": after,
        "widths": {b.path: {"in": b.in_channels, "out": b.out_channels, "mid": b.mid_channels, "se": b.se_channels} for b in pruned.resolved.blocks},
        "steps": [step.to_dict() for step in result.steps],
    }
    out.mkdir(parents=True, exist_ok=True)
    save(pruned, out / "model.safetensors", {"dataset": data.name, "class_names": list(data.class_names), "prune": {k: report[k] for k in ("before", "after", "target_ms")},
                                             "preprocess": {"resolution": args.resolution, "mean": list(data.mean), "std": list(data.std)}})
    atomic_write_text(out / "prune.json", json.dumps(report, indent=2))
    resume.finish()
    print(f"{args.model}: {before['median_ms']:.3f} -> {after['median_ms']:.3f} ms ({args.runtime}), params {before['params']} -> "
          f"{after['params']}, top-1 {before['accuracy']:.2%} -> {after['accuracy']:.2%} in {len(result.steps)} steps; wrote {out}/model.safetensors, prune.json")
    return 0


def _taylor_batches(data, preprocess, make_loader, count: int = 4):
    loader = make_loader(data.train, 32, train=True, seed=0, workers=0)
    batches = []
    for images, labels in loader:
        batches.append((preprocess(images, train=False), labels))
        if len(batches) == count:
            break
    return batches
