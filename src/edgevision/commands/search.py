"""``edgevision search``: hardware-aware architecture search on this machine's latency tables (issue 16)."""

from __future__ import annotations

import argparse

from pathlib import Path

from ._common import UsageError, check_input_memory, int_in, output_lock, select_runtimes, nonempty, output_dir, output_file, positive_float, positive_int, seed, stderr_console, threads

__all__ = ["register", "run"]

STRATEGY_CHOICES = ("random", "evolution", "dnas", "proxyless", "blocks", "repnas")


def register(commands) -> None:
    parser = commands.add_parser(
        "search",
        help="search a space for the most accurate networks within a latency budget on this machine",
        description="Search --space with --strategy for networks whose predicted latency on --runtime (from the block "
        "latency table, missing blocks measured on demand) is within --latency-ms; accuracy from short training on "
        "--data at --resolution px. Writes DIR/pareto.json, best.safetensors, report.md, report.html, front.png. "
        "Resumable: re-run with the same --out after an interruption.",
    )
    parser.add_argument("--space", default="mobile", metavar="NAME", help="search space (default mobile)")
    parser.add_argument("--strategy", default="random", metavar="NAME", help=f"one of {', '.join(STRATEGY_CHOICES)} (default random)")
    parser.add_argument("--runtime", default="ort", metavar="NAME", help="runtime the latency is for (default ort)")
    parser.add_argument("--threads", type=threads, default=2, metavar="N", help="intra-op threads for latency (default 2)")
    parser.add_argument("--latency-ms", type=positive_float, required=True, metavar="X", help="latency budget per image, batch 1 (ms)")
    parser.add_argument("--trials", type=positive_int, default=20, metavar="N", help="networks to train (sampling) or to derive (supernet strategies); default 20")
    parser.add_argument("--epochs", type=positive_int, default=1, metavar="E", help="short-training epochs per network (default 1)")
    parser.add_argument("--supernet-epochs", type=positive_int, default=None, metavar="E", help="supernet epochs for dnas/proxyless (default 4 x --epochs)")
    parser.add_argument("--accuracy", type=nonempty, default="train", metavar="HOW", help="train: short-train every network (default); supernet: train the space's supernet once and score paths with inherited weights (random, evolution)")
    parser.add_argument("--data", type=nonempty, default="default", metavar="D", help="dataset: default (embedded MNIST), cifar10:DIR, imagefolder:DIR, npz:FILE")
    parser.add_argument("--resolution", type=positive_int, default=32, metavar="R", help="training resolution in px (default 32); latency is at the space's input size")
    parser.add_argument("--time-budget", type=positive_float, default=None, metavar="S", help="stop starting new trials S seconds after the search started (calibration and supernet training count)")
    parser.add_argument("--table", type=output_file, default="lut.sqlite", metavar="FILE", help="block latency table (default lut.sqlite; created and filled on demand)")
    parser.add_argument("--predictor", type=nonempty, default=None, metavar="FILE", help="price networks with this fitted predictor (predictor.json of `edgevision lut validate`) instead of the table sum; both are reported")
    parser.add_argument("--no-build", action="store_true", help="never measure missing blocks; fail naming `edgevision lut build` instead")
    parser.add_argument("--storage", type=nonempty, default=None, metavar="URL", help="Optuna storage (default sqlite:///DIR/study.sqlite; any SQLAlchemy URL)")
    parser.add_argument("--workers", type=threads, default=None, metavar="N", help="train N trials in parallel on a local Ray")
    parser.add_argument("--ray-address", default=None, metavar="HOST:PORT", help="join this Ray cluster instead")
    parser.add_argument("--zoo", type=nonempty, default=None, metavar="FILE", help="zoo points to overlay (JSON list of network, measured_ms, accuracy)")
    parser.add_argument("--no-measure", action="store_true", help="do not measure the shipped networks (predicted latency only)")
    parser.add_argument("--calibrate", type=int_in(0, 50, "an integer from 0 to 50"), default=None, metavar="N",
                        help="measure N networks of the space end to end first and price every network with the table sum calibrated on them "
                        "(call overhead subtracted, scaled to this machine now); default 3, 0 without --no-measure or with --predictor; 0: the plain sum")
    parser.add_argument("--branch-budget", type=float, default=None, metavar="F", help="repnas: share of all DBB branches the searched network keeps (default 0.5)")
    parser.add_argument("--seed", type=seed, default=0, metavar="S", help="seed (default 0)")
    parser.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="output directory (also holds the resumable study)")
    parser.set_defaults(handler=run)


