"""``edgevision measure``: latency of a model (registered name or .onnx file) on one or all runtimes."""

from __future__ import annotations

import argparse
import json

from ._common import UsageError, check_input_for_model, check_input_memory, nonempty, output_file, parse_shape, positive_float, positive_int, select_runtimes, stderr_console, threads

__all__ = ["register", "run"]

RUNTIME_CHOICES = ("eager", "compile", "ort", "openvino", "cuda", "all")


def register(commands) -> None:
    parser = commands.add_parser(
        "measure",
        help="measure latency (median with 95%% CI) on eager, torch.compile, ONNX Runtime or OpenVINO",
        description="Measure per-call latency: warm up until stable, then repeat until the 95%% CI of the median "
        "is within 2%% or the time budget runs out (then the result says 'noisy').",
    )
    parser.add_argument("model", help="registered model name, or a path to an .onnx file (runtimes ort, openvino)")
    parser.add_argument("--runtime", default="ort", metavar="NAME", help=f"one of {', '.join(RUNTIME_CHOICES)} (default ort)")
    parser.add_argument("--deploy", action="store_true", help="re-parameterize first (BatchNorm folded, branches merged)")
    parser.add_argument("--threads", type=threads, default=None, metavar="N", help="intra-op threads (default: physical cores)")
    parser.add_argument("--batch", type=positive_int, default=None, metavar="N", help="batch size (default 1)")
    parser.add_argument("--input", type=nonempty, default=None, metavar="SHAPE", help="input shape CxHxW or NxCxHxW, e.g. 1x3x224x224 (default: the model's)")
    parser.add_argument("--budget", type=positive_float, default=20.0, metavar="S", help="seconds per runtime for warm-up + measurement (default 20)")
    parser.add_argument("--channels-last", action="store_true", help="eager/compile/cuda: use the channels_last memory format")
    parser.add_argument("--json", type=output_file, default=None, metavar="FILE", help="also write the results (with their context) to FILE as JSON")
    parser.set_defaults(handler=run)


def _runtimes(choice: str) -> tuple[str, ...]:
    names = select_runtimes(choice, RUNTIME_CHOICES[:-1])
    if choice == "all":
        missing = [name for name in RUNTIME_CHOICES[:-1] if name not in names]
        if missing:
            stderr_console().print(f"[dim]skipping runtimes not available here: {', '.join(missing)}[/dim]")
    return names


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_write_text, check_writable
    from ..latency import MeasurementError, measure

    for option in ("threads", "batch"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError(f"--{option} must be >= 1, got {value}")
    if args.budget <= 0:
        raise UsageError(f"--budget must be positive seconds, got {args.budget}")
    try:
        if args.json:
            check_writable(args.json)  # fail before spending minutes measuring
        shape = parse_shape(args.input, dims=(3, 4)) if args.input else None
        check_input_for_model(args.model, shape)
        if shape is not None and args.batch is not None:
            check_input_memory((args.batch, *shape[-3:]), "--input with --batch")
        runtimes = _runtimes(args.runtime)
        results = []
        for runtime in runtimes:
            with stderr_console().status(f"measuring {args.model} on {runtime}"):
                results.append(
                    measure(
                        args.model,
                        shape,
                        runtime=runtime,
                        threads=args.threads,
                        batch=args.batch,
                        deploy=args.deploy,
                        channels_last=args.channels_last,
                        time_budget_s=args.budget,
                    )
                )
        if args.json:
            atomic_write_text(args.json, json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    except (MeasurementError, KeyError, OSError) as error:  # KeyError: UnknownModelError names close matches
        raise UsageError(str(error)) from None
    _print_table(results)
    return 0


def _print_table(results) -> None:
    from rich.console import Console
    from rich.table import Table

    context = results[0].context
    table = Table(
        title=f"{context.model} ({context.model_form} form), input {'x'.join(map(str, context.input_shape))}, "
        f"{context.threads} threads — {context.cpu_model}"
    )
    for column in ("runtime", "median ms", "95% CI", "p90 ms", "runs", "images/s", "peak RSS", "note"):
        table.add_column(column, justify="left" if column in ("runtime", "note") else "right", no_wrap=True)
    for result in results:
        memory = f"{result.peak_memory_bytes / 2**20:.0f} MiB" if result.peak_memory_bytes else "-"
        note = f"noisy ({result.stop_reason} ran out)" if result.noisy else ""
        table.add_row(
            result.context.runtime,
            f"{result.median_ms:.3f}",
            f"{result.ci_low_ms:.3f}-{result.ci_high_ms:.3f}",
            f"{result.p90_ms:.3f}",
            str(result.runs),
            f"{result.throughput:.1f}",
            memory,
            note,
        )
    Console(width=max(Console().width, 120)).print(table)
