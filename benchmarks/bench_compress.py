"""Compression benchmark -> benchmarks/results/compress.md.

Part 1, coverage (no timing; cheap): every zoo model pruned by 30% of its channels by edgevision
(``edgevision.prune.shrink`` on the channel groups the spec declares) and by Torch-Pruning 1.6.1
(DepGraph, ``MetaPruner`` with L1 magnitude, the classifier ignored): does the pruned model run
forward, export to ONNX, and match in ONNX Runtime (parity)? Also the fraction of parameters removed.

Part 2, the honest test (timing: run on an idle machine): for a few models, NetAdapt to 70% and
50% of the measured ONNX Runtime latency, against the same model with a uniform width multiplier
that measures the same latency; both fine-tuned with the same budget on the embedded MNIST.

    python benchmarks/bench_compress.py --part coverage            # 81 models, ~15-25 min on 2 idle cores
    python benchmarks/bench_compress.py --part latency             # 3 models x 2 targets, ~1-2 h on an idle machine
    python benchmarks/bench_compress.py --part allinone            # All-in-One vs K separately pruned, ~20-40 min idle
    python benchmarks/bench_compress.py --quick                    # every part on small models, minutes

Part 3, All-in-One (timing: run on an idle machine): one weight set trained for pruning ratios
0.25 / 0.5 / 0.75 (sandwich rule, in-place distillation) against K separately pruned models (the
same widths, L1-selected from the same dense model, each fine-tuned for the same epochs): top-1 per
ratio, and the measured ORT latency of each ratio at each emulated speed (threads x CPU quota),
with the ratio the policy picks per speed to stay under the dense model's full-speed latency.

Results are appended to benchmarks/results/compress.jsonl (resumable: finished rows are skipped) and
the table is rewritten each time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

import edgevision as ev  # noqa: E402
from edgevision.atomic import atomic_write_text  # noqa: E402
from edgevision.results import ResultStore  # noqa: E402
from edgevision.machine import machine_info  # noqa: E402
from edgevision.prune import groups_of, shrink, widths_for_ratio  # noqa: E402

RESULTS = ROOT / "results"
JSONL = RESULTS / "compress.jsonl"
LATENCY_MODELS = ("mobilenetv2_100", "ghostnet_100", "shufflenet_v2_x1_0")
# edgevision coverage rows older than this were measured before the inner-width protocol
# (Inception / Xception / VGG internals) and are measured again
COVERAGE_VERSION = 2


def _size(name: str) -> int:
    for size in (64, 96, 128, 160, 192, 224, 299):
        try:
            ev.resolve(ev.get_spec(name), input_size=size)
            return size
        except ValueError:
            continue
    return ev.get_spec(name).input_size


def _export_check(model, size: int) -> tuple[bool, bool, str]:
    """(exported, parity) of ``model`` at 1x3xSxS in ONNX Runtime, and the error text."""
    from edgevision.export import ExportMismatchError

    with tempfile.TemporaryDirectory() as folder:
        try:
            ev.export_onnx(model.eval(), Path(folder) / "m.onnx", (1, 3, size, size), deploy=False, simplify=False)
            return True, True, ""
        except ExportMismatchError as error:
            return True, False, str(error)[:160]
        except Exception as error:  # noqa: BLE001 - the benchmark records any failure
            return False, False, f"{type(error).__name__}: {str(error)[:160]}"


def _edgevision(name: str, size: int) -> dict:
    torch.manual_seed(0)
    model = ev.build(ev.resolve(ev.get_spec(name).with_classes(10), input_size=size)).eval()
    row = {"tool": "edgevision"}
    groups = groups_of(model)
    prunable = [g for g in groups if g.prunable]
    row["groups"], row["prunable_groups"] = len(groups), len(prunable)
    row["prunable_channels"] = sum(g.width for g in prunable) / max(1, sum(g.width for g in groups if g.name != "head.out"))
    pruned = shrink(model, widths_for_ratio(prunable, 0.3)) if prunable else model
    row["params_removed"] = 1 - ev.count_params(pruned) / ev.count_params(model)
    with torch.no_grad():
        pruned(torch.randn(1, 3, size, size))
    row["forward"] = True
    row["export"], row["parity"], row["error"] = _export_check(pruned, size)
    row["version"] = COVERAGE_VERSION
    return row


def _torch_pruning(name: str, size: int) -> dict:
    import torch_pruning as tp

    torch.manual_seed(0)
    model = ev.build(ev.resolve(ev.get_spec(name).with_classes(10), input_size=size)).eval()
    row = {"tool": "torch-pruning " + tp.__version__}
    example = torch.randn(1, 3, size, size)
    before = ev.count_params(model)
    classifier = [m for m in model.head.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1:]
    pruner = tp.pruner.MetaPruner(model, example, importance=tp.importance.MagnitudeImportance(p=1), pruning_ratio=0.3, ignored_layers=classifier)
    pruner.step()
    row["params_removed"] = 1 - ev.count_params(model) / before
    with torch.no_grad():
        model(example)
    row["forward"] = True
    row["export"], row["parity"], row["error"] = _export_check(model, size)
    return row


def coverage(models: list[str], done: set) -> None:
    for name in models:
        size = _size(name)
        for tool, run in (("edgevision", _edgevision), ("torch-pruning", _torch_pruning)):
            if (name, tool, "coverage") in done:
                continue
            started = time.perf_counter()
            try:
                row = run(name, size)
            except Exception as error:  # noqa: BLE001
                row = {"tool": tool, "forward": False, "export": False, "parity": False, "error": f"{type(error).__name__}: {str(error)[:160]}"}
                if "--trace" in sys.argv:
                    traceback.print_exc()
            row.update(part="coverage", model=name, key=tool, input_size=size, seconds=round(time.perf_counter() - started, 1))
            _append(row)
            print(f"{name:28s} {tool:14s} forward={row.get('forward')} export={row.get('export')} parity={row.get('parity')} "
                  f"removed={row.get('params_removed', 0):.0%} {row.get('error', '')[:80]}", flush=True)


def latency_part(models: list[str], targets: list[float], quick: bool, done: set) -> None:
    """NetAdapt vs a uniform width multiplier at equal measured ORT latency, same fine-tune budget."""
    from edgevision.datasets import BatchPreprocessor, load_data
    from edgevision.evaluation import predict, topk_accuracy
    from edgevision.latency import measure
    from edgevision.prune.netadapt import netadapt
    from edgevision.training import get_recipe, train

    resolution = 32
    data = load_data("default", image_size=resolution)
    preprocess = BatchPreprocessor(resolution, data.in_channels, data.mean, data.std)
    shape = (data.in_channels, resolution, resolution)
    recipe = get_recipe("tricks")
    epochs, budget = (1, 0.3) if quick else (5, 2.0)

    def fit(network, epochs_, steps=None):
        import dataclasses

        result = train(network, data, dataclasses.replace(recipe, epochs=epochs_, warmup_epochs=0), resolution=resolution, max_steps=steps,
                       evaluate_every_epoch=False, fresh_init=False)
        return result.model.cpu().to(memory_format=torch.contiguous_format)

    def accuracy(network) -> float:
        logits, labels = predict(network, data.val, lambda b: preprocess(b, train=False))
        return float(topk_accuracy(logits, labels, (1,))[1])

    def ms(network) -> float:
        return measure(network.eval(), shape, runtime="ort", deploy=True, time_budget_s=budget).median_ms

    for name in models:
        dense = fit(ev.create_model(name, num_classes=data.num_classes, in_chans=data.in_channels), epochs)
        dense_ms = ms(dense)
        for ratio in targets:
            key = f"{ratio:g}"
            if (name, key, "latency") in done:
                continue
            result = netadapt(dense, ms, accuracy, target_ratio=ratio, step_fraction=0.25, finetune=lambda n: fit(n, 1, 5 if quick else 30))
            pruned = fit(result.model, epochs)
            pruned_ms, pruned_acc = ms(pruned), accuracy(pruned)
            # the width multiplier that measures the same latency (bisection on the multiplier)
            low, high = 0.1, 1.0
            for _ in range(4 if quick else 7):
                mid = (low + high) / 2
                candidate = ev.build(ev.get_spec(name).with_classes(data.num_classes).with_input_channels(data.in_channels).with_width(mid))
                low, high = (mid, high) if ms(candidate) < pruned_ms else (low, mid)
            scaled_spec = ev.get_spec(name).with_classes(data.num_classes).with_input_channels(data.in_channels).with_width(low)
            scaled = fit(ev.build(scaled_spec), epochs + 1)  # the dense pre-training epochs, spent on the narrow net instead
            row = {"part": "latency", "model": name, "key": key, "dense_ms": dense_ms, "dense_acc": accuracy(dense),
                   "pruned_ms": pruned_ms, "pruned_acc": pruned_acc, "pruned_macs": ev.count_macs(pruned, resolution, data.in_channels),
                   "multiplier": round(low, 3), "scaled_ms": ms(scaled), "scaled_acc": accuracy(scaled),
                   "scaled_macs": ev.count_macs(scaled, resolution, data.in_channels), "dense_macs": ev.count_macs(dense, resolution, data.in_channels),
                   "steps": len(result.steps), "quick": quick}
            _append(row)
            print(json.dumps(row), flush=True)


ALLINONE_MODELS = ("mobilenetv2_100", "resnet18")
ALLINONE_RATIOS = (0.25, 0.5, 0.75)


def allinone_part(models: list[str], quick: bool, done: set) -> None:
    """All-in-One (one weight set, K ratios) vs K separately pruned models, same epochs; latency per emulated speed."""
    import dataclasses

    from edgevision.datasets import BatchPreprocessor, load_data
    from edgevision.evaluation import predict, topk_accuracy
    from edgevision.latency import measure
    from edgevision.prune.allinone import AllInOne, calibration_batches, train_allinone
    from edgevision.prune.dvfs import choose, cpu_quota, speeds
    from edgevision.training import get_recipe, train

    resolution = 32
    data = load_data("default", image_size=resolution)
    preprocess = BatchPreprocessor(resolution, data.in_channels, data.mean, data.std)
    shape = (data.in_channels, resolution, resolution)
    recipe = get_recipe("tricks")
    epochs, steps, budget = (1, 20, 0.3) if quick else (5, None, 2.0)
    cores = max(1, machine_info().physical_cores)
    speed_list = speeds([1] if quick else sorted({cores, max(1, cores // 2), 1}, reverse=True), [1.0, 0.5] if quick else [1.0, 0.5, 0.25])

    def fit(network, epochs_):
        result = train(network, data, dataclasses.replace(recipe, epochs=epochs_, warmup_epochs=0), resolution=resolution,
                       max_steps=None if steps is None else steps * epochs_, evaluate_every_epoch=False, fresh_init=False)
        return result.model.cpu().to(memory_format=torch.contiguous_format)

    def accuracy(network) -> float:
        logits, labels = predict(network.eval(), data.val, lambda b: preprocess(b, train=False))
        return float(topk_accuracy(logits, labels, (1,))[1])

    for name in models:
        if all((name, f"{r:g}", "allinone") in done for r in (0.0,) + ALLINONE_RATIOS):
            continue
        torch.manual_seed(0)
        dense = fit(ev.create_model(name, num_classes=data.num_classes, in_chans=data.in_channels), epochs).eval()
        started = time.perf_counter()
        allinone = AllInOne.from_model(dense, ALLINONE_RATIOS)
        train_allinone(allinone, data, epochs=epochs, lr=0.0125, resolution=resolution, steps_per_epoch=steps)
        allinone.recalibrate(calibration_batches(data, resolution))
        allinone.eval()
        allinone_seconds = time.perf_counter() - started
        prunable = list(allinone.groups)
        rows = []
        for ratio in allinone.ratios:
            subnet = allinone.subnet(ratio)
            started = time.perf_counter()
            # the separately pruned model of the same widths: L1 channels of the same dense model, its own fine-tune of the
            # same epochs (ratio 0: the dense model fine-tuned as long, so every row compares equal training after the dense run)
            widths = {g: w for g, w in allinone.widths(ratio).items() if g in prunable and w < allinone.groups[g].width}
            separate = fit(shrink(dense, widths).train(), epochs)
            assert separate.spec == subnet.spec  # same widths, same network: the same latency
            median_ms = {}
            for speed in speed_list:
                with cpu_quota(speed.quota):
                    median_ms[speed.name] = measure(subnet, shape, runtime="ort", threads=speed.threads, deploy=True,
                                                    time_budget_s=budget, watch_machine=False).median_ms
            rows.append({"part": "allinone", "model": name, "key": f"{ratio:g}", "ratio": ratio, "params": ev.count_params(subnet),
                         "macs": ev.count_macs(subnet, resolution, data.in_channels), "allinone_acc": accuracy(subnet),
                         "separate_acc": accuracy(separate), "separate_seconds": round(time.perf_counter() - started, 1),
                         "allinone_seconds": round(allinone_seconds, 1), "median_ms": median_ms, "epochs": epochs,
                         "speeds": [s.name for s in speed_list], "quick": quick})
            print(json.dumps(rows[-1]), flush=True)
        target = rows[0]["median_ms"][speed_list[0].name]
        for speed in speed_list:
            choice = choose({r["ratio"]: r["median_ms"][speed.name] for r in rows}, target, speed.name)
            for row in rows:
                row.setdefault("chosen_at", [])
                if row["ratio"] == choice.ratio:
                    row["chosen_at"].append(speed.name + ("" if choice.meets_target else " (misses target)"))
        for row in rows:
            row["target_ms"] = target
            _append(row)


def _append(row: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    with JSONL.open("a") as handle:
        handle.write(json.dumps(row) + "\n")


def _rows() -> list[dict]:
    latest = {}
    for row in ResultStore(JSONL, schema=None).rows:  # a line torn by a kill is moved aside
        latest[(row["model"], row["key"], row["part"])] = row
    return list(latest.values())


def report() -> None:
    rows = _rows()
    machine = machine_info()
    lines = ["# Compression benchmark", "", f"Machine: {machine.cpu_model}, {machine.physical_cores} cores; torch {torch.__version__}.", ""]
    coverage_rows = [r for r in rows if r["part"] == "coverage"]
    if coverage_rows:
        models = sorted({r["model"] for r in coverage_rows})
        by = {(r["model"], r["key"]): r for r in coverage_rows}

        def cell(row):
            if row is None:
                return "-"
            marks = "".join("✓" if row.get(k) else "✗" for k in ("forward", "export", "parity"))
            return f"{marks} {row.get('params_removed', 0):.0%}"

        ok = {tool: sum(1 for m in models if (r := by.get((m, tool))) and r.get("forward") and r.get("export") and r.get("parity") and r.get("params_removed", 0) > 0.05)
              for tool in ("edgevision", "torch-pruning")}
        zoo = len(ev.list_models())
        partial = "" if len(models) >= zoo else f" ({len(models)} of the {zoo} zoo models so far; `make bench-compress` resumes the rest)"
        lines += [f"## Coverage{partial}: 30% of channels, forward / export / ONNX Runtime parity, parameters removed", "",
                  f"Pruned (params removed > 5%) with forward, export and parity all passing: edgevision {ok['edgevision']}/{len(models)}, "
                  f"Torch-Pruning {ok['torch-pruning']}/{len(models)}. edgevision prunes only channel groups whose maps pass its per-block "
                  "permutation check, so a model can come out less pruned but never wrong; `prunable` is the share of channels in such groups.", "",
                  "| model | edgevision | prunable | Torch-Pruning 1.6.1 | note |", "|---|---|---|---|---|"]
        for model in models:
            mine, theirs = by.get((model, "edgevision")), by.get((model, "torch-pruning"))
            note = "; ".join(e for e in ((mine or {}).get("error", ""), (theirs or {}).get("error", "")) if e)[:120]
            lines.append(f"| {model} | {cell(mine)} | {(mine or {}).get('prunable_channels', 0):.0%} | {cell(theirs)} | {note} |")
        lines.append("")
    latency_rows = [r for r in rows if r["part"] == "latency"]
    if latency_rows:
        lines += ["## NetAdapt vs uniform width multiplier at equal measured ORT latency (embedded MNIST, 32x32)", "",
                  "| model | target | dense ms / top-1 | pruned ms / top-1 / MMACs | multiplier | scaled ms / top-1 / MMACs | pruned better? |",
                  "|---|---|---|---|---|---|---|"]
        for r in sorted(latency_rows, key=lambda r: (r["model"], r["key"])):
            lines.append(f"| {r['model']} | {float(r['key']):.0%} | {r['dense_ms']:.3f} / {r['dense_acc']:.2%} | {r['pruned_ms']:.3f} / {r['pruned_acc']:.2%} / "
                         f"{r['pruned_macs'] / 1e6:.1f} | {r['multiplier']} | {r['scaled_ms']:.3f} / {r['scaled_acc']:.2%} / {r['scaled_macs'] / 1e6:.1f} | "
                         f"{'yes' if r['pruned_acc'] > r['scaled_acc'] else 'no'} |")
        if any(r.get("quick") for r in latency_rows):
            lines += ["", "Rows marked quick come from `--quick` (1 epoch, short measurements): a smoke test, not a result."]
    allinone_rows = [r for r in rows if r["part"] == "allinone"]
    if allinone_rows:
        lines += ["", "## All-in-One: one weight set for pruning ratios 0 / 0.25 / 0.5 / 0.75 vs K separately pruned models (embedded MNIST, 32x32)", "",
                  "Each ratio of the one weight set is a sliced dense subnetwork; the separately pruned model has the same widths "
                  "(L1 channels of the same dense model) and its own fine-tune of the same epochs, so both measure the same latency. "
                  "ORT median ms at each emulated speed (threads x CPU quota); the policy picks, per speed, the widest ratio whose "
                  "latency stays under the dense model's latency at the fastest speed.", ""]
        for model in sorted({r["model"] for r in allinone_rows}):
            members = sorted((r for r in allinone_rows if r["model"] == model), key=lambda r: r["ratio"])
            names = members[0]["speeds"]
            lines += [f"### {model} (target {members[0]['target_ms']:.3f} ms; All-in-One trained in {members[0]['allinone_seconds']:.0f} s, "
                      f"separately pruned {sum(r['separate_seconds'] for r in members[1:]):.0f} s in total)", "",
                      "| ratio | params | MMACs | All-in-One top-1 | separately pruned top-1 | " + " | ".join(f"ms @ {n}" for n in names) + " | policy picks it at |",
                      "|---|---|---|---|---|" + "---|" * len(names) + "---|"]
            for r in members:
                lines.append(f"| {r['ratio']:g} | {r['params']:,} | {r['macs'] / 1e6:.1f} | {r['allinone_acc']:.2%} | {r['separate_acc']:.2%} | "
                             + " | ".join(f"{r['median_ms'][n]:.3f}" for n in names) + f" | {', '.join(r.get('chosen_at', [])) or '-'} |")
            lines.append("")
        if any(r.get("quick") for r in allinone_rows):
            lines += ["Rows marked quick come from `--quick` (20 steps per epoch, short measurements): a smoke test, not a result.", ""]
    atomic_write_text(RESULTS / "compress.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("coverage", "latency", "allinone", "all"), default="all")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--quick", action="store_true", help="3 small models, short runs")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args()
    # quick is a smoke test, often on a busy machine, where two spinning OpenMP threads run many times slower than one
    torch.set_num_threads(1 if args.quick else max(1, machine_info().physical_cores))
    done = {
        (r["model"], r["key"], r["part"]) for r in _rows()
        if (not r.get("quick") or args.quick) and not (r["key"] == "edgevision" and r["part"] == "coverage" and r.get("version") != COVERAGE_VERSION)
    }
    if args.part in ("coverage", "all"):
        models = args.models or (["mobilenetv2_050", "shufflenet_v2_x0_5", "resnet18"] if args.quick else ev.list_models())
        coverage(models, done)
    if args.part in ("latency", "all"):
        models = args.models or (["mobilenetv2_050"] if args.quick else list(LATENCY_MODELS))
        latency_part(models, [0.7] if args.quick else [0.7, 0.5], args.quick, done)
    if args.part in ("allinone", "all"):
        allinone_part(args.models or (["mobilenetv2_050"] if args.quick else list(ALLINONE_MODELS)), args.quick, done)
    report()


if __name__ == "__main__":
    main()
