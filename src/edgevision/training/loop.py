"""The training loop: one function, :func:`train`, running a :class:`Recipe` on :class:`DataSplits`.

Per step: uint8 batch -> preprocessing and augmentation on the batch (``BatchPreprocessor``) ->
soft targets (label smoothing, then mixup/cutmix) -> forward (channels_last; bf16 autocast on CUDA) -> loss
(soft-target cross-entropy, or BCE for multi-label data) -> backward (DDP averages gradients)
-> optional gradient clipping -> learning rate of this step (warm-up + schedule) -> optimizer
step -> optional EMA update. After every epoch the validation set is scored and one line is
written to the run's folder (``metrics.pending.*``, then ``metrics.jsonl`` / ``metrics.csv`` together with the
checkpoint: :func:`commit_metrics`).

Determinism: the seed fixes the initialization (the caller seeds before building; see
:func:`seed_everything`), the batch order (``seed + epoch``), the crops/flips and the mixing.
On CPU two runs with one seed give bit-identical weights.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..datasets import BatchPreprocessor, DataSplits, MixAugment, make_loader
from ..evaluation.predict import autocast_context, predict
from .ddp import DistributedContext, all_reduce_sum, current_context, wrap_model
from .ema import ModelEMA
from .optim import make_optimizer
from .recipe import Recipe
from .schedule import learning_rate
from .zero_init import zero_init_residual_norms

__all__ = ["train", "TrainResult", "seed_everything", "soft_targets", "soft_target_loss", "default_device", "network_in_channels", "MetricsLog", "commit_metrics", "recover_metrics"]

T = TypeVar("T")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def network_in_channels(model: nn.Module, default: int) -> int:
    """Input channels of an edgevision Network (from its spec), else ``default``."""
    spec = getattr(model, "spec", None)
    return spec.in_channels if spec is not None else default


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Class indices (B,) -> rows (B, K) of ``(1 - eps) one_hot + eps / K`` (Bag of Tricks Sec. 5.2)."""
    one_hot = F.one_hot(labels, num_classes).float()
    return one_hot * (1.0 - smoothing) + smoothing / num_classes


def soft_target_loss(logits: torch.Tensor, targets: torch.Tensor, multi_label: bool = False) -> torch.Tensor:
    """Cross-entropy against soft rows (equals ``F.cross_entropy(label_smoothing=eps)`` for smoothed one-hot); BCE for multi-label."""
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, targets)
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


#: the run's rows while it trains; promoted to ``metrics.jsonl`` / ``metrics.csv`` with its checkpoint
PENDING = ("metrics.pending.jsonl", "metrics.pending.csv")
#: the metrics files that describe the run folder's checkpoint
COMMITTED = ("metrics.jsonl", "metrics.csv")
#: the previous run's metrics, set aside while the new checkpoint is written (see :func:`commit_metrics`)
PREVIOUS = ("metrics.previous.jsonl", "metrics.previous.csv")


class MetricsLog:
    """One row per epoch, kept in ``metrics.pending.jsonl`` / ``.csv`` (each rewritten atomically) while the run trains.

    The pending rows become ``metrics.jsonl`` / ``metrics.csv`` only with the checkpoint they describe
    (:func:`commit_metrics`): a retraining killed mid-way leaves the previous run's metrics beside the
    previous run's ``model.safetensors``, never the killed run's rows beside the old weights.
    """

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.rows: list[dict] = []
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            recover_metrics(directory)
            for name in PENDING:  # a killed run's rows describe no checkpoint
                (directory / name).unlink(missing_ok=True)

    def append(self, row: dict) -> None:
        from ..atomic import atomic_write_text

        self.rows.append(row)
        if self.directory is None:
            return
        atomic_write_text(self.directory / PENDING[0], "".join(json.dumps(r) + "\n" for r in self.rows))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(row), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.directory / PENDING[1], buffer.getvalue())

    def commit(self, write_checkpoint: Callable[[], T] | None = None) -> T | None:
        """Write the checkpoint (``write_checkpoint()``) and make these rows the folder's metrics; see :func:`commit_metrics`."""
        if self.directory is None:
            return write_checkpoint() if write_checkpoint is not None else None
        return commit_metrics(self.directory, write_checkpoint)


def commit_metrics(directory: str | Path, write_checkpoint: Callable[[], T] | None = None) -> T | None:
    """Replace the folder's checkpoint and its metrics so that no moment pairs the new weights with old rows (or back).

    Order: the previous ``metrics.*`` are renamed aside (``metrics.previous.*``), ``write_checkpoint()`` writes
    the checkpoint (atomically), the pending rows are renamed to ``metrics.*``, the previous ones are removed.
    A kill at any point leaves the metrics either describing ``checkpoint`` or absent, and the next run
    (:func:`recover_metrics`) restores whichever set the checkpoint's own metadata (``metrics``) matches.
    """
    folder = Path(directory)
    if not (folder / PENDING[0]).exists():  # no new rows (a resumed run that had already finished): keep the folder's
        return write_checkpoint() if write_checkpoint is not None else None
    for committed, previous in zip(COMMITTED, PREVIOUS):
        if (folder / committed).exists():
            os.replace(folder / committed, folder / previous)
    written = write_checkpoint() if write_checkpoint is not None else None
    for pending, committed in zip(PENDING, COMMITTED):
        if (folder / pending).exists():
            os.replace(folder / pending, folder / committed)
    for previous in PREVIOUS:
        (folder / previous).unlink(missing_ok=True)
    return written


