"""Command line: ``edgevision models`` (the zoo with counts) and ``edgevision spec`` (one model's resolved blocks).

Bad input gets one line on stderr and exit code 2; no tracebacks for user errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

__all__ = ["main"]


class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints usage + exits 2; we want one line
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgevision", description="Hardware-aware efficient vision networks.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    models = commands.add_parser(
        "models",
        help="list registered models with params (train/deploy), MACs and published figures",
        description="List registered models. Counts are computed live: params of the train and deploy "
        "(re-parameterized) forms, multiply-accumulates of the deploy form at the given resolution.",
    )
    models.add_argument("patterns", nargs="*", metavar="PATTERN", help="shell-style name pattern(s), e.g. 'ghost*' (default: all)")
    output = models.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON (one object per model) instead of a table")
    output.add_argument("--markdown", action="store_true", help="print a Markdown table with the published figures beside ours")
    models.add_argument("--resolution", type=int, default=224, metavar="PX", help="input H = W for the MAC count (default 224)")

    spec = commands.add_parser(
        "spec",
        help="show one model's resolved blocks (channels, stride, input size) or its spec as JSON",
        description="Resolve a registered model's spec and show every block with its widths and input size.",
    )
    spec.add_argument("name", help="registered model name")
    spec.add_argument("--json", action="store_true", help="print the network spec as JSON (round-trips with NetworkSpec.from_json)")
    spec.add_argument("--resolution", type=int, default=None, metavar="PX", help="input H = W (default: the model's own)")
    spec.add_argument("--width", type=float, default=None, metavar="W", help="width multiplier (default: the model's own)")
    return parser


def _human(count: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(count) >= scale:
            return f"{count / scale:.2f}{unit}"
    return str(int(count))


def _model_rows(names: list[str], resolution: int) -> list[dict]:
    from rich.progress import Progress

    from .counting import count_macs, count_params
    from .published import published
    from .registry import create_model, model_family
    from .reparam import reparameterize

    rows = []
    with Progress(transient=True, console=_stderr_console()) as progress:
        task = progress.add_task("counting", total=len(names))
        for name in names:
            progress.update(task, description=name)
            model = create_model(name)
            deployed = reparameterize(model)
            record = published(name)
            rows.append(
                {
                    "name": name,
                    "family": model_family(name),
                    "params_train": count_params(model),
                    "params_deploy": count_params(deployed),
                    "macs": count_macs(deployed, resolution),
                    "resolution": resolution,
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


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _cmd_models(args: argparse.Namespace) -> int:
    from .registry import list_models, suggest

    if args.resolution < 32:
        raise UsageError(f"--resolution must be >= 32 (the networks downsample 32x), got {args.resolution}")
    patterns = args.patterns or ["*"]
    names = list_models(patterns)
    if not names:
        close = list(dict.fromkeys(m for p in patterns for m in suggest(p)))
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `edgevision models` to see all names"
        raise UsageError(f"no registered model matches {' '.join(repr(p) for p in patterns)}{hint}")
    rows = _model_rows(names, args.resolution)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if args.markdown:
        print(_markdown(rows))
        return 0

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgevision models — counts at {args.resolution}x{args.resolution}, MACs = multiply-accumulates")
    for column, justify in (
        ("model", "left"),
        ("params train", "right"),
        ("params deploy", "right"),
        ("MACs (deploy)", "right"),
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
            _human(row["macs"]),
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
        from .published import PublishedFigure

        paper = PublishedFigure(row["published_macs"]).value
        return f"{(row['macs'] - paper) / paper * 100:+.1f}%"

    lines = [
        f"| model | params train | official | params deploy | official | MACs @{rows[0]['resolution']} (deploy) | paper MACs | Δ | paper params | top-1 | source |",
        "|---|---:|:---:|---:|:---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        top1 = f"{row['published_top1']:.1f}" if row["published_top1"] is not None else "unpublished"
        lines.append(
            f"| {row['name']} | {row['params_train']:,} | {exact(row['params_train'], row['official_params_train'])} "
            f"| {row['params_deploy']:,} | {exact(row['params_deploy'], row['official_params_deploy'])} "
            f"| {row['macs'] / 1e6:.2f}M | {row['published_macs'] or '-'} | {gap(row)} | {row['published_params'] or '-'} "
            f"| {top1} | {row['source'] or '-'} |"
        )
    return "\n".join(lines)


def _cmd_spec(args: argparse.Namespace) -> int:
    from .registry import get_spec
    from .resolve import resolve

    try:
        spec = get_spec(args.name)
    except KeyError as error:  # UnknownModelError: message names close matches
        raise UsageError(str(error)) from None
    if args.json:
        print(spec.to_json(indent=2))
        return 0
    if args.width is not None and args.width <= 0:
        raise UsageError(f"--width must be positive, got {args.width}")
    if args.resolution is not None and args.resolution < 1:
        raise UsageError(f"--resolution must be positive, got {args.resolution}")
    try:
        resolved = resolve(spec, width_multiplier=args.width, input_size=args.resolution)
    except ValueError as error:  # e.g. a width multiplier that breaks group divisibility
        raise UsageError(str(error)) from None

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{spec.name}: width {resolved.spec.width_multiplier}, input {resolved.input_size[0]}x{resolved.input_size[1]}")
    for column in ("path", "kind", "in", "out", "mid", "se", "stride", "input HxW"):
        table.add_column(column, justify="left" if column in ("path", "kind") else "right", no_wrap=True)
    for block in resolved:
        table.add_row(
            block.path,
            block.spec.kind,
            str(block.in_channels),
            str(block.out_channels),
            str(block.mid_channels or "-"),
            str(block.se_channels or "-"),
            str(block.stride),
            f"{block.input_size[0]}x{block.input_size[1]}",
        )
    Console().print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from . import __version__

            print(__version__)
            return 0
        if args.command is None:
            parser.print_help()
            return 0
        return {"models": _cmd_models, "spec": _cmd_spec}[args.command](args)
    except UsageError as error:
        print(f"edgevision: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
