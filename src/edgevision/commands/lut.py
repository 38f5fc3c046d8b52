"""``edgevision lut build|validate|predict``: block latency tables, their validation, network predictions (issue 6)."""

from __future__ import annotations

import argparse
import contextlib
import json

from ._common import UsageError, check_input_memory, nonempty, output_dir, output_file, output_lock, positive_float, positive_int, seed, stderr_console, threads

__all__ = ["register", "run"]

RUNTIME_CHOICES = ("ort", "eager", "compile", "openvino", "cuda")


def _common_options(parser: argparse.ArgumentParser, table_required: bool = True) -> None:
    parser.add_argument("--table", type=output_file, required=table_required, default=None, metavar="FILE", help="latency table (SQLite), e.g. lut.sqlite")
    parser.add_argument("--runtime", default="ort", metavar="NAME", help=f"one of {', '.join(RUNTIME_CHOICES)} (default ort)")
    parser.add_argument("--threads", type=threads, default=2, metavar="N", help="intra-op threads (default 2)")
    parser.add_argument("--batch", type=positive_int, default=1, metavar="N", help="batch size (default 1)")
    parser.add_argument("--train-form", action="store_true", help="use the train form instead of the deploy form (what ships)")
    parser.add_argument("--allow-other-machine", action="store_true", help="use a table measured on another machine anyway")


def register(commands) -> None:
    parser = commands.add_parser(
        "lut",
        help="block latency lookup tables: build, validate on unseen networks, predict network latency",
        description="Latency lookup tables for this machine: `build` measures each distinct block once (resumable), "
        "`validate` measures how well the table predicts unseen sampled networks, `predict` gives network latencies.",
    )
    sub = parser.add_subparsers(dest="lut_command", parser_class=type(parser), metavar="{build,validate,predict}")

    build = sub.add_parser(
        "build",
        help="measure every distinct block of some networks into a table (skips blocks already there)",
        description="Measure each distinct resolved block (stem and head included) of registered models or of networks "
        "sampled from a search space, once, into --table. Re-running measures only missing blocks.",
    )
    build.add_argument("models", nargs="*", metavar="MODEL", help="registered model names (or use --space)")
    build.add_argument("--space", default=None, metavar="NAME", help="sample networks from this search space (e.g. mobile)")
    build.add_argument("--networks", type=positive_int, default=100, metavar="N", help="networks to sample with --space (default 100)")
    build.add_argument("--seed", type=seed, default=0, metavar="S", help="sampling seed (default 0)")
    build.add_argument("--input-size", type=positive_int, default=None, metavar="PX", help="input height and width for MODELs (default: each model's)")
    build.add_argument("--budget", type=positive_float, default=1.0, metavar="S", help="seconds per block, warm-up included (default 1)")
    _common_options(build)
    build.set_defaults(handler=_build)

    validate = sub.add_parser(
        "validate",
        help="predicted vs measured latency on unseen networks sampled from a search space, with the noise floor",
        description="Sample --train + --test networks, build the table for their blocks, measure the networks end to end "
        "(test networks twice, for the run-to-run noise), fit the sum correction on the training networks and report MAPE, "
        "RMSE, share within ±5%%/±10%%, Spearman and Kendall for the test networks. Resumable: re-run with the same --out.",
    )
    validate.add_argument("--space", default="mobile", metavar="NAME", help="search space (default mobile)")
    validate.add_argument("--train", type=positive_int, default=50, metavar="N", help="networks to fit the correction on (default 50)")
    validate.add_argument("--test", type=positive_int, default=100, metavar="N", help="unseen networks to validate on (default 100)")
    validate.add_argument("--seed", type=seed, default=0, metavar="S", help="sampling seed (default 0)")
    validate.add_argument("--out", type=output_dir, required=True, metavar="DIR", help="directory for networks.jsonl, validation.json, predictor.json, scatter.png")
    validate.add_argument("--block-budget", type=positive_float, default=1.0, metavar="S", help="seconds per block (default 1)")
    validate.add_argument("--network-budget", type=positive_float, default=2.0, metavar="S", help="seconds per network measurement (default 2)")
    validate.add_argument("--no-noise", action="store_true", help="skip the second measurement pass (no noise floor)")
    validate.add_argument(
        "--no-measure", action="store_true",
        help="recompute the report (accuracy, interval coverage, predictor.json) from the table and --out's networks.jsonl only; "
        "refused if a block or network is missing",
    )  # fmt: skip
    _common_options(validate, table_required=False)
    validate.set_defaults(handler=_validate)

    predict = sub.add_parser(
        "predict",
        help="predict network latency from a table (sum, or corrected with --predictor)",
        description="Predict the latency of registered models from --table: the sum of block latencies, blocks missing "
        "from the table predicted by a regressor fitted on it, corrected by --predictor (from `lut validate`) when given.",
    )
    predict.add_argument("models", nargs="+", metavar="MODEL", help="registered model names")
    predict.add_argument("--input-size", type=positive_int, default=None, metavar="PX", help="input height and width (default: each model's)")
    predict.add_argument("--predictor", type=nonempty, default=None, metavar="FILE", help="predictor.json written by `edgevision lut validate`")
    predict.add_argument("--json", type=output_file, default=None, metavar="FILE", help="also write the predictions to FILE as JSON")
    _common_options(predict)
    predict.set_defaults(handler=_predict)

    parser.set_defaults(handler=lambda args: _no_subcommand(parser))


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _setting(args: argparse.Namespace):
    from ..latency import RuntimeNotAvailable, get_runtime
    from ..lut import MeasurementSetting

    for option in ("threads", "batch"):
        if getattr(args, option) < 1:
            raise UsageError(f"--{option} must be >= 1, got {getattr(args, option)}")
    if args.runtime not in RUNTIME_CHOICES:
        raise UsageError(f"unknown runtime {args.runtime!r}; choose one of {', '.join(RUNTIME_CHOICES)}")
    try:
        get_runtime(args.runtime).check_available()
    except RuntimeNotAvailable as error:
        raise UsageError(str(error)) from None
    return MeasurementSetting(runtime=args.runtime, threads=args.threads, batch=args.batch, model_form="train" if args.train_form else "deploy")


