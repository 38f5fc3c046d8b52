"""``edgevision export``: re-parameterize, export to ONNX, verify in ONNX Runtime against PyTorch, write atomically."""

from __future__ import annotations

import argparse

from ._common import UsageError, check_input_for_model, nonempty, nonnegative_float, output_file, parse_shape

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "export",
        help="export a model to ONNX (deploy form by default), verified against PyTorch in ONNX Runtime",
        description="Export a registered model to ONNX. The file is checked, simplified and run in ONNX Runtime; "
        "it is written only if its outputs match PyTorch within the tolerance.",
    )
    parser.add_argument("model", help="registered model name")
    parser.add_argument("output", type=output_file, metavar="OUT.onnx", help="where to write the ONNX file")
    parser.add_argument("--no-deploy", dest="deploy", action="store_false", help="export the train form (BatchNorm kept, branches unmerged)")
    parser.add_argument("--input", type=nonempty, default=None, metavar="SHAPE", help="example input CxHxW or NxCxHxW (default: the model's, batch 1)")
    parser.add_argument("--static-batch", dest="dynamic_batch", action="store_false", help="fix the batch size instead of leaving it dynamic")
    parser.add_argument(
        "--dynamic-hw", action="store_true", help="leave height and width free (checked in ONNX Runtime at a second size)"
    )
    parser.add_argument("--features-only", action="store_true", help="export the backbone returning its feature pyramid (one output per level)")
    parser.add_argument("--output-stride", type=int, default=None, choices=(8, 16, 32), help="turn the strides beyond it into dilation")
    parser.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: edgevision.export.DEFAULT_OPSET, 17)")
    parser.add_argument("--atol", type=nonnegative_float, default=1e-4, help="max |torch - onnx| / max |torch| allowed (default 1e-4)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import check_writable
    from ..export import DEFAULT_OPSET, SUPPORTED_OPSETS, ExportError, export_onnx
    from ..latency import MeasurementError
    from ..registry import create_model

    if not args.output.endswith(".onnx"):
        raise UsageError(f"output {args.output!r} should end in .onnx, e.g. {args.model}.onnx")
    try:
        check_writable(args.output)  # before building and exporting the model
        shape = parse_shape(args.input, dims=(3, 4)) if args.input else None
        check_input_for_model(args.model, shape)
        if args.opset is not None and args.opset not in SUPPORTED_OPSETS:
            raise ExportError(f"--opset {args.opset} is not supported: the installed exporter and ONNX Runtime handle "
                              f"{SUPPORTED_OPSETS.start}..{SUPPORTED_OPSETS.stop - 1} (default {DEFAULT_OPSET})")
        model = create_model(args.model, features_only=args.features_only, output_stride=args.output_stride)
        report = export_onnx(
            model, args.output, shape, deploy=args.deploy, dynamic_batch=args.dynamic_batch, dynamic_hw=args.dynamic_hw,
            opset=DEFAULT_OPSET if args.opset is None else args.opset, atol=args.atol,
        )
    except (ExportError, MeasurementError, KeyError, ValueError, OSError) as error:
        raise UsageError(str(error)) from None
    print(report.summary())
    return 0
