"""``edgevision profile``: per-module MACs, FLOPs, bytes, activation memory and roofline bound of any model."""

from __future__ import annotations

import argparse

from ._common import UsageError, check_input_for_model, human, load_model_argument, nonempty, nonnegative_int, output_file, parse_shape, stderr_console, threads

__all__ = ["register", "run"]

SORT_KEYS = {
    "order": None,
    "macs": lambda m: m.macs,
    "flops": lambda m: m.flops,
    "bytes": lambda m: m.bytes,
    "intensity": lambda m: m.intensity,
    "time": lambda m: m.bound_seconds or 0.0,
}


def register(commands) -> None:
    parser = commands.add_parser(
        "profile",
        help="cost of every module: MACs, FLOPs, bytes moved, activation memory, roofline-bound time, diagnostics",
        description="Count every operator of one inference forward pass (aten level, so functional code counts too), "
        "roll the counts up the module tree, bound each operator by this machine's roofline and flag layers "
        "against ShuffleNet V2's guidelines. MACs and FLOPs are never mixed: both are shown.",
    )
    parser.add_argument("model", help="registered model name, or path/to/file.py:factory returning an nn.Module")
    parser.add_argument("--input", type=nonempty, default="1x3x224x224", metavar="SHAPE", help="input shape NxCxHxW (default 1x3x224x224)")
    parser.add_argument("--deploy", action="store_true", help="profile the re-parameterized (deploy) form")
    parser.add_argument(
        "--depth", type=nonnegative_int, default=None, metavar="N", help="module depth of the table rows (default: the network's blocks; 2 for other models)"
    )
    parser.add_argument("--sort", choices=sorted(SORT_KEYS), default="order", help="row order (default: execution order)")
    parser.add_argument("--threads", type=threads, default=None, metavar="N", help="threads for the roofline peaks (default: torch's)")
    parser.add_argument("--no-roofline", action="store_true", help="skip measuring this machine's peaks (no bound times)")
    parser.add_argument(
        "--measure",
        choices=("eager", "ort"),
        default=None,
        help="also time every layer on this runtime (PyTorch profiler / ONNX Runtime profiling) and show it beside the bound",
    )
    parser.add_argument(
        "--detect-fusion",
        choices=("eager", "compile", "ort", "openvino"),
        default=None,
        metavar="RUNTIME",
        help="also time standard operator pairs (conv+relu, conv+batchnorm, ...) alone and together on RUNTIME and report "
        "which it fuses (nn-Meter: T1 + T2 - T12 > 0.5 min(T1, T2)); 'fusion' in --json",
    )
    parser.add_argument("--json", type=output_file, default=None, metavar="FILE", help="also write the full report (every operator and module) as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis import analyze, device_peaks
    from ..atomic import atomic_write_text, check_writable
    from ..reparam import reparameterize

    if args.depth is not None and args.depth < 0:
        raise UsageError(f"--depth must be >= 0, got {args.depth}")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    shape = parse_shape(args.input)
    if args.json:
        try:
            check_writable(args.json)
        except OSError as error:
            raise UsageError(str(error)) from None
    check_input_for_model(args.model, shape, "cannot take an input of shape")
    model = load_model_argument(args.model)
    if args.deploy:
        model = reparameterize(model)
    peaks = None
    if not args.no_roofline:
        with stderr_console().status("measuring this machine's roofline peaks (cached after the first run)"):
            peaks = device_peaks(threads=args.threads)
    try:
        report = analyze(model, shape, peaks=peaks, name=args.model)
    except ValueError as error:
        raise UsageError(str(error)) from None
    measured = _measured_layers(model, shape, args) if args.measure else None
    fusion = _detect_fusion(args) if args.detect_fusion else None
    if args.json:
        if fusion is None:
            atomic_write_text(args.json, report.to_json() + "\n")
        else:
            import json

            atomic_write_text(args.json, json.dumps({**json.loads(report.to_json()), "fusion": [t.to_dict() for t in fusion]}, indent=2) + "\n")
    _print(report, model, args, measured)
    if fusion is not None:
        _print_fusion(fusion, args.detect_fusion)
    return 0


def _detect_fusion(args: argparse.Namespace) -> list:
    """nn-Meter's pair test on ``args.detect_fusion`` for the standard pairs (analysis.fusion)."""
    from ..analysis.fusion import detect_fusion, measured_timer, standard_pairs
    from ..latency import MeasurementError

    timer = measured_timer(args.detect_fusion, threads=args.threads or 1)
    try:
        with stderr_console().status(f"timing operator pairs on {args.detect_fusion}"):
            return [detect_fusion(first, second, shape, timer, name=name) for name, (first, second, shape) in standard_pairs().items()]
    except MeasurementError as error:
        raise UsageError(str(error)) from None


def _print_fusion(tests: list, runtime: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fusion on {runtime} (nn-Meter: fused when T1 + T2 - T12 > 0.5 min(T1, T2); 1x64x28x28)")
    for column in ("pair", "T1 ms", "T2 ms", "T12 ms", "saved ms", "fused"):
        table.add_column(column, justify="left" if column == "pair" else "right")
    for test in tests:
        table.add_row(test.name, f"{test.first_ms:.3f}", f"{test.second_ms:.3f}", f"{test.pair_ms:.3f}", f"{test.saved_ms:.3f}", "yes" if test.fused else "no")
    Console().print(table)


def _measured_layers(model, shape: tuple[int, ...], args: argparse.Namespace) -> dict[str, float]:
    """Module path -> measured ms per call (including sub-modules); "" is the whole model."""
    from ..latency import MeasurementError, layer_times
    from ..latency.layers import ROOT

    import torch

    from ..latency.contention import reference_ms

    threads = args.threads or torch.get_num_threads()
    try:
        with stderr_console().status(f"timing every layer on {args.measure}"):
            before = reference_ms(threads)  # the machine state of the measurement, to compare with the probe's
            times = layer_times(model, shape, runtime=args.measure, threads=args.threads)
            after = reference_ms(threads)
    except MeasurementError as error:
        raise UsageError(str(error)) from None
    args.measured_reference_ms = (before, after)
    return {("" if t.path == ROOT else t.path): t.total_ms for t in times}


def _bytes(count: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{int(count)} B"


def _rows(report, model, depth: int | None):
    """Table rows: the resolved blocks of a zoo network, else the modules at ``depth``."""
    resolved = getattr(model, "resolved", None)
    if depth is None and resolved is not None:
        return [report.modules[b.path] for b in resolved if b.path in report.modules], "blocks (resolved spec)"
    depth = 2 if depth is None else depth
    return [m for m in report.modules.values() if m.depth == depth and (m.operators or m.params)], f"modules at depth {depth}"


def _print(report, model, args: argparse.Namespace, measured: dict[str, float] | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..machine import machine_info

    console = Console(width=max(Console().width, 185 if measured is not None else 150))
    machine = machine_info()
    form = "deploy" if args.deploy else "train"
    console.print(f"[bold]{report.model}[/bold] ({form} form), input {'x'.join(map(str, report.input_shape))} {report.dtype}")
    console.print(f"machine: {machine.short}, fingerprint {machine.fingerprint}")
    if report.peaks:
        peaks = report.peaks
        console.print(
            f"roofline: {peaks.flops_per_second / 1e9:.1f} GFLOP/s peak"
            + (f" ({peaks.flops_probe})" if peaks.flops_probe else "")
            + f", {peaks.bytes_per_second / 1e9:.1f} GB/s DRAM, "
            f"ridge {peaks.ridge_intensity:.1f} FLOP/B, {peaks.threads} thread(s)"
            + "".join(f"; {lv.name} {lv.bytes_per_second / 1e9:.0f} GB/s" for lv in peaks.levels[:-1])
            + (f"; reference network {peaks.reference_ms:.3f} ms at probe" if peaks.reference_ms else "")
        )
        if peaks.contended:
            console.print("[yellow]the peaks were probed while other processes were busy; re-probe on a quiet machine (device_peaks(refresh=True))[/yellow]")
    console.print(f"[dim]units: {report.units}[/dim]")

    rows, title = _rows(report, model, args.depth)
    key = SORT_KEYS[args.sort]
    if key is not None:
        rows.sort(key=key, reverse=True)
    table = Table(title=title)
    columns = ["module", "type", "params", "MACs", "FLOPs", "bytes", "act. mem", "FLOP/B", "ops"]
    if report.peaks:
        columns += ["bound ms", "bound by"]
    if measured is not None:
        columns += [f"{args.measure} ms"] + (["measured/bound"] if report.peaks else [])
    for column in columns:
        table.add_column(column, justify="left" if column in ("module", "type", "bound by") else "right", no_wrap=True)

    def cells(m) -> list[str]:
        values = [
            m.path or "<model>",
            m.type,
            human(m.params),
            human(m.macs),
            human(m.flops),
            _bytes(m.bytes),
            _bytes(m.activation_bytes),
            f"{m.intensity:.1f}",
            str(m.operators),
        ]
        if report.peaks:
            values += ["-" if m.bound_seconds is None else f"{m.bound_seconds * 1e3:.3f}", m.bound_by or "-"]
        if measured is not None:
            ms = measured.get(m.path)
            values.append("-" if ms is None else f"{ms:.3f}")
            if report.peaks:
                ratio = ms / (m.bound_seconds * 1e3) if ms is not None and m.bound_seconds else None
                values.append("-" if ratio is None else f"{ratio:.2f}x")
        return values

    for module in rows:
        table.add_row(*cells(module))
    table.add_section()
    table.add_row(*cells(report.total), style="bold")
    console.print(table)
    total = report.total
    summary = (
        f"total: {total.params:,} params, {total.macs / 1e6:.2f}M MACs, {total.flops / 1e6:.2f}M FLOPs, "
        f"{_bytes(total.bytes_read)} read + {_bytes(total.bytes_written)} written, peak activation memory "
        f"{_bytes(report.peak_activation_bytes)}"
    )
    if report.peaks:
        summary += f", roofline bound {total.bound_seconds * 1e3:.3f} ms ({total.bound_by}-bound)"
    console.print(summary)
    if report.peaks and measured is not None and measured.get(""):
        # the runtime's fused kernels (analysis.kernels) bound the whole forward; measured / bound >= 1 for a true bound
        from ..analysis.roofline import measurement_reference_ms

        # scaled to the machine state of the measurement (analysis.roofline: reference network at measurement vs at probe)
        factor = report.peaks.bound_factor(measurement_reference_ms(*getattr(args, "measured_reference_ms", ())))
        bound_ms = report.runtime_bound_seconds(args.measure) * 1e3 * factor
        verdict = "OK" if measured[""] >= bound_ms else "VIOLATED: a cost-model defect, please report it"
        state = f", x{factor:.2f} for a machine faster than at the probe" if factor < 1 else ""
        console.print(
            f"roofline tightness on {args.measure}: measured {measured[''] :.3f} ms / bound {bound_ms:.3f} ms{state} = {measured[''] / bound_ms:.2f}x ({verdict})"
        )
    if report.unrecognized_ops:
        console.print(f"[yellow]operators with the default cost (1 FLOP/element): {report.unrecognized_ops}[/yellow]")
    if report.diagnostics:
        console.print(f"[bold]diagnostics[/bold] ({len(report.diagnostics)} flags; --json FILE lists every one):")
        by_guideline: dict[str, list] = {}
        for flag in report.diagnostics:
            by_guideline.setdefault(flag.guideline, []).append(flag)
        for guideline, flags in by_guideline.items():
            more = f" (+{len(flags) - 2} more layers)" if len(flags) > 2 else ""
            for flag in flags[:2]:
                console.print(f"  {flag}", highlight=False)
            if more:
                console.print(f"  [{guideline}]{more}", highlight=False)