def _last_row(path: Path) -> dict | None:
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        row = json.loads(lines[-1]) if lines else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return row if isinstance(row, dict) else None


def _describes(rows_file: Path, metrics: dict) -> bool:
    """The file's last row is the checkpoint's final metrics (which add train_seconds etc. to it)."""
    row = _last_row(rows_file)
    return bool(row) and all(json.dumps(metrics.get(key)) == json.dumps(value) for key, value in row.items())


def recover_metrics(directory: str | Path, checkpoint: str = "model.safetensors") -> str | None:
    """After a run killed inside :func:`commit_metrics`: put back the metrics that describe ``checkpoint``.

    Returns ``"pending"`` (the killed run's checkpoint had landed: its rows are promoted), ``"previous"`` (it had
    not: the set-aside rows go back) or None (nothing to recover). Rows matching no checkpoint are never promoted.
    """
    folder = Path(directory)
    if (folder / COMMITTED[0]).exists():
        for previous in PREVIOUS:  # a commit that finished its renames but not its clean-up
            (folder / previous).unlink(missing_ok=True)
        return None
    if not (folder / PENDING[0]).exists() and not (folder / PREVIOUS[0]).exists():
        return None
    from ..checkpoint import CheckpointError, read_metadata

    try:
        metrics = read_metadata(folder / checkpoint).get("metrics")
    except (CheckpointError, OSError, ValueError):
        metrics = None
    chosen = None
    if isinstance(metrics, dict):
        for name, files in (("pending", PENDING), ("previous", PREVIOUS)):
            if _describes(folder / files[0], metrics):
                chosen = name
                for source, committed in zip(files, COMMITTED):
                    if (folder / source).exists():
                        os.replace(folder / source, folder / committed)
                break
    for previous in PREVIOUS:
        (folder / previous).unlink(missing_ok=True)
    return chosen


@dataclass
class TrainResult:
    model: nn.Module  # the weights to use: the EMA average when the recipe has EMA, else the trained ones
    history: list[dict]
    final: dict  # the last epoch's row: val_top1, val_loss, train_images_per_second, ...
    zeroed_norms: list[str] = field(default_factory=list)
    train_seconds: float = 0.0


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..console import stderr_console

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}  acc {task.fields[acc]:.1%}  {task.fields[ips]:.0f} img/s"),
        TimeRemainingColumn(),
        console=stderr_console(),
        disable=not enabled,
        transient=False,
    )


