"""``edgevision deploy``: the fastest verified form of a model on this machine (fp32 or INT8; ORT, OpenVINO, torch.compile)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._common import UsageError, check_input_memory, output_lock, finite_float, nonempty, nonnegative_int, output_dir, positive_float, positive_int, stderr_console, threads

__all__ = ["register", "run"]


def register(commands) -> None:
    parser = commands.add_parser(
        "deploy",
        help="build, quantize, verify and measure every runtime x precision; ship the fastest verified form",
        description="Re-parameterize, export, quantize to INT8 (static PTQ with this CPU's scheme, per-block mixed "
        "precision, NNCF for OpenVINO), verify every candidate (fp32 parity; INT8 top-1 on a held-out split), measure "
        "the verified ones interleaved and write the fastest to OUT with deploy.json and report.md.",
    )
    parser.add_argument("model", help="registered model name (classifier or dense task model), a .safetensors checkpoint, or an .onnx file")
    parser.add_argument("--checkpoint", type=nonempty, default=None, metavar="F", help="trained weights (.safetensors from `edgevision train`); without it, random weights")
    parser.add_argument("--data", type=nonempty, default=None, metavar="D", help="calibration/verification data (default: the checkpoint's dataset, else the embedded MNIST)")
    parser.add_argument("--max-drop", type=finite_float, default=None, metavar="PT",
                        help="allowed drop in points: top-1 (classifiers, default 0.5), mIoU (segmentation, default 1), mAP (detection, default 1)")
    parser.add_argument("--max-drop-db", type=finite_float, default=None, metavar="DB", help="super-resolution: allowed PSNR (Y) drop in dB (default 0.3)")
    parser.add_argument("--max-abs-rel-increase", type=finite_float, default=None, metavar="X", help="depth: allowed abs-rel increase (default 0.01)")
    parser.add_argument("--runtimes", default="ort,openvino", metavar="LIST", help="comma-separated: ort, openvino, compile (default ort,openvino)")
    parser.add_argument("--precisions", default="fp32,int8", metavar="LIST", help="comma-separated: fp32, int8 (default both)")
    parser.add_argument("--input-size", type=positive_int, default=None, metavar="R", help="input resolution (default: the checkpoint's, else the model's)")
    parser.add_argument("--dynamic-size", action="store_true",
                        help="super-resolution / depth: ship a graph that takes any height and width (calibrated and timed at --input-size, "
                             "verified also at other sizes)")
    parser.add_argument("--calibration", type=nonnegative_int, default=64, metavar="N", help="calibration images (default 64)")
    parser.add_argument("--search", type=nonnegative_int, default=None, metavar="N", help="classifiers: images for the mixed-precision search (default 256)")
    parser.add_argument("--verification", type=positive_int, default=None, metavar="N", help="held-out images to verify on (default 1000; task models 32)")
    parser.add_argument("--method", default="minmax", choices=("minmax", "entropy", "percentile"), help="calibration method (default minmax)")
    parser.add_argument("--scheme", default="machine", choices=("machine", "u8s8_rr", "u8s8", "s8s8", "u8u8"), help="INT8 types (default: this CPU's)")
    parser.add_argument("--no-mixed", dest="mixed", action="store_false", help="skip the per-block mixed-precision search")
    parser.add_argument("--qat", type=nonnegative_int, default=0, metavar="STEPS", help="with --checkpoint: also try quantization-aware fine-tuning for STEPS steps (default off)")
    parser.add_argument("--min-sqnr", type=finite_float, default=20.0, metavar="DB", help="without a checkpoint: INT8 output SQNR needed (default 20 dB)")
    parser.add_argument("--threads", type=threads, default=None, metavar="N", help="intra-op threads (default: physical cores)")
    parser.add_argument("--budget", type=positive_float, default=10.0, metavar="S", help="measurement seconds per candidate, over all rounds (default 10)")
    parser.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="where model.onnx (or model.xml/.bin), deploy.json and report.md go")
    parser.set_defaults(handler=run)


def _list(text: str, option: str) -> tuple[str, ...]:
    items = tuple(part.strip() for part in text.split(",") if part.strip())
    if not items:
        raise UsageError(f"{option} is empty; give a comma-separated list")
    return items


def run(args: argparse.Namespace) -> int:
    with output_lock(args.out, "deploy output directory"):  # one writer at a time: a second run on this --out is refused naming the first
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from ..checkpoint import CheckpointError
    from ..datasets import DataError
    from ..deploy import CalibrationError, DeployError, QuantizeError, deploy

    for option in ("max_drop", "max_drop_db", "max_abs_rel_increase"):
        if getattr(args, option) is not None and getattr(args, option) < 0:
            raise UsageError(f"--{option.replace('_', '-')} must be >= 0, got {getattr(args, option)}")
    for option in ("calibration", "search", "verification", "threads", "input_size", "qat"):
        value = getattr(args, option)
        if value is not None and value < (0 if option in ("search", "qat") else 1):
            raise UsageError(f"--{option.replace('_', '-')} must be >= 1, got {value}" + ("; the calibration set cannot be empty" if option == "calibration" else ""))
    if args.budget <= 0:
        raise UsageError(f"--budget must be positive seconds, got {args.budget}")
    if args.qat and args.checkpoint is None and not Path(args.model).is_file():
        # a model deployed by name has random weights: there is no float accuracy for fake-quant training to keep
        raise UsageError(f"--qat {args.qat} needs trained weights: give --checkpoint FILE (or a checkpoint as MODEL), or drop --qat")
    if args.input_size is not None:
        check_input_memory((max(args.calibration, 1), 3, args.input_size, args.input_size), "--calibration x 3 x --input-size^2")
    runtimes, precisions = _list(args.runtimes, "--runtimes"), _list(args.precisions, "--precisions")
    console = stderr_console()
    try:
        result = deploy(
            args.model,
            args.out,
            checkpoint=args.checkpoint,
            data=args.data,
            max_drop=args.max_drop,
            max_drop_db=args.max_drop_db,
            max_abs_rel_increase=args.max_abs_rel_increase,
            runtimes=runtimes,
            precisions=precisions,
            input_size=args.input_size,
            calibration=args.calibration,
            search=args.search,
            verification=args.verification,
            method=args.method,
            scheme=args.scheme,
            mixed=args.mixed,
            qat_steps=args.qat,
            min_sqnr_db=args.min_sqnr,
            threads=args.threads,
            budget_s=args.budget,
            dynamic_size=args.dynamic_size,
            progress=lambda message: console.print(f"[dim]{message}[/dim]"),
        )
    except (DeployError, QuantizeError, CalibrationError, CheckpointError, DataError, OSError) as error:  # DataError: classifier and task loaders
        raise UsageError(str(error)) from None
    data = result.data
    print(
        f"shipped {data['runtime']}/{data['precision']} ({data['variant']}) to {args.out}: {data['median_ms']:.3f} ms, "
        f"{data['speedup_vs_fp32_ort']:.2f}x fp32 ONNX Runtime; {data['verification']}"
    )
    return 0
