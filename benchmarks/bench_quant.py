"""Benchmark: INT8 deployment on this machine (issue 14) -> benchmarks/results/quant.md.

Part 1, speed (random weights): every zoo model under 1 GMAC at 224x224, five forms measured
interleaved (round-robin slices of the measure protocol): fp32 ONNX Runtime, INT8 ORT with the
machine's scheme (static QDQ, per-channel, 32 embedded calibration images), INT8 ORT mixed
precision (blocks that profile slower in INT8 or lose SQNR kept in fp32), OpenVINO fp32 and
OpenVINO INT8 (NNCF). Speed-up over fp32 ORT and the deployed (fastest) form per model; the
median speed-up across models and the slowest model.

Part 2, accuracy: four models trained on the embedded MNIST (32x32, grey, ``basic`` recipe) and
then deployed with ``edgevision.deploy`` (``runtimes=("ort",)``): float vs PTQ vs mixed vs QAT
top-1 on the 1,000 held-out images (never used for calibration or the mixed-precision search),
with their latency at 32x32.

Resumable: rows go to ``quant_speed.jsonl`` / ``quant_accuracy.jsonl`` (skipped on the next start
for the same machine fingerprint and options); trained checkpoints are kept in the work folder.

    python benchmarks/bench_quant.py                 # full: ~60 speed rows + 4 trainings; see the README for the duration
    python benchmarks/bench_quant.py --part speed    # or --part accuracy
    python benchmarks/bench_quant.py --quick         # 2 models at 64 px, 1 tiny training: a smoke test into a temporary folder
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ACCURACY_MODELS = ("mobilenetv2_050", "ghostnet_050", "shufflenet_v2_x0_5", "mobileone_s0")
QUICK_SPEED_MODELS = ("mobilenetv2_050", "mobilenetv3_small_075")


def _rows(path: Path) -> list[dict]:
    """The rows of a resumable JSONL file; a line torn by a kill is moved aside (that row runs again)."""
    from edgevision.results import ResultStore

    return ResultStore(path, schema=None).rows


def _append(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, default=str) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def speed(args, out: Path, fingerprint: str) -> list[dict]:
    from edgevision.bench import efficient_models
    from edgevision.deploy.compare import FORMS, compare_forms
    from edgevision.deploy.openvino import openvino_available

    forms = FORMS if openvino_available() else tuple(f for f in FORMS if not f.startswith("openvino"))
    models = QUICK_SPEED_MODELS if args.quick else efficient_models()
    store = out / "quant_speed.jsonl"
    key = {"fingerprint": fingerprint, "resolution": args.resolution, "threads": args.threads, "budget_s": args.budget, "quick": args.quick}
    rows = [row for row in _rows(store) if all(row.get(k) == v for k, v in key.items())]
    done = {row["model"] for row in rows}
    for index, name in enumerate(models, 1):
        if name in done:
            continue
        print(f"[speed {index}/{len(models)}] {name} ...", end=" ", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            row = compare_forms(name, resolution=args.resolution, forms=forms, threads=args.threads, budget_s=args.budget, rounds=3)
        except Exception as error:  # listed in the report; the others go on
            row = {"model": name, "error": str(error).splitlines()[0] if str(error) else type(error).__name__}
        row.update(key, wall_s=time.perf_counter() - started)
        _append(store, row)
        rows.append(row)
        print(row.get("error") or f"deployed {row['deployed']} {row.get('deployed_speedup', 0):.2f}x", file=sys.stderr)
    return rows


def accuracy(args, out: Path, work: Path, fingerprint: str) -> list[dict]:
    import torch

    import edgevision as ev
    from edgevision.datasets import load_data
    from edgevision.deploy import deploy
    from edgevision.training import get_recipe, seed_everything, train

    models = ACCURACY_MODELS[:1] if args.quick else tuple(args.accuracy_models)
    store = out / "quant_accuracy.jsonl"
    key = {"fingerprint": fingerprint, "epochs": args.epochs, "qat_steps": args.qat_steps, "max_drop": args.max_drop, "quick": args.quick}
    rows = [row for row in _rows(store) if all(row.get(k) == v for k, v in key.items())]
    done = {row["model"] for row in rows}
    data = load_data("default")
    for name in models:
        if name in done:
            continue
        checkpoint = work / f"{name}.e{args.epochs}{'.quick' if args.quick else ''}.safetensors"
        if not checkpoint.exists():
            print(f"[accuracy] training {name} ({args.epochs} epochs at 32 px) ...", file=sys.stderr)
            seed_everything(0)
            model = ev.create_model(name, num_classes=data.num_classes, in_chans=data.in_channels)
            result = train(model, data, get_recipe("basic").replace(epochs=args.epochs), resolution=32, seed=0, device="cpu",
                           max_steps=5 if args.quick else None)
            ev.save(result.model, checkpoint, {"dataset": "default", "preprocess": {"resolution": 32, "mean": list(data.mean), "std": list(data.std)}})
        print(f"[accuracy] deploying {name} ...", file=sys.stderr)
        torch.set_num_threads(args.threads)
        deployed = deploy(name, work / f"{name}.deploy", checkpoint=str(checkpoint), runtimes=("ort",), max_drop=args.max_drop,
                          qat_steps=args.qat_steps, threads=args.threads, budget_s=args.accuracy_budget,
                          calibration=16 if args.quick else 64, search=32 if args.quick else 256, verification=64 if args.quick else 1000)
        by_variant = {row["variant"]: row for row in deployed.data["candidates"]}
        row = {"model": name, **key, "accuracy_float": deployed.data["accuracy_float"], "shipped": f"{deployed.shipped.label}",
               "speedup": deployed.data["speedup_vs_fp32_ort"],
               "forms": {v: {k: r[k] for k in ("accuracy", "median_ms", "verified", "check", "sqnr_db")} for v, r in by_variant.items()}}
        _append(store, row)
        rows.append(row)
    return rows


def write_markdown(speed_rows, accuracy_rows, path: Path, args) -> None:
    from edgevision.atomic import atomic_write_text
    from edgevision.deploy import cpu_features, machine_scheme
    from edgevision.deploy.compare import FORMS, int8_markdown
    from edgevision.machine import machine_info

    machine = machine_info()
    scheme = machine_scheme()
    lines = [
        "# INT8 deployment on this machine (issue 14)",
        "",
        f"Machine: {machine.short}; {machine.logical_cpus} logical CPUs; {machine.system}; fingerprint `{machine.fingerprint}`.  ",
        f"Instruction sets: **{cpu_features().summary}** -> ORT INT8 scheme `{scheme.name}` ({scheme.activation_type} activations, "
        f"{scheme.weight_type} weights, reduce_range={scheme.reduce_range}; {scheme.reason}).  ",
        f"{args.threads} threads, batch 1; forms of one model measured interleaved (3 rounds, {args.budget:g} s per form in all). "
        f"Generated by `make bench-quant` (benchmarks/bench_quant.py{' --quick' if args.quick else ''}).",
    ]
    if speed_rows:
        good = [row for row in speed_rows if "error" not in row]
        speedups = [row["deployed_speedup"] for row in good if row.get("deployed_speedup")]
        int8 = [row["ort/int8"]["speedup_vs_fp32_ort"] for row in good if row.get("ort/int8", {}).get("speedup_vs_fp32_ort")]
        lines += [
            "",
            f"## Speed: zoo models under 1 GMAC, {args.resolution}x{args.resolution}, random weights",
            "",
            f"Median speed-up of the deployed form over fp32 ORT: **{statistics.median(speedups):.2f}x** over {len(speedups)} models; "
            f"INT8 ORT (all nodes) alone: {statistics.median(int8):.2f}x; slowest deployed form: "
            f"{min(speedups):.2f}x (the deployed form is fp32 unless an INT8 form measured faster, so never below ~1x).  "
            if speedups else "No model finished.  ",
            "Cells: median ms (speed-up over fp32 ORT). Accuracy is not meaningful with random weights: see part 2.",
            "",
            *int8_markdown(good, [form for form in FORMS if any(form in row for row in good)]),
        ]
        lines += [f"- failed: {row['model']}: {row['error']}" for row in speed_rows if "error" in row]
    if not speed_rows:
        lines += ["", "## Speed", "", "Not run in this file's run (timings need an idle machine): `python benchmarks/bench_quant.py --part speed`."]
    if accuracy_rows:
        lines += [
            "",
            "## Accuracy: trained on the embedded MNIST (32x32, grey), top-1 on 1,000 held-out images",
            "",
            f"`basic` recipe, {args.epochs} epochs; then `edgevision.deploy(..., runtimes=('ort',), max_drop={args.max_drop})`: "
            f"PTQ = static QDQ, minmax, 64 calibration images; mixed = per-block search on 256 other training images; "
            f"QAT = {args.qat_steps} steps of fake-quant fine-tuning distilled from the float model (extra training: on an "
            f"under-trained float model it can end above float). Latency at 32x32 (ORT, batch 1), measured interleaved on "
            f"this machine as it was (shared and loaded): compare forms within a row, not across runs.",
            "",
            "| model | float top-1 | PTQ top-1 | mixed top-1 | QAT top-1 | fp32 ms | PTQ ms | mixed ms | QAT ms | shipped | speed-up |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        ]
        for row in accuracy_rows:
            forms = row["forms"]

            def cell(variant, field, fmt):
                value = forms.get(variant, {}).get(field)
                return "-" if value is None else fmt.format(value)

            lines.append(
                f"| {row['model']} | {row['accuracy_float']:.2f} | {cell('ptq', 'accuracy', '{:.2f}')} | {cell('mixed', 'accuracy', '{:.2f}')} | "
                f"{cell('qat', 'accuracy', '{:.2f}')} | {cell('fp32', 'median_ms', '{:.3f}')} | {cell('ptq', 'median_ms', '{:.3f}')} | "
                f"{cell('mixed', 'median_ms', '{:.3f}')} | {cell('qat', 'median_ms', '{:.3f}')} | {row['shipped']} | {row['speedup']:.2f}x |"
            )
    atomic_write_text(path, "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("speed", "accuracy", "both"), default="both")
    parser.add_argument("--resolution", type=int, default=224, help="speed part input size (default 224)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    parser.add_argument("--budget", type=float, default=12.0, help="speed part: seconds per form over all rounds (default 12)")
    parser.add_argument("--epochs", type=int, default=6, help="accuracy part: training epochs (default 6, as bench-training)")
    parser.add_argument("--qat-steps", type=int, default=300, help="accuracy part: QAT steps (default 300)")
    parser.add_argument("--max-drop", type=float, default=0.5, help="accuracy part: allowed top-1 drop in points (default 0.5)")
    parser.add_argument("--accuracy-models", nargs="+", default=list(ACCURACY_MODELS), metavar="NAME", help="accuracy part: models to train")
    parser.add_argument("--accuracy-budget", type=float, default=4.0, help="accuracy part: measurement seconds per form (default 4)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 2 models at 64 px, 1 model trained 5 steps; temporary folder")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results; --quick: a temporary folder)")
    parser.add_argument("--work", default=None, help="checkpoints and deploy folders (default: <out>/quant_work, not committed)")
    args = parser.parse_args(argv)
    if args.quick:
        args.resolution, args.budget, args.epochs, args.qat_steps, args.accuracy_budget = 64, 1.5, 1, 5, 1.0

    import torch

    from edgevision.machine import machine_info

    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else (Path(tempfile.mkdtemp(prefix="bench_quant_")) if args.quick else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out / "quant_work"
    work.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("*\n")  # checkpoints and deploy folders: regenerated, never committed
    fingerprint = machine_info().fingerprint
    speed_rows = speed(args, out, fingerprint) if args.part in ("speed", "both") else []
    accuracy_rows = accuracy(args, out, work, fingerprint) if args.part in ("accuracy", "both") else []
    if not speed_rows:
        speed_rows = [r for r in _rows(out / "quant_speed.jsonl") if r.get("fingerprint") == fingerprint and r.get("quick") == args.quick]
    if not accuracy_rows:
        accuracy_rows = [r for r in _rows(out / "quant_accuracy.jsonl") if r.get("fingerprint") == fingerprint and r.get("quick") == args.quick]
    write_markdown(speed_rows, accuracy_rows, out / "quant.md", args)
    print(f"wrote {out / 'quant.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