def train(
    model: nn.Module,
    data: DataSplits,
    recipe: Recipe,
    *,
    resolution: int = 32,
    seed: int = 0,
    out_dir: str | Path | None = None,
    device: torch.device | str | None = None,
    workers: int | None = None,
    progress: bool = False,
    max_steps: int | None = None,
    evaluate_every_epoch: bool = True,
    fresh_init: bool = True,
    distill: nn.Module | None = None,
    pending_metrics: bool = False,
) -> TrainResult:
    """Train ``model`` (built by the caller after :func:`seed_everything`) with ``recipe``; see the module docstring.

    ``fresh_init=False`` (fine-tuning trained weights) skips the recipe's initialization trick (zero-init).
    ``max_steps`` stops early (tests); the last epoch is then the partial one.
    ``distill``: a loss module called as ``distill(inputs, logits, loss)`` each step (``training.distill``).
    ``pending_metrics=True`` leaves the rows in ``metrics.pending.*`` for the caller to promote together with the
    checkpoint it writes (:func:`commit_metrics`); otherwise they become ``out_dir/metrics.*`` when training ends.
    """
    context: DistributedContext = current_context()
    device = torch.device(device) if device is not None else default_device()
    if recipe.batch_size % context.world_size:
        raise ValueError(f"batch size {recipe.batch_size} must be divisible by the {context.world_size} processes")
    per_process_batch = recipe.batch_size // context.world_size
    # channels_last everywhere: oneDNN's NHWC kernels train these networks about 2x faster on CPU too
    # (mobilenetv2_050 at 32x32, batch 64: 139 -> 69 ms/step on one core), and cuDNN prefers it with bf16
    model = model.to(device=device, memory_format=torch.channels_last)
    zeroed = zero_init_residual_norms(model) if (recipe.zero_init_residual and fresh_init) else []
    trained = wrap_model(model, device) if context.enabled else model
    optimizer = make_optimizer(model, recipe)
    ema = ModelEMA(model, recipe.ema_decay) if recipe.ema_decay else None

    loader = make_loader(data.train, per_process_batch, train=True, seed=seed, workers=workers, rank=context.rank, world_size=context.world_size)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data.train)} training images give no batch of {per_process_batch}; lower the batch size")
    total_steps = recipe.epochs * steps_per_epoch
    warmup_steps = round(recipe.warmup_epochs * steps_per_epoch)
    augment_seed = seed * 1000 + context.rank  # different crops on each process, fixed by the seed
    preprocess = BatchPreprocessor(
        resolution,
        network_in_channels(model, data.in_channels),
        data.mean,
        data.std,
        crop_padding=recipe.crop_padding,
        flip=recipe.horizontal_flip and data.flip_safe,
        seed=augment_seed,
    )
    mixing = MixAugment(recipe.mixup_alpha, recipe.cutmix_alpha, seed=augment_seed + 1)
    log = MetricsLog(Path(out_dir) if (out_dir is not None and context.is_main) else None)

    step, train_seconds, images_seen = 0, 0.0, 0
    final: dict = {}
    with _progress(progress and context.is_main) as bar:
        for epoch in range(recipe.epochs):
            loader.sampler.set_epoch(epoch)
            task = bar.add_task(f"epoch {epoch + 1}/{recipe.epochs}", total=steps_per_epoch, loss=0.0, acc=0.0, ips=0.0)
            trained.train()
            loss_sum = correct = seen = 0.0
            started = time.perf_counter()
            for images, labels in loader:
                images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                inputs = preprocess(images, train=True)  # (B, C, H, W) uint8 -> (B, C_net, R, R) float
                if data.multi_label:
                    targets = labels.float()
                else:
                    targets = soft_targets(labels, data.num_classes, recipe.label_smoothing)
                inputs, targets = mixing(inputs, targets)
                inputs = inputs.contiguous(memory_format=torch.channels_last)
                with autocast_context(device):
                    logits = trained(inputs)  # (B, K)
                loss = soft_target_loss(logits.float(), targets, data.multi_label)
                if distill is not None:
                    loss = distill(inputs, logits, loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if recipe.grad_clip_norm is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
                lr = learning_rate(step, total_steps, recipe.lr, warmup_steps, recipe.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
                if ema is not None:
                    ema.update(model)
                step += 1
                batch = labels.shape[0]
                loss_sum += loss.item() * batch
                if not data.multi_label:
                    correct += (logits.argmax(1) == labels).sum().item()
                seen += batch
                elapsed = time.perf_counter() - started
                bar.update(task, advance=1, loss=loss_sum / seen, acc=correct / seen, ips=seen * context.world_size / max(elapsed, 1e-9))
                if max_steps is not None and step >= max_steps:
                    break
            epoch_seconds = time.perf_counter() - started
            train_seconds += epoch_seconds
            loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], device)
            images_seen += seen
            row = {
                "epoch": epoch + 1,
                "step": step,
                "lr": lr,
                "train_loss": loss_sum / seen,
                "train_top1": None if data.multi_label else correct / seen,
                "train_images_per_second": seen / epoch_seconds,
                "epoch_seconds": epoch_seconds,
            }
            last_epoch = epoch == recipe.epochs - 1 or (max_steps is not None and step >= max_steps)
            if evaluate_every_epoch or last_epoch:
                row.update(_validate(ema.module if ema else model, data, preprocess, device))
            if context.is_main:
                log.append(row)
                if progress:
                    shown = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()}
                    bar.console.print("  ".join(f"{k}={v}" for k, v in shown.items()))
            final = row
            if last_epoch:
                break
    final["train_seconds"] = train_seconds
    final["train_images_per_second_overall"] = images_seen / max(train_seconds, 1e-9)
    if not pending_metrics:
        log.commit()
    return TrainResult(model=ema.module if ema else model, history=log.rows, final=final, zeroed_norms=zeroed, train_seconds=train_seconds)


def _validate(model: nn.Module, data: DataSplits, preprocess: BatchPreprocessor, device: torch.device) -> dict:
    from ..evaluation.metrics import fbeta_score, topk_accuracy

    logits, labels = predict(model, data.val, lambda batch: preprocess(batch, train=False), device=device)
    if data.multi_label:
        return {
            "val_loss": F.binary_cross_entropy_with_logits(logits, labels.float()).item(),
            "val_f2": fbeta_score(logits.sigmoid(), labels, beta=2.0),
        }
    ks = (1, 5) if data.num_classes > 5 else (1,)
    accuracy = topk_accuracy(logits, labels, ks)
    return {"val_loss": F.cross_entropy(logits, labels).item(), **{f"val_top{k}": v for k, v in accuracy.items()}}
