"""Architecture search on this machine: every strategy with the same wall-clock budget against random.

For each strategy: ``edgevision.search.run`` on the space with the same latency budget and the same
``--budget-s`` seconds; reported: hypervolume of the accuracy–latency front (predicted latency,
normalised by the budget), networks trained, the best network's accuracy and its predicted vs
measured latency. Zoo networks (``--zoo``) are trained with the same recipe at the same resolution
and measured at the space's input size on the same runtime; each is compared with the most accurate
found network at or below its measured latency. With ``--proxies N`` it also samples N networks,
short-trains them and reports each zero-cost proxy's rank correlation with that accuracy
(synflow, NASWOT, grad-norm, params, MACs).

    python benchmarks/bench_search.py                # full (make bench-search): 7 strategies x 300 s, ~60 min on 2 idle cores
    python benchmarks/bench_search.py --quick        # a small space, 60 s per strategy, end to end (~15 min)

The full run fits an hour on two cores: the latency table is built first (every candidate of the
space's supernet and 60 sampled networks, 0.5 s per block), so no strategy pays for blocks another
measured; each network's short training is capped at ``--max-steps`` (30 steps of 64 images); the
weight-sharing supernet trains 4 epochs inside its strategy's budget; the proxy correlations reuse
the networks the ``random`` strategy short-trained (topped up to ``--proxies``). Every strategy gets
the same ``--budget-s`` of wall clock from the start of its search (calibration and supernet
training included); what runs outside it (the table, the zoo, re-training each best network for
``best.safetensors``, measuring the front) is timed per phase in the results.

Results: benchmarks/results/search.md (+ search/<strategy>/ outputs, zoo.json, proxies.json). Resumable:
each strategy's study and the latency table live under the output folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

import edgevision as ev  # noqa: E402
from edgevision.atomic import atomic_write_text  # noqa: E402
from edgevision.lut import LatencyTable, MeasurementSetting, SearchSpace, StageChoices, get_space  # noqa: E402
from edgevision.machine import machine_info  # noqa: E402
from edgevision.search import LatencyModel, ShortTraining, proxy_correlations, proxy_scores, run  # noqa: E402
from edgevision.search.run import measure_network  # noqa: E402

#: --quick: two stages, three kinds, 64 px: its table fills in a minute, a network trains in seconds
QUICK_SPACE = SearchSpace(
    name="quick",
    input_size=64,
    stem_widths=(16,),
    stages=(
        StageChoices(block_kinds=("inverted_residual", "ghost_bottleneck", "resnet_basic"), widths=(24, 32), depths=(1, 2), stride=2, kernel_sizes=(3, 5), expansion_ratios=(3.0, 6.0)),
        StageChoices(block_kinds=("inverted_residual", "ghost_bottleneck", "resnet_basic"), widths=(48, 64), depths=(1, 2), stride=2, kernel_sizes=(3, 5), expansion_ratios=(3.0, 6.0)),
    ),
    num_classes=10,
)


def zoo_points(names, estimator, input_size, runtime, threads, path: Path) -> list[dict]:
    done = {p["network"]: p for p in json.loads(path.read_text())} if path.is_file() else {}
    for name in names:
        if name in done:
            continue
        spec = ev.get_spec(name)
        spec = spec.replace(input_size=input_size)
        accuracy = estimator(spec)
        measured = measure_network(spec.with_classes(10), runtime, threads)
        done[name] = {"network": name, "measured_ms": measured, "accuracy": accuracy, "params": ev.count_params(ev.build(spec.with_classes(10)))}
        atomic_write_text(path, json.dumps(list(done.values()), indent=1) + "\n")
        print(f"zoo {name}: {measured:.2f} ms, accuracy {accuracy:.4f}", flush=True)
    return [done[n] for n in names]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small space, 60 s per strategy, no proxies")
    parser.add_argument("--space", default="mobile")
    parser.add_argument(
        "--strategies", nargs="+", default=["random", "evolution", "dnas", "proxyless", "blocks", "repnas", "evolution:supernet"],
        help="strategies; NAME:supernet scores with weights inherited from one supernet (random, evolution) instead of short training",
    )
    parser.add_argument("--latency-ms", type=float, default=4.0)
    parser.add_argument("--budget-s", type=float, default=300.0, help="wall-clock seconds per strategy (default 300: the hour-long run)")
    parser.add_argument("--epochs", type=int, default=1, help="short-training epochs per network")
    parser.add_argument("--max-steps", type=int, default=30, help="cap on each network's short-training steps (0: whole epochs)")
    parser.add_argument("--table-networks", type=int, default=60, help="sampled networks whose blocks are measured before the strategies run")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--runtime", default="ort")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zoo", nargs="*", default=["mobilenetv2_050", "mobilenetv3_small_075", "shufflenet_v2_x0_5", "ghostnet_050", "mnasnet_100"])
    parser.add_argument("--proxies", type=int, default=30, help="networks for the proxy rank correlations (0: skip)")
    parser.add_argument("--out", default=str(ROOT / "results" / "search"))
    args = parser.parse_args()
    if args.quick:
        args.budget_s, args.epochs, args.proxies, args.max_steps, args.table_networks = 60.0, 1, 6, 15, 10
        args.zoo = args.zoo[:2]
    space = QUICK_SPACE if args.quick else get_space(args.space)
    out = Path(args.out) / ("quick" if args.quick else space.name)
    out.mkdir(parents=True, exist_ok=True)
    estimator = ShortTraining(epochs=args.epochs, resolution=args.resolution, max_steps=args.max_steps or None)
    table = LatencyTable(out / "lut.sqlite")
    block_budget_s = 0.3 if args.quick else 0.5
    latency = LatencyModel(table, MeasurementSetting(runtime=args.runtime, threads=args.threads), block_budget_s=block_budget_s)
    phases: dict[str, float] = {}
    started = time.perf_counter()
    build_table(space, latency, args.table_networks, block_budget_s)
    phases["latency table"] = time.perf_counter() - started
    started = time.perf_counter()
    zoo = zoo_points(args.zoo, estimator, space.input_size, args.runtime, args.threads, out / "zoo.json") if args.zoo else []
    phases["zoo (train + measure)"] = time.perf_counter() - started

    rows, random_trained = [], []
    for label in args.strategies:
        strategy, _, accuracy = label.partition(":")
        started = time.perf_counter()
        result = run(
            space, strategy, latency_ms=args.latency_ms, table=latency, estimator=None if accuracy == "supernet" else estimator,
            accuracy=accuracy or "train", resolution=args.resolution,
            trials={"dnas": 6, "proxyless": 6, "repnas": 3}.get(strategy, 10_000), time_budget_s=args.budget_s, out=out / label.replace(":", "-"),
            zoo_file=out / "zoo.json", supernet_epochs=2 if args.quick else 4, steps_per_epoch=5 if args.quick else None,
            # NSGA-II needs generations within the wall clock: a population of a fraction of the networks it can train
            options={"population_size": 4 if args.quick else 10} if strategy == "evolution" else None,
        )
        best = result.best
        if label == "random":  # its short-trained networks are the proxies' ground truth
            random_trained = [c for c in result.candidates if c.accuracy is not None]
        errors = [abs(c.predicted_ms - c.measured_ms) / c.measured_ms for c in result.front if c.measured_ms]
        sum_errors = [(c.table_sum_ms if c.table_sum_ms is not None else c.predicted_ms) / c.measured_ms - 1 for c in result.front if c.measured_ms]
        dominated = []
        for point in zoo:
            found = [c for c in result.front if c.measured_ms is not None and c.measured_ms <= point["measured_ms"]]
            top = max(found, key=lambda c: c.accuracy) if found else None
            dominated.append((point["network"], None if top is None else top.accuracy - point["accuracy"]))
        rows.append(
            {
                "strategy": label,
                "hypervolume": result.hypervolume,
                "trained": sum(c.accuracy is not None for c in result.candidates),
                "wall_s": time.perf_counter() - started,
                "best": None if best is None else best.name,
                "best_accuracy": None if best is None else best.accuracy,
                "best_predicted_ms": None if best is None else best.predicted_ms,
                "best_measured_ms": None if best is None else best.measured_ms,
                "within_10pct": sum(e <= 0.10 for e in errors),
                "median_error": None if not errors else sorted(errors)[len(errors) // 2],
                "table_sum_error": None if not sum_errors else sorted(sum_errors)[len(sum_errors) // 2],
                "drift": (result.details.get("calibration") or {}).get("drift"),
                "calibration_scale": (result.details.get("calibration") or {}).get("scale"),
                "front": len(result.front),
                "vs_zoo": dominated,
                "block_kinds": result.details.get("block_kinds"),
            }
        )
        print(f"{label}: hypervolume {result.hypervolume:.4f}, {rows[-1]['trained']} trained", flush=True)

    correlations = None
    started = time.perf_counter()
    if args.proxies:
        # the random strategy's networks were short-trained with this very estimator: reuse them, top up to --proxies
        pairs = {c.name: (c.spec, c.accuracy) for c in random_trained}
        for spec in space.replace(num_classes=10).sample_many(4 * args.proxies, seed=1):
            if len(pairs) >= args.proxies:
                break
            if spec.name not in pairs:
                pairs[spec.name] = (spec, estimator(spec))
        specs = [spec for spec, _ in pairs.values()]
        scores = [proxy_scores(spec, resolution=args.resolution) for spec in specs]
        correlations = proxy_correlations(scores, [accuracy for _, accuracy in pairs.values()])
        atomic_write_text(out / "proxies.json", json.dumps({"networks": len(specs), "correlations": correlations}, indent=1) + "\n")
        args.proxies = len(specs)
    phases["proxies (top-up training + scoring)"] = time.perf_counter() - started
    table.close()
    write_markdown(args, space, rows, zoo, correlations, phases)
    return 0


def build_table(space, latency: LatencyModel, networks: int, block_budget_s: float) -> None:
    """Measure before any strategy runs: every candidate of the space's supernet (narrowest and widest widths) and
    the blocks of ``networks`` sampled networks, so no strategy's wall clock pays for blocks another one measured."""
    from edgevision.lut import build

    for widths, stem in (((min(s.widths) for s in space.stages), min(space.stem_widths)), ((max(s.widths) for s in space.stages), max(space.stem_widths))):
        latency.supernet_latency(space.supernet(widths=tuple(widths), stem_width=stem))
    if networks:
        setting = latency.setting
        build(space, setting.runtime, setting.threads, latency.table, count=networks, seed=0, time_budget_s=block_budget_s)
    print(f"latency table: {len(latency.table)} blocks", flush=True)


