"""Deploy of dense task models under their task metric (issue 14 with 17/18): per task, train a small model
with ``edgevision train --task``, then ``edgevision deploy`` it (ORT fp32 / INT8 PTQ / per-unit mixed precision /
QAT (100 distillation steps; full run only), OpenVINO fp32 / NNCF)
and tabulate fp32 vs INT8 latency, the task metric of each form, the drop against the budget, and the
shipped form -> benchmarks/results/deploy_tasks.md (+ deploy_tasks.json).

    make bench-deploy-tasks                          # full: ~80-100 min on an idle 2-core machine (estimate)
    python benchmarks/bench_deploy_tasks.py --quick  # smoke run: 1 epoch, tiny sizes, ORT only (~40 min on a machine at load 14, ~10-15 min idle: estimate)

Each task is one subprocess pair (train, deploy); a finished task's deploy.json is reused on rerun
(resumable after kill). The trained models see a few epochs of the embedded/procedural data, so the
metrics show the INT8 drop against a trained float model, not published accuracy.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: task -> (model, train options, deploy budget options); full / quick sizes
TASKS = {
    "segmentation": ("lraspp_mobilenet_v3_small", ["--data", "default", "--resolution", "160"], ["--max-drop", "1"]),
    "detection": ("ssdlite320_mobilenetv2", ["--data", "scenes", "--resolution", "320"], ["--max-drop", "1"]),
    "super-resolution": ("carn_m", ["--data", "default", "--steps-per-epoch", "100"], ["--max-drop-db", "0.3", "--input-size", "64"]),
    "depth": ("fcrn_mobilenetv2_100", ["--data", "procedural"], ["--max-abs-rel-increase", "0.01"]),
}
QUICK = {
    "segmentation": ["--resolution", "64", "--seg-scenes", "16"],
    "detection": ["--resolution", "128"],
    "super-resolution": ["--steps-per-epoch", "5", "--patch-size", "12"],
    "depth": ["--resolution", "48", "--depth-scenes", "8"],
}


def run(argv: list[str], log: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    with open(log, "a") as handle:
        handle.write("$ " + " ".join(argv) + "\n")
        handle.flush()
        subprocess.run([sys.executable, "-m", "edgevision.cli", *argv], check=True, stdout=handle, stderr=subprocess.STDOUT, env=env)


def bench_task(task: str, work: Path, quick: bool, epochs: int) -> dict:
    model, train_options, budget = TASKS[task]
    out = work / task
    deployed = out / "deployed" / "deploy.json"
    if deployed.is_file():
        return json.loads(deployed.read_text())
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "train" / "model.safetensors"
    if not checkpoint.is_file():
        pairs = dict(zip(train_options[::2], train_options[1::2]))  # every option is "--flag value"; --quick overrides
        pairs.update(dict(zip(QUICK[task][::2], QUICK[task][1::2])) if quick else {})
        options = [item for pair in pairs.items() for item in pair]
        run(["train", "--task", task, model, "--epochs", str(epochs), "--out", str(out / "train"), *options], out / "log.txt")
    sizes = ["--calibration", "8", "--verification", "8", "--runtimes", "ort", "--budget", "1"] if quick else \
        ["--calibration", "32", "--verification", "64", "--runtimes", "ort,openvino", "--budget", "10", "--qat", "100"]
    run(["deploy", str(checkpoint), *budget, *sizes, "--out", str(out / "deployed")], out / "log.txt")
    return json.loads(deployed.read_text())


def table(results: dict[str, dict]) -> str:
    lines = ["| task | model | input | metric | budget | candidate | verified | metric value | change | median ms | shipped |",
             "|---|---|---|---|---|---|---|---:|---:|---:|---|"]
    for task, data in results.items():
        for row in data["candidates"]:
            value = "-" if row.get("metric") is None else f"{row['metric']:.4g}"
            change = "-" if row.get("metric_change") is None else f"{row['metric_change']:.3g}"
            ms = "-" if row.get("median_ms") is None else f"{row['median_ms']:.3f}"
            lines.append(f"| {task} | {data['model']} | {'x'.join(map(str, data['input_shape'][2:]))} | {data['metric_label']} | "
                         f"{data['budget']} {data['budget_unit']} | {row['label']} | {row['verified']} | {value} | {change} | {ms} | "
                         f"{'**yes**' if row['shipped'] else ('no: ' + row['rejected'] if row.get('rejected') else '')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch, tiny sizes, ORT only: an end-to-end smoke test, not a result")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ", ".join(TASKS))
    parser.add_argument("--epochs", type=int, default=None, help="training epochs per task (default 6; --quick 1)")
    parser.add_argument("--work", default=str(ROOT / "edgevision-bench" / "deploy_tasks"), help="run folders (resumable; git-ignored)")
    args = parser.parse_args()
    from edgevision.atomic import atomic_write_text
    from edgevision.machine import machine_info

    work = Path(args.work + ("-quick" if args.quick else ""))
    epochs = args.epochs or (1 if args.quick else 6)
    results = {}
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        print(f"{task} ...", flush=True)
        results[task] = bench_task(task, work, args.quick, epochs)
    machine = machine_info().to_dict()
    shipped = {task: f"{d['runtime']}/{d['precision']} {d['speedup_vs_fp32_ort']:.2f}x fp32 ORT" for task, d in results.items()}
    text = "\n".join([
        "# Deploy of dense task models under their task metric" + (" (--quick: smoke run, not a result)" if args.quick else ""),
        "",
        f"Machine: {machine['cpu_model']} ({machine['physical_cores']} cores), fingerprint `{machine['fingerprint']}`. "
        f"Command: `python benchmarks/bench_deploy_tasks.py{' --quick' if args.quick else ''}`; {epochs} training epoch(s) per task.",
        "",
        "Shipped: " + "; ".join(f"{task}: {form}" for task, form in shipped.items()) + ".",
        "",
        table(results),
        "",
    ])
    results_dir = ROOT / "benchmarks" / "results"
    name = "deploy_tasks_quick" if args.quick else "deploy_tasks"
    atomic_write_text(results_dir / f"{name}.md", text)
    atomic_write_text(results_dir / f"{name}.json", json.dumps(results, indent=1, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
