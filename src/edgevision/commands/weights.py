"""``edgevision weights import``: a timm / torchvision / official checkpoint -> an edgevision checkpoint.

The file's tensors are renamed with the family's key map and checked (edgevision.weights); the
result is the self-describing checkpoint of edgevision.checkpoint (spec + weights), loadable with
``ev.load``. Any mismatch: one line, exit 2, nothing written.
"""

from __future__ import annotations

import argparse
import json

from ._common import UsageError, int_in, nonempty, output_file

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser("weights", help="import pretrained weights from timm, torchvision or the authors' releases")
    actions = parser.add_subparsers(dest="weights_action", metavar="ACTION", parser_class=type(parser))
    imp = actions.add_parser(
        "import",
        help="convert a checkpoint file into an edgevision checkpoint (spec + weights)",
        description="Rename a timm / torchvision / official checkpoint's tensors into a zoo model, check every name and "
        "shape, and write a self-describing .safetensors checkpoint (load it with edgevision.load). "
        "Reads .safetensors, and .pth/.pt/.bin without unpickling code.",
    )
    imp.add_argument("file", type=nonempty, metavar="FILE", help="the checkpoint: .safetensors, .pth, .pt or .bin")
    imp.add_argument("--model", required=True, metavar="NAME", help="zoo model name (see `edgevision models`, docs/pretrained.md)")
    imp.add_argument("--from", dest="source", choices=("timm", "torchvision", "official"), default=None,
                     help="the file's layout (default: inferred from its tensor names)")
    imp.add_argument("--ema", action="store_true",
                     help="import a training checkpoint's moving-average weights (state_dict_ema, model_ema, ...) instead of its trained ones")
    imp.add_argument("--num-classes", type=int_in(1, 1_000_000, "a class count"), default=1000, metavar="N", help="classes of the new model; != the file's re-initialises the classifier")
    imp.add_argument("--in-chans", type=int_in(1, 4096, "a channel count"), default=3, metavar="C", help="input channels; != 3 adapts the stem as timm does")
    imp.add_argument("--out", type=output_file, required=True, metavar="FILE.safetensors", help="where to write the edgevision checkpoint")
    imp.add_argument("--json", type=output_file, default=None, metavar="FILE.json", help="also write a JSON summary (model, source, tensors mapped, ...)")
    imp.set_defaults(handler=run)
    parser.set_defaults(handler=lambda args: (_ for _ in ()).throw(UsageError("give an action: `edgevision weights import FILE --model NAME --out OUT.safetensors`")))


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write_text, check_writable
    from ..checkpoint import CheckpointError, save
    from ..registry import create_model
    from ..weights import WeightImportError, load_pretrained_any_form

    if not args.out.endswith(".safetensors"):
        raise UsageError(f"--out {args.out!r} should end in .safetensors, e.g. {args.model}.safetensors")
    if args.json is not None and not args.json.endswith(".json"):
        raise UsageError(f"--json {args.json!r} should end in .json")
    if args.num_classes < 1 or args.in_chans < 1:
        raise UsageError("--num-classes and --in-chans must be positive integers")
    from pathlib import Path

    from ..weights.io import SUFFIXES

    if not Path(args.file).is_file() or Path(args.file).suffix not in SUFFIXES:  # before building the model
        what = ("does not exist" if not Path(args.file).exists() else "is not a file") if not Path(args.file).is_file() else "has an unknown suffix"
        raise UsageError(f"weights file {args.file!r} {what}; give a {', '.join(SUFFIXES)} checkpoint")
    try:
        check_writable(args.out)
        if args.json:
            check_writable(args.json)
        model = create_model(args.model, num_classes=args.num_classes, in_chans=args.in_chans)
        model, report = load_pretrained_any_form(model, args.file, source=args.source, ema=args.ema)  # deploy form for a re-parameterized file
        summary = {**report.to_dict(), "num_classes": args.num_classes, "in_chans": args.in_chans, "out": args.out}
        save(model, args.out, metadata={"pretrained": summary})
        if args.json:
            atomic_write_text(args.json, json.dumps(summary, indent=2) + "\n")
    except (WeightImportError, CheckpointError, KeyError, OSError) as error:
        raise UsageError(str(error)) from None
    print(report.summary())
    print(f"wrote {args.out}")
    return 0