def write_markdown(args, space, rows, zoo, correlations, phases) -> None:
    machine = machine_info()
    random_hv = next((r["hypervolume"] for r in rows if r["strategy"] == "random"), None)
    lines = [
        "# Architecture search on this machine (`make bench-search`)",
        "",
        f"Machine: {machine.cpu_model}, {machine.physical_cores} physical cores; runtime {args.runtime}, {args.threads} threads.",
        f"Space `{space.name}` at {space.input_size} px (latency), accuracy: {args.epochs} epoch(s) of the Bag of Tricks recipe on the "
        f"embedded MNIST at {args.resolution} px (at most {args.max_steps or 'all'} steps per network). Budget {args.latency_ms:g} ms; "
        f"{args.budget_s:g} s wall clock per strategy, from the start of its search (calibration and supernet training included)."
        + (" **--quick run: a smoke test, not a result.**" if args.quick else ""),
        "",
        "Predicted latency: the calibrated table sum (per-call overhead subtracted, scaled on 3 networks measured end to end at the "
        "start of each search); 'table sum error' is the median error the plain sum would have had on the same front; 'drift' is the "
        "calibration networks re-measured after the search over their first measurement (how far the machine moved).",
        "",
        "| strategy | hypervolume | vs random | trained | front | best accuracy | best predicted ms | best measured ms | front within ±10% "
        "| median error | table sum error | scale | drift | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for r in rows:
        ratio = "" if not random_hv else f"{r['hypervolume'] / random_hv:.2f}x"
        lines.append(
            f"| {r['strategy']} | {r['hypervolume']:.4f} | {ratio} | {r['trained']} | {r['front']} | {fmt(r['best_accuracy'], '.4f')} | "
            f"{fmt(r['best_predicted_ms'], '.3f')} | {fmt(r['best_measured_ms'], '.3f')} | {r['within_10pct']}/{r['front']} | "
            f"{fmt(r['median_error'], '.1%')} | {fmt(r['table_sum_error'], '+.1%')} | {fmt(r['calibration_scale'], '.3f')} | {fmt(r['drift'], '.3f')} | {r['wall_s']:.0f} |"
        )
    lines += ["", "Outside the strategies' budgets: " + "; ".join(f"{name} {seconds:.0f} s" for name, seconds in phases.items()) + "."]
    if zoo:
        lines += ["", "## Found networks vs zoo networks at the same measured latency", "",
                  "Accuracy of the most accurate found network measuring at most the zoo network's latency, minus the zoo network's (same recipe, same resolution).", "",
                  "| zoo network | measured ms | accuracy | " + " | ".join(r["strategy"] for r in rows) + " |", "|---|---|---|" + "---|" * len(rows)]
        for index, point in enumerate(zoo):
            cells = []
            for r in rows:
                gap = r["vs_zoo"][index][1]
                cells.append("no found network that fast" if gap is None else f"{gap:+.4f}")
            lines.append(f"| {point['network']} | {point['measured_ms']:.3f} | {point['accuracy']:.4f} | " + " | ".join(cells) + " |")
    blocks = next((r["block_kinds"] for r in rows if r.get("block_kinds")), None)
    if blocks:
        lines += ["", "## Block benchmarking (random networks per block kind)", "", "| block kind | trained | hypervolume |", "|---|---|---|"]
        lines += [f"| {k} | {v['trained']} | {v['hypervolume']:.4f} |" for k, v in blocks.items()]
    if correlations:
        lines += ["", f"## Zero-cost proxies: rank correlation with short-trained accuracy ({args.proxies} networks)", "", "| proxy | Spearman | Kendall |", "|---|---|---|"]
        lines += [f"| {name} | {c['spearman']:.3f} | {c['kendall']:.3f} |" for name, c in correlations.items()]
    atomic_write_text(ROOT / "results" / ("search-quick.md" if args.quick else "search.md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
