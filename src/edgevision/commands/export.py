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
    parser.add_argument("--raw", action="store_true", help="detectors: export the bare head outputs instead of the deployable graph with NMS inside")
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
        # a model that ships its post-processing (a detector's NMS) exports the deployable graph (protocol)
        deployable_export = None if args.raw else getattr(model, "export_deployable_onnx", None)
        if deployable_export is not None:
            if args.dynamic_hw or not args.dynamic_batch or not args.deploy:
                raise UsageError(f"{args.model} exports with its post-processing (dynamic batch, fixed size, deploy form); "
                                 "drop --dynamic-hw/--static-batch/--no-deploy or pass --raw for the bare heads")
            size = shape[-1] if shape else None
            if shape and shape[-1] != shape[-2]:
                raise UsageError(f"{args.model} exports square inputs; give --input 3xSxS")
            result = deployable_export(args.output, image_size=size, opset=DEFAULT_OPSET if args.opset is None else args.opset, atol=args.atol)
            print(f"{args.model}: wrote {result['path']} with its post-processing ({result['nodes']} nodes); ONNX Runtime matches "
                  f"PyTorch on {result['detections_checked']} detections (max box error {result['max_box_error']:.2g} px)")
            return 0
        report = export_onnx(
            model, args.output, shape, deploy=args.deploy, dynamic_batch=args.dynamic_batch, dynamic_hw=args.dynamic_hw,
            opset=DEFAULT_OPSET if args.opset is None else args.opset, atol=args.atol,
        )
    except (ExportError, MeasurementError, KeyError, ValueError, OSError, RuntimeError) as error:
        raise UsageError(str(error)) from None
    print(report.summary())
    return 0
