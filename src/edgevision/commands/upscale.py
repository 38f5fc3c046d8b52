"""``edgevision upscale CKPT IN OUT [--onnx GRAPH]``: super-resolve an image file with a trained SR checkpoint (or its dynamic-size
ONNX/INT8 graph in ONNX Runtime), tiled for large images."""

from __future__ import annotations

import argparse
import json

from ._common import UsageError, int_in, nonempty, output_file, positive_int, stderr_console

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "upscale",
        help="super-resolve an image file with a trained SR checkpoint",
        description="Super-resolve an image (8/16-bit, gray or RGB) with a checkpoint from `edgevision train MODEL --task "
        "super-resolution`; large images go through LR tiles in bounded memory. Gray images run as RGB and are written gray; "
        "the output is an 8-bit PNG.",
    )
    parser.add_argument("checkpoint", help="a super-resolution .safetensors checkpoint")
    parser.add_argument("image", help="the LR image file")
    parser.add_argument("output", type=output_file, help="where to write the SR image (.png)")
    parser.add_argument("--scale", type=positive_int, default=None, help="check that the checkpoint is this scale (default: its own)")
    parser.add_argument("--tile", type=positive_int, default=256, metavar="PX", help="LR tile side (default 256)")
    parser.add_argument("--tile-overlap", type=int_in(0, 1024, "LR pixels of context"), default=16, metavar="PX", help="LR context around each tile (default 16)")
    parser.add_argument("--onnx", type=nonempty, default=None, metavar="GRAPH",
                        help="run this dynamic-size ONNX graph of the checkpoint in ONNX Runtime instead of PyTorch, e.g. the INT8 one "
                        "from `edgevision eval CKPT --max-drop-db 0.3 --int8-dynamic` (CKPT.int8-dynamic.onnx) or the model.onnx of "
                        "`edgevision deploy CKPT --dynamic-size`")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from PIL import Image

    from ..atomic import atomic_path
    from ..checkpoint import CheckpointError, load, parse_spec, read_metadata
    from ..super_resolution.data import SRDataError, load_image, to_rgb
    from ..super_resolution.tiling import check_sr_input, super_resolve

    if not args.output.lower().endswith(".png"):
        raise UsageError(f"output {args.output!r} must be a .png file (lossless)")
    try:  # the checkpoint's header, its spec and the image are checked before any model is built
        spec = parse_spec(json.dumps(read_metadata(args.checkpoint)["spec"]))
    except (CheckpointError, OSError, ValueError) as error:
        raise UsageError(f"{args.checkpoint}: {error}" if isinstance(error, OSError) else str(error)) from None
    if getattr(spec, "task", None) != "super-resolution":
        raise UsageError(f"{args.checkpoint!r} holds a {getattr(spec, 'task', 'classification')} model; give a super-resolution checkpoint")
    if args.scale is not None and args.scale != spec.scale:
        raise UsageError(f"{args.checkpoint!r} is a x{spec.scale} model, not x{args.scale}; train one with --scale {args.scale}")
    try:
        image = load_image(args.image)
    except SRDataError as error:
        raise UsageError(str(error)) from None
    gray = image.shape[0] == 1
    lr = to_rgb(image) if spec.in_channels == 3 else image
    try:
        check_sr_input(spec, lr.shape[0], *lr.shape[-2:], tile=args.tile, overlap=args.tile_overlap)
    except ValueError as error:
        raise UsageError(f"{args.image}: {error}") from None
    if args.onnx is not None:
        from ..super_resolution.tiling import onnx_sr_runnable

        try:
            model = onnx_sr_runnable(args.onnx, spec)
        except ValueError as error:
            raise UsageError(f"--onnx: {error}") from None
    else:
        try:
            model = load(args.checkpoint)
        except CheckpointError as error:
            raise UsageError(str(error)) from None
    sr = super_resolve(model, lr, spec.scale, tile=args.tile, overlap=args.tile_overlap)  # [3, H*s, W*s]
    if gray:
        sr = sr.mean(0, keepdim=True)
    array = (sr.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    with atomic_path(args.output) as temporary:
        Image.fromarray(array[..., 0] if gray else array).save(temporary, format="PNG")
    stderr_console().print(f"{args.image} {lr.shape[-1]}x{lr.shape[-2]} -> {args.output} {array.shape[1]}x{array.shape[0]} (x{spec.scale}, {spec.name}"
                           f"{', ' + args.onnx if args.onnx else ''})")
    return 0
