"""``edgevision eval``: score a checkpoint: top-1/top-5, per-class accuracy, confusion matrix,
calibration (ECE + reliability diagram) and accuracy under corruptions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..task_spec import TASK_NAMES
from ._common import UsageError, check_input_memory, int_in, nonempty, output_dir, output_file, positive_int

from .tasks import add_task_arguments, task_command

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "eval",
        help="evaluate a checkpoint: accuracy, per-class, confusion, calibration, corruptions",
        description="Evaluate a checkpoint written by `edgevision train` on the validation split of its dataset "
        "(or --data), with the preprocessing stored in the checkpoint.",
    )
    parser.add_argument("checkpoint", help="a .safetensors checkpoint written by edgevision")
    parser.add_argument("--task", choices=TASK_NAMES, default=None, help="what the checkpoint predicts (default: as recorded in it, else classification)")
    parser.add_argument("--data", type=nonempty, default=None, help="dataset (default: the one it was trained on); same forms as train --data")
    parser.add_argument("--corruptions", action="store_true", help="accuracy under 5 corruptions x 5 severities, and their mean")
    parser.add_argument("--calibration", action="store_true", help="expected calibration error and a reliability diagram PNG")
    parser.add_argument("--bins", type=int_in(1, 1000, "a bin count"), default=15, help="calibration bins (default 15)")
    parser.add_argument("--out", type=output_dir, default=None, metavar="DIR", help="where the reliability diagram goes (default: beside the checkpoint)")
    parser.add_argument("--json", type=output_file, default=None, metavar="FILE", help="also write every number as JSON")
    parser.add_argument("--batch-size", type=int_in(1, 65536, "a batch size"), default=256)
    add_task_arguments(parser, "eval")
    parser.set_defaults(handler=run)


def _print_tables(console, class_names, per_class, matrix) -> None:
    from rich.table import Table

    table = Table(title="per-class accuracy")
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    for name, value in zip(class_names, per_class.tolist()):
        table.add_row(name, "-" if value != value else f"{value:.1%}")
    console.print(table)
    if len(class_names) <= 20:
        confusion = Table(title="confusion matrix (rows: true, columns: predicted)")
        confusion.add_column("")
        for name in class_names:
            confusion.add_column(name[:6], justify="right")
        for name, row in zip(class_names, matrix.tolist()):
            confusion.add_row(name, *map(str, row))
        console.print(confusion)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from ..atomic import atomic_write_text, check_writable
    from ..checkpoint import CheckpointError, load, read_metadata
    from ..datasets import BatchPreprocessor, DataError, load_data
    from ..evaluation import calibration, confusion_matrix, corruption_accuracy, fbeta_score, per_class_accuracy, predict, reliability_diagram, topk_accuracy
    from ..datasets.transforms import normalize
    from ..training.loop import default_device

    try:
        metadata = read_metadata(args.checkpoint)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    task = args.task or metadata.get("task") or "classification"
    if task not in TASK_NAMES:
        raise UsageError(f"{args.checkpoint!r} records task {task!r}, which this version does not know; pass --task ({', '.join(TASK_NAMES)})")
    if args.json:  # before any work, for every task
        try:
            check_writable(args.json)
        except OSError as error:
            raise UsageError(str(error)) from None
    if task != "classification":
        return task_command(task).evaluate(args, metadata)
    try:
        model = load(args.checkpoint)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    dataset = args.data or metadata.get("dataset")
    if not dataset:
        raise UsageError(f"{args.checkpoint!r} does not record its dataset; pass --data")
    preprocess_info = metadata.get("preprocess", {})
    resolution = int(preprocess_info.get("resolution", 32))
    try:
        data = load_data(dataset, image_size=resolution)
    except DataError as error:
        raise UsageError(str(error)) from None
    num_classes = model.spec.head.num_classes
    if data.num_classes != num_classes:
        raise UsageError(f"{dataset} has {data.num_classes} classes but the checkpoint predicts {num_classes}; evaluate on its own dataset")
    mean, std = preprocess_info.get("mean", data.mean), preprocess_info.get("std", data.std)
    if len(mean) != model.spec.in_channels or len(std) != model.spec.in_channels:
        raise UsageError(f"{args.checkpoint!r}: its preprocessing has {len(mean)} means and {len(std)} stds for a {model.spec.in_channels}-channel model; the file was edited")
    check_input_memory((args.batch_size, model.spec.in_channels, resolution, resolution), "--batch-size x channels x resolution^2")
    preprocess = BatchPreprocessor(resolution, model.spec.in_channels, tuple(mean), tuple(std))
    device = default_device()
    model = model.to(device)
    console = Console()
    logits, labels = predict(model, data.val, lambda batch: preprocess(batch, train=False), batch_size=args.batch_size, device=device)
    report: dict = {"checkpoint": str(args.checkpoint), "dataset": data.name, "images": len(labels)}
    if data.multi_label:
        report["f2"] = fbeta_score(logits.sigmoid(), labels, beta=2.0)
        console.print(f"{args.checkpoint}: {len(labels)} images of {data.name}: micro F2 {report['f2']:.3f}")
    else:
        ks = (1, 5) if num_classes > 5 else (1,)
        accuracy = topk_accuracy(logits, labels, ks)
        report.update({f"top{k}": v for k, v in accuracy.items()})
        per_class = per_class_accuracy(logits, labels)
        matrix = confusion_matrix(logits.argmax(1), labels, num_classes)
        report["per_class"] = dict(zip(data.class_names, per_class.tolist()))
        report["confusion_matrix"] = matrix.tolist()
        console.print(f"{args.checkpoint}: {len(labels)} images of {data.name}: " + ", ".join(f"top-{k} {v:.2%}" for k, v in accuracy.items()))
        _print_tables(console, data.class_names, per_class, matrix)
    if args.calibration and not data.multi_label:
        calib = calibration(logits.softmax(1), labels, bins=args.bins)
        folder = Path(args.out) if args.out else Path(args.checkpoint).parent
        folder.mkdir(parents=True, exist_ok=True)
        png = reliability_diagram(calib, folder / f"{Path(args.checkpoint).stem}.reliability.png", title=model.spec.name)
        report["calibration"] = calib.to_dict()
        console.print(f"expected calibration error ({args.bins} bins): {calib.ece:.4f}; reliability diagram: {png}")
    if args.corruptions and not data.multi_label:
        with torch.no_grad():
            corrupted = corruption_accuracy(
                model, data.val, preprocess.unnormalized, lambda x: normalize(x, preprocess.mean, preprocess.std),
                batch_size=args.batch_size, device=device,
            )
        report["corruptions"] = corrupted.to_dict()
        from rich.table import Table

        table = Table(title="top-1 under corruptions (severity 1..5)")
        for column in ("corruption", "1", "2", "3", "4", "5", "mean"):
            table.add_column(column, justify="left" if column == "corruption" else "right")
        for name, values in corrupted.accuracy.items():
            table.add_row(name, *(f"{v:.1%}" for v in values), f"{sum(values) / len(values):.1%}")
        console.print(table)
        console.print(f"clean top-1 {corrupted.clean_top1:.2%}; mean corruption top-1 {corrupted.mean_corruption_accuracy:.2%}")
    if args.json:
        atomic_write_text(args.json, json.dumps(report, indent=2))
    return 0
