"""``edgevision models``: the registered zoo with params (train/deploy), MACs and published figures."""

from __future__ import annotations

import argparse
import json

from ..task_spec import TASK_NAMES
from ._common import UsageError, human, int_in, stderr_console

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "models",
        help="list registered models with params (train/deploy), MACs and published figures",
        description="List registered models. Counts are computed live: params of the train and deploy "
        "(re-parameterized) forms, multiply-accumulates of the deploy form at each model's native resolution "
        "(224 for most, 299 for Inception v3/v4 and Xception, 256 for EdgeNeXt, 32 for WRN-28-10) or at --resolution.",
    )
    parser.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style name pattern(s), e.g. 'ghost*' (default: all)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON (one object per model) instead of a table")
    output.add_argument("--markdown", action="store_true", help="print a Markdown table with the published figures beside ours")
    parser.add_argument("--resolution", type=int_in(1, 65536, "a resolution"), default=None, metavar="PX", help="input H = W for the MAC count (default: each model's native resolution)")
    parser.add_argument("--task", choices=TASK_NAMES + ("all",), default="classification",
                        help="which task's models (default classification, the zoo; all: every task)")
    parser.set_defaults(handler=run)


def _model_rows(names: list[str], resolution: int | None) -> list[dict]:
    import torch
    from rich.progress import Progress

    from ..counting import count_macs, count_params
    from ..published import published
    from ..registry import create_model, get_spec, model_family, model_task
    from ..reparam import reparameterize

    rows = []
    with Progress(transient=True, console=stderr_console()) as progress:
        task = progress.add_task("counting", total=len(names))
        for name in names:
            progress.update(task, description=name)
            size = get_spec(name).input_size if resolution is None else resolution
            with torch.device("meta"):  # counts need shapes only: no memory, no arithmetic (VGG-16 in milliseconds)
                model = create_model(name)
                deployed = reparameterize(model)
                macs = count_macs(deployed, size)
            record = published(name)
            rows.append(
                {
                    "name": name,
                    "family": model_family(name),
                    "task": model_task(name),
                    "params_train": count_params(model),
                    "params_deploy": count_params(deployed),
                    "macs": macs,
                    "resolution": size,
                    "published_top1": record.top1 if record else None,
                    "published_params": str(record.params) if record and record.params else None,
                    "published_macs": str(record.macs) if record and record.macs else None,
                    "official_params_train": record.params_train_exact if record else None,
                    "official_params_deploy": record.params_deploy_exact if record else None,
                    "official_source": record.exact_source if record else None,
                    "source": record.citation if record else None,
                }
            )
            progress.advance(task)
    return rows


def run(args: argparse.Namespace) -> int:
    from ..registry import list_models, suggest

    if args.resolution is not None and args.resolution < 32:
        raise UsageError(f"--resolution must be >= 32 (the networks downsample 32x), got {args.resolution}")
    patterns = args.patterns or ["*"]
    names = list_models(patterns, task=None if args.task == "all" else args.task)
    if not names:
        close = list(dict.fromkeys(m for p in patterns for m in suggest(p)))
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `edgevision models` to see all names"
        among = "" if args.task in ("classification", "all") else f" among the {args.task} models (--task all lists every task)"
        raise UsageError(f"no registered model matches {' '.join(repr(p) for p in patterns)}{among}{hint}")
    rows = _model_rows(names, args.resolution)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.markdown:
        print(_markdown(rows))
        return 0

    from rich.console import Console
    from rich.table import Table

    at = "each model's native resolution" if args.resolution is None else f"{args.resolution}x{args.resolution}"
    table = Table(title=f"edgevision models — MACs (multiply-accumulates) at {at}")
    for column, justify in (
        ("model", "left"),
        ("params train", "right"),
        ("params deploy", "right"),
        ("MACs (deploy)", "right"),
        ("at", "right"),
        ("paper params", "right"),
        ("paper MACs", "right"),
        ("top-1", "right"),
        ("source", "left"),
    ):
        table.add_column(column, justify=justify, no_wrap=column != "source", overflow="fold")
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['params_train']:,}",
            f"{row['params_deploy']:,}",
            human(row["macs"]),
            str(row["resolution"]),
            row["published_params"] or "-",
            row["published_macs"] or "-",
            f"{row['published_top1']:.1f}" if row["published_top1"] is not None else "unpublished",
            row["source"] or "-",
        )
    Console(width=max(Console().width, 150)).print(table)
    return 0


def _markdown(rows: list[dict]) -> str:
    def exact(ours: int, official: int | None) -> str:
        if official is None:
            return "-"
        return "= ✅" if ours == official else f"{official:,} ❌"

    def gap(row: dict) -> str:
        if not row["published_macs"]:
            return "-"
        from ..published import PublishedFigure

        paper = PublishedFigure(row["published_macs"]).value
        return f"{(row['macs'] - paper) / paper * 100:+.1f}%"

    lines = [
        "| model | params train | official | params deploy | official | MACs (deploy) | at | paper MACs | Δ | paper params | top-1 | source |",
        "|---|---:|:---:|---:|:---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        top1 = f"{row['published_top1']:.1f}" if row["published_top1"] is not None else "unpublished"
        lines.append(
            f"| {row['name']} | {row['params_train']:,} | {exact(row['params_train'], row['official_params_train'])} "
            f"| {row['params_deploy']:,} | {exact(row['params_deploy'], row['official_params_deploy'])} "
            f"| {row['macs'] / 1e6:.2f}M | {row['resolution']} | {row['published_macs'] or '-'} | {gap(row)} | {row['published_params'] or '-'} "
            f"| {top1} | {row['source'] or '-'} |"
        )
    return "\n".join(lines)