def _positive(args: argparse.Namespace, *options: str) -> None:
    for option in options:
        value = getattr(args, option.replace("-", "_"))
        if value is not None and value <= 0:
            raise UsageError(f"--{option} must be positive, got {value}")


def _space(name: str):
    from ..lut import get_space

    try:
        return get_space(name)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _message(error: Exception) -> str:
    """The error's text; a KeyError's str() adds quotes around it."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def run(args: argparse.Namespace) -> int:
    return args.handler(args)


def _build(args: argparse.Namespace) -> int:
    from ..lut import LutError, build

    _positive(args, "budget", "networks", "input-size")
    if args.input_size is not None:
        check_input_memory((args.batch, 3, args.input_size, args.input_size), "--batch x 3 x --input-size^2")
    if bool(args.models) == bool(args.space):
        raise UsageError("give MODEL names or --space NAME (one of the two) to say which blocks to measure")
    setting = _setting(args)
    source = _space(args.space) if args.space else args.models
    console = stderr_console()
    try:
        with console.status("measuring blocks") as status:

            def progress(done, total, block):
                status.update(f"measured block {done}/{total} ({block.spec.kind}, {block.in_channels}->{block.out_channels}, {block.input_size[0]}px)")

            report = build(
                source,
                setting.runtime,
                setting.threads,
                args.table,
                batch=setting.batch,
                model_form=setting.model_form,
                count=args.networks,
                seed=args.seed,
                input_size=args.input_size,
                time_budget_s=args.budget,
                allow_other_machine=args.allow_other_machine,
                progress=progress,
            )
    except (LutError, KeyError, ValueError, OSError) as error:  # KeyError: unknown model, with close matches
        raise UsageError(_message(error)) from None
    print(
        f"{report.table}: {report.distinct_blocks} distinct blocks in {report.networks} network(s); "
        f"measured {report.measured}, {report.already_present} already in the table"
    )
    return 0


def _validate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..results import MixedResultsError
    from ..latency import MeasurementPlan
    from ..lut import LutError, validate
    from ..lut.validate import NETWORK_PLAN

    _positive(args, "train", "test", "block-budget", "network-budget")
    setting = _setting(args)
    space = _space(args.space)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create --out directory {args.out!r}: {error.strerror}") from None
    table = args.table or str(out / f"lut-{setting.runtime}.sqlite")
    console = stderr_console()
    held = contextlib.ExitStack()
    try:
        held.enter_context(output_lock(out, "lut validate output directory"))  # two validations into one --out: the second is refused
        report = validate(
            space,
            table,
            out,
            setting,
            train=args.train,
            test=args.test,
            seed=args.seed,
            noise=not args.no_noise,
            block_budget_s=args.block_budget,
            network_plan=MeasurementPlan(**{**NETWORK_PLAN.__dict__, "time_budget_s": args.network_budget}),
            allow_other_machine=args.allow_other_machine,
            progress=lambda message: console.print(f"[dim]{message}[/dim]"),
            stored_only=args.no_measure,
        )
    except (LutError, MixedResultsError, ValueError, OSError) as error:
        raise UsageError(str(error)) from None
    finally:
        held.close()
    print(report.to_markdown())
    print(f"wrote {out / 'validation.json'}, {out / 'predictor.json'}, {out / 'scatter.png'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..atomic import atomic_write_text, check_writable
    from ..lut import BlockRegressor, LatencyPredictor, LatencyTable, LutError, block_key, resolve_networks

    _positive(args, "input-size")
    if args.input_size is not None:
        check_input_memory((args.batch, 3, args.input_size, args.input_size), "--batch x 3 x --input-size^2")
    setting = _setting(args)
    if not Path(args.table).is_file():
        raise UsageError(f"latency table {args.table!r} does not exist; create it with `edgevision lut build ... --table {args.table}`")
    try:
        if args.json:
            check_writable(args.json)
        networks = resolve_networks(args.models, input_size=args.input_size)
        with LatencyTable(args.table, allow_other_machine=args.allow_other_machine) as table:
            if args.predictor:
                predictor = LatencyPredictor.load(args.predictor, table)
                if predictor.setting != setting:
                    raise LutError(f"{args.predictor} was fitted for {predictor.setting.to_dict()}, not {setting.to_dict()}; pass matching options")
            else:
                predictor = LatencyPredictor(table, setting)
                if any(block_key(block, setting) not in table for network in networks for block in network):
                    try:  # blocks missing from the table fall back to a regressor fitted on it
                        predictor.regressor = BlockRegressor().fit_table(table, setting)
                    except ValueError:  # too few entries for this setting: predict() names the missing block
                        pass
            predictions = [predictor.predict(network) for network in networks]
        if args.json:
            atomic_write_text(args.json, json.dumps([p.to_dict() for p in predictions], indent=2) + "\n")
    except (LutError, KeyError, ValueError, OSError) as error:
        raise UsageError(_message(error)) from None
    for p in predictions:
        note = f", {p.missing_blocks} of {p.blocks} blocks predicted by the regressor" if p.missing_blocks else ""
        print(f"{p.network}: {p.latency_ms:.3f} ms ± {p.uncertainty_ms:.3f} (80% interval; sum of table {p.sum_ms:.3f} ms{note})")
    return 0