def _strategy_options(args: argparse.Namespace) -> dict | None:
    if args.branch_budget is None:
        return None
    if args.strategy != "repnas":
        raise UsageError("--branch-budget is for --strategy repnas")
    if not 0 < args.branch_budget <= 1:
        raise UsageError(f"--branch-budget must be in (0, 1], got {args.branch_budget:g}")
    return {"branch_budget": args.branch_budget}


def run(args: argparse.Namespace) -> int:
    with output_lock(args.out, "search output directory"):  # one writer at a time: a second run on this --out is refused naming the first
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from .. import search
    from ..datasets import DataError
    from ..latency import MeasurementError
    from ..lut import LutError, SPACES

    if args.strategy not in STRATEGY_CHOICES:
        raise UsageError(f"unknown strategy {args.strategy!r}; choose one of {', '.join(STRATEGY_CHOICES)}")
    if args.accuracy not in ("train", "supernet"):
        raise UsageError(f"unknown --accuracy {args.accuracy!r}; choose train or supernet")
    if args.space not in SPACES:
        raise UsageError(f"unknown search space {args.space!r}; choose one of {', '.join(SPACES)}")
    for name in ("trials", "epochs", "resolution", "threads"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    check_input_memory((64, 3, args.resolution, args.resolution), "a training batch of 64 x 3 x --resolution^2")
    if args.runtime == "all":
        raise UsageError("--runtime takes one runtime (the one the latency budget is for), not 'all'")
    from ..latency.runtimes import RUNTIMES

    select_runtimes(args.runtime, tuple(RUNTIMES))
    if args.zoo is not None:  # read now: a bad file found only when the report is written would cost the whole search
        from ..search.report import read_zoo_points

        try:
            if not Path(args.zoo).is_file():
                raise ValueError("not a file")
            read_zoo_points(args.zoo)
        except (OSError, ValueError, TypeError, AttributeError) as error:
            raise UsageError(f"--zoo {args.zoo!r}: {type(error).__name__}: {str(error)[:120]}; give a JSON list of "
                             '{"network", "measured_ms", "accuracy"} objects') from None
    if args.calibrate and (args.no_measure or args.predictor is not None):
        raise UsageError("--calibrate measures networks and corrects the table sum; it cannot go with --no-measure or --predictor")
    if args.predictor is not None:  # read now, before the table is opened and the space priced
        from ..lut.predictor import read_predictor_file

        try:
            read_predictor_file(args.predictor)
        except LutError as error:
            raise UsageError(f"--predictor: {error}") from None
    console = stderr_console()
    try:
        result = search.run(
            args.space,
            args.strategy,
            latency_ms=args.latency_ms,
            runtime=args.runtime,
            threads=args.threads,
            table=args.table,
            predictor=args.predictor,
            data=args.data,
            accuracy=args.accuracy,
            epochs=args.epochs,
            supernet_epochs=args.supernet_epochs,
            resolution=args.resolution,
            trials=args.trials,
            time_budget_s=args.time_budget,
            storage=args.storage,
            out=args.out,
            seed=args.seed,
            workers=args.workers,
            ray_address=args.ray_address,
            measure=not args.no_measure,
            build_missing=not args.no_build,
            zoo_file=args.zoo,
            progress=lambda line: console.print(line, highlight=False),
            options=_strategy_options(args),
            calibrate=args.calibrate,
        )
    except (search.SearchError, LutError, DataError, MeasurementError) as error:
        raise UsageError(str(error).splitlines()[0]) from None
    best = result.best
    print(f"{result.strategy} on {result.space}: {len(result.front)} networks on the front within {result.budget_ms:g} ms; hypervolume {result.hypervolume:.4f}")
    if best is not None:
        measured = "" if best.measured_ms is None else f", measured {best.measured_ms:.3f} ms"
        table_sum = "" if best.table_sum_ms is None else f" (table sum {best.table_sum_ms:.3f} ms)"
        print(f"best: {best.name} accuracy {best.accuracy:.4f}, predicted {best.predicted_ms:.3f} ms{table_sum}{measured}")
    print(f"wrote {args.out}/pareto.json, best.safetensors, report.md, report.html, front.png")
    return 0
