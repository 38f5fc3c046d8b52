"""``edgevision spec``: one model's resolved blocks (widths, stride, input size) or its spec as JSON."""

from __future__ import annotations

import argparse

from ._common import UsageError, int_in, positive_float

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "spec",
        help="show one model's resolved blocks (channels, stride, input size) or its spec as JSON",
        description="Resolve a registered model's spec and show every block with its widths and input size.",
    )
    parser.add_argument("name", help="registered model name")
    parser.add_argument("--json", action="store_true", help="print the network spec as JSON (round-trips with NetworkSpec.from_json)")
    parser.add_argument("--resolution", type=int_in(1, 65536, "a resolution"), default=None, metavar="PX", help="input H = W (default: the model's own)")
    parser.add_argument("--width", type=positive_float, default=None, metavar="W", help="width multiplier (default: the model's own)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..registry import get_spec
    from ..resolve import resolve

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
