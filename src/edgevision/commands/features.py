"""``edgevision features``: one model's feature pyramid (channels, reduction, module path per level), or JSON."""

from __future__ import annotations

import argparse
import json

from ._common import UsageError, int_in

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "features",
        help="show a model's feature pyramid: channels, reduction and module per level (what features_only returns)",
        description="List the feature levels of a registered model (the last block output at each reduction), "
        "read from its resolved spec. --output-stride 16 or 8 shows the dilated backbone.",
    )
    parser.add_argument("name", help="registered model name")
    parser.add_argument("--output-stride", type=int, default=None, choices=(8, 16, 32), help="turn the strides beyond it into dilation")
    parser.add_argument("--resolution", type=int_in(1, 65536, "a resolution in px"), default=None, metavar="PX", help="input H = W for the map sizes (default: the model's own)")
    parser.add_argument("--json", action="store_true", help="print the levels as JSON (timm's keys num_chs, reduction, module, plus index and size)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..registry import get_spec
    from ..resolve import resolve

    if args.resolution is not None and args.resolution < 1:
        raise UsageError(f"--resolution must be positive, got {args.resolution}")
    try:
        spec = get_spec(args.name)
        if args.output_stride is not None:
            spec = spec.with_output_stride(args.output_stride)
        resolved = resolve(spec, input_size=args.resolution)
    except (KeyError, ValueError) as error:  # unknown name (close matches named), or a block that cannot dilate
        raise UsageError(str(error)) from None
    levels = resolved.feature_info()
    if args.json:
        payload = {
            "model": spec.name,
            "input_size": list(resolved.input_size),
            "output_stride": spec.output_stride,
            "levels": [level.to_dict() for level in levels],
        }
        print(json.dumps(payload, indent=1))
        return 0

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{spec.name}: feature levels at {resolved.input_size[0]}x{resolved.input_size[1]}")
    for column in ("index", "reduction", "channels", "size", "module", "dilation"):
        table.add_column(column, justify="left" if column == "module" else "right", no_wrap=True)
    for level in levels:
        block = resolved.blocks[level.block]
        table.add_row(str(level.index), str(level.reduction), str(level.channels), f"{level.size[0]}x{level.size[1]}", level.module, str(block.dilation))
    Console().print(table)
    return 0
