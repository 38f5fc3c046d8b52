"""``edgevision bench``: measure the zoo on this machine and write a report (issue 5).

Cost model + measured latency for every model on the chosen runtimes, resumable through
``results.jsonl``; then Pareto fronts, rank correlations of cost proxies with latency, the best
model within a latency budget, and report.md / report.html / results.csv / PNG plots in ``--out``.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

from ..bench.selection import EFFICIENT, EFFICIENT_MACS, select_models
from ._common import UsageError, check_input_memory, output_dir, positive_float, positive_int, select_runtimes, stderr_console, threads

__all__ = ["register", "run"]

RUNTIME_CHOICES = ("ort", "eager", "compile", "openvino", "all")
DEFAULT_ROOT = Path("edgevision-bench")


def register(commands) -> None:
    from ..bench.run import DEFAULT_TIME_BUDGET_S

    parser = commands.add_parser(
        "bench",
        help="measure the zoo on this machine: accuracy-latency Pareto fronts, does MACs predict latency, report",
        description="Measure every model (deploy form) on ONNX Runtime and PyTorch eager, then write results.jsonl, "
        "results.csv, report.md, report.html and PNG plots. Re-running with the same --out (or --resume) skips "
        "finished measurements.",
    )
    parser.add_argument(
        "--models", nargs="+", default=[EFFICIENT], metavar="PATTERN",
        help=f"model names or shell patterns; '{EFFICIENT}' = every registered model under {EFFICIENT_MACS / 1e9:g} GMAC at 224x224 "
        "(the mobile regime; default), '*' = all, classics included",
    )
    parser.add_argument("--runtime", default=None, metavar="NAME", help=f"one of {', '.join(RUNTIME_CHOICES)} (default: ort and eager)")
    parser.add_argument("--threads", type=threads, default=None, metavar="N", help="intra-op threads (default: physical cores)")
    parser.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size (default 1)")
    parser.add_argument("--resolution", type=positive_int, default=224, metavar="PX", help="input height and width (default 224)")
    parser.add_argument("--budget-ms", type=positive_float, default=None, metavar="X", help="also name the most accurate model within X ms per runtime")
    parser.add_argument("--out", type=output_dir, default=None, metavar="DIR", help="output directory (default ./edgevision-bench/<date>-<machine fingerprint>/)")
    parser.add_argument("--resume", action="store_true", help="without --out: continue this machine's latest run in ./edgevision-bench/")
    parser.add_argument(
        "--per-measurement-budget", type=positive_float, default=DEFAULT_TIME_BUDGET_S, metavar="S",
        help=f"seconds per model and runtime, warm-up included (default {DEFAULT_TIME_BUDGET_S:g}); short budgets give noisy results",
    )
    parser.add_argument("--second-pass", action="store_true", help="measure every network again after the first pass and report the machine's repeatability")
    parser.add_argument("--allow-mixed", action="store_true", help="combine with results of another machine or runtime version in --out")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "int8"), help="int8: also quantize each model (ORT static QDQ) and add INT8 columns to the report")
    parser.set_defaults(handler=run)


def _runtimes(choice: str | None) -> tuple[str, ...]:
    from ..bench.run import DEFAULT_RUNTIMES

    return DEFAULT_RUNTIMES if choice is None else select_runtimes(choice, RUNTIME_CHOICES[:-1])


def _models(patterns: list[str]) -> tuple[str, ...]:
    try:
        return select_models(patterns)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _out_dir(args, fingerprint: str) -> Path:
    if args.out:
        return Path(args.out)
    if args.resume:
        earlier = sorted(path for path in DEFAULT_ROOT.glob(f"*-{fingerprint}") if (path / "results.jsonl").exists())
        if not earlier:
            raise UsageError(f"nothing to resume: no earlier run of this machine ({fingerprint}) in ./{DEFAULT_ROOT}/")
        return earlier[-1]
    return DEFAULT_ROOT / f"{datetime.date.today().isoformat()}-{fingerprint}"


def run(args: argparse.Namespace) -> int:
    from ..bench import BenchConfig, MixedResultsError, write_report
    from ..bench.run import check_out_dir
    from ..results import ResultsFileError
    from ..machine import machine_info

    for option in ("threads", "batch", "resolution"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError(f"--{option} must be >= 1, got {value}")
    if args.resolution < 32:
        raise UsageError(f"--resolution must be at least 32 (the networks downsample 32x), got {args.resolution}")
    if args.per_measurement_budget <= 0:
        raise UsageError(f"--per-measurement-budget must be positive seconds, got {args.per_measurement_budget}")
    if args.budget_ms is not None and args.budget_ms <= 0:
        raise UsageError(f"--budget-ms must be positive, got {args.budget_ms}")
    check_input_memory((args.batch, 3, args.resolution, args.resolution), "--batch x 3 x --resolution^2")
    machine = machine_info()
    runtimes = _runtimes(args.runtime)  # checked before the (slower) default model selection
    config = BenchConfig(
        models=_models(args.models),
        runtimes=runtimes,
        threads=args.threads or machine.physical_cores,
        batch=args.batch,
        resolution=args.resolution,
        time_budget_s=args.per_measurement_budget,
        allow_mixed=args.allow_mixed,
        second_pass=args.second_pass,
    )
    out = _out_dir(args, machine.fingerprint)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} is a file, not a directory; choose another path")
    try:  # a busy or damaged --out is refused before the run starts (and before the header line)
        notes = check_out_dir(out)
    except (ResultsFileError, OSError) as error:
        raise UsageError(str(error)) from None
    console = stderr_console()
    console.print(
        f"edgevision bench: {len(config.models)} models x {len(config.runtimes)} runtime(s) ({', '.join(config.runtimes)}), "
        f"{config.threads} threads, input {'x'.join(map(str, config.input_shape))}, "
        f"<= {config.time_budget_s:g} s per measurement -> {out}/"
    )
    try:
        bench = _measure_with_progress(config, out, console)
    except KeyboardInterrupt:
        console.print(f"interrupted: every finished measurement is in {out / 'results.jsonl'}; run the same command to continue")
        return 130
    except (MixedResultsError, ResultsFileError) as error:
        raise UsageError(str(error)) from None
    except OSError as error:
        raise UsageError(f"cannot write to {str(out)!r}: {error.strerror or error}") from None
    for note in notes + bench.notes:
        console.print(f"[yellow]{note}[/yellow]")
    for failure in bench.failures:
        console.print(f"[yellow]failed: {failure.model} on {failure.runtime}: {failure.message}[/yellow]")
    if not bench.rows:
        raise UsageError("no measurement finished; nothing to report")
    failures = [(f.model, f.runtime, f.message) for f in bench.failures]
    files = write_report(bench.rows, out, budget_ms=args.budget_ms, time_budget_s=config.time_budget_s, failures=failures, second_pass=bench.second_pass)
    _print_summary(files, args.budget_ms)
    if args.precision == "int8":
        from ..deploy.compare import add_int8_columns

        int8 = add_int8_columns(config.models, out, resolution=config.resolution, threads=config.threads, budget_s=config.time_budget_s,
                                on_model=lambda name: console.print(f"[dim]int8: {name}[/dim]"))
        console.print(f"wrote {int8} (INT8 columns also in {files.markdown})")
    console.print(f"measured {bench.measured}, reused {bench.skipped} from {out / 'results.jsonl'}")
    console.print(f"wrote {files.markdown}, {files.html}, {files.csv} and {len(files.plots)} plots")
    return 1 if bench.failures else 0


def _measure_with_progress(config, out: Path, console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ..bench import run_bench

    columns = (TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("checking earlier results", total=None)

        def on_start(model: str, runtime: str, index: int, total: int) -> None:
            progress.update(task, total=total, completed=index, description=f"{model} on {runtime}")

        def on_done(model: str, runtime: str, row) -> None:
            progress.advance(task)

        bench = run_bench(config, out, on_start=on_start, on_done=on_done)
        progress.update(task, description="done", total=max(bench.measured + len(bench.failures), 1), completed=bench.measured + len(bench.failures))
    return bench


def _print_summary(files, budget_ms) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 120))
    for finding in files.findings:
        optimal = set(finding.latency_front)
        table = Table(title=f"{finding.runtime}: published top-1 vs measured latency (bold green: Pareto-optimal)")
        for column in ("model", "top-1 %", "median ms", "95% CI ms", "MACs", "precision"):
            table.add_column(column, justify="left" if column in ("model", "precision") else "right", no_wrap=True)
        for entry in sorted(finding.entries, key=lambda e: e.median_ms):
            ci = "-" if entry.ci_low_ms is None else f"{entry.ci_low_ms:.2f}-{entry.ci_high_ms:.2f}"
            table.add_row(
                ("★ " if entry.model in optimal else "  ") + entry.model,
                "unpublished" if entry.top1 is None else f"{entry.top1:.1f}",
                f"{entry.median_ms:.2f}",
                ci,
                f"{entry.macs / 1e6:.0f}M",
                "noisy" if entry.noisy else "precise",
                style="bold green" if entry.model in optimal else None,
            )
        console.print(table)
        macs = finding.correlations[0]
        line = f"{finding.runtime}: MACs vs latency rank correlation Spearman {_corr(macs.spearman)}, Kendall {_corr(macs.kendall)} (n={macs.n})"
        if finding.macs_only_optimal:
            line += f"; Pareto-optimal by MACs but not by latency: {', '.join(finding.macs_only_optimal)}"
        if budget_ms is not None:
            best = finding.best_in_budget
            line += f"; best within {budget_ms:g} ms: " + (f"{best.model} ({best.top1:.1f}%, {best.median_ms:.2f} ms)" if best else "none")
        console.print(line)


def _corr(value: float) -> str:
    return f"{value:+.2f}" if value == value else "- (too few models)"
