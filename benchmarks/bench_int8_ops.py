"""Which ops an INT8 graph runs in float, and what they cost: ORT-optimized op counts and profiled kernel time per op
type of the fp32 graph, the default INT8 graph and INT8 variants that leave the float-only ops unquantized
(issue 14: LR-ASPP INT8 measured 34 ms vs 2.1 ms fp32 in a loaded quick run) -> benchmarks/results/int8_ops.md.

    python benchmarks/bench_int8_ops.py                               # lraspp_mobilenet_v3_small at 160 px, random weights
    python benchmarks/bench_int8_ops.py --onnx F.onnx --calibration-images 8
    python benchmarks/bench_int8_ops.py --quick                       # 64 px, 5 profiled runs x 2 repeats

Times are ORT profiler kernel sums (minimum over interleaved repeats), an op-type ranking, not end-to-end latency;
on a loaded machine only their ratios mean anything, and the report says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: op types ORT 1.31 runs in fp32 in a QDQ graph of MobileNetV3-style nets (no integer kernel): variants keep them unquantized
FLOAT_ONLY = {"HardSwish", "HardSigmoid", "ReduceMean", "Resize"}
VARIANTS = {
    "int8 (all ops)": set(),
    "int8, float-only ops unquantized": FLOAT_ONLY,
    "int8, SE gate + float-only ops unquantized": FLOAT_ONLY | {"Mul", "Sigmoid", "GlobalAveragePool"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lraspp_mobilenet_v3_small")
    parser.add_argument("--onnx", default=None, help="an fp32 ONNX graph instead of --model (e.g. a deploy run's .work/model.fp32.onnx)")
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--calibration-images", type=int, default=16)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "int8_ops.md"))
    args = parser.parse_args()
    if args.quick:
        args.size, args.runs, args.repeats = 64, 5, 2
        args.out = args.out.replace("int8_ops.md", "int8_ops_quick.md")
    import tempfile

    import onnx
    import torch

    import edgevision as ev
    from edgevision.atomic import atomic_write_text
    from edgevision.deploy import quantize
    from edgevision.deploy.ops import op_report
    from edgevision.deploy.quantize import _pre_process, onnx_input_shape
    from edgevision.export import export_onnx
    from edgevision.machine import machine_info

    scratch = Path(tempfile.mkdtemp(prefix="edgevision-int8ops-"))
    if args.onnx:
        float_onnx, source = Path(args.onnx), args.onnx
    else:
        torch.manual_seed(0)
        float_onnx, source = scratch / "model.fp32.onnx", f"{args.model} at {args.size} px, random weights"
        export_onnx(ev.create_model(args.model).eval(), float_onnx, (3, args.size, args.size), deploy=True)
    shape = onnx_input_shape(float_onnx)
    images = torch.randn(args.calibration_images, *shape, generator=torch.Generator().manual_seed(0))
    prepared = _pre_process(float_onnx, scratch / "prepared.onnx")
    nodes = onnx.load(str(prepared)).graph.node
    graphs = {"fp32": prepared}
    for name, types in VARIANTS.items():
        path = scratch / f"{len(graphs)}.int8.onnx"
        quantize(prepared, images, path, keep_float=[n.name for n in nodes if n.op_type in types])
        graphs[name] = path
    reports: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved: a load change hits every graph alike; keep each graph's fastest profile
        for name, path in graphs.items():
            report = op_report(path, runs=args.runs)
            if name not in reports or report["total_ms"] < reports[name]["total_ms"]:
                reports[name] = report
    machine = machine_info().to_dict()
    base = reports["fp32"]["total_ms"]
    lines = [
        "# INT8 op types: what ONNX Runtime runs in float between QDQ pairs" + (" (--quick)" if args.quick else ""), "",
        f"Graph: {source}, input {'x'.join(map(str, shape))}; ORT-optimized graphs, 1 thread; kernel time = ORT profiler sum per run, "
        f"the fastest of {args.repeats} interleaved profiles of {args.runs} runs. Machine: {machine['cpu_model']} "
        f"({machine['physical_cores']} cores), fingerprint `{machine['fingerprint']}`. "
        "**If the machine was loaded, the ms columns and ratios are indications only; the op counts are exact.**", "",
        "| graph | kernel ms | vs fp32 | integer-kernel ms | Q/DQ ms | float ms | QuantizeLinear | DequantizeLinear | float islands (op: nodes) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, report in reports.items():
        ops = report["ops"]
        islands = ", ".join(f"{op}: {n}" for op, n in sorted(report["float_islands"].items())) or "-"
        lines.append(f"| {name} | {report['total_ms']:.3f} | {report['total_ms'] / base:.2f}x | {report['integer_ms']:.3f} | {report['conversion_ms']:.3f} | "
                     f"{report['float_ms']:.3f} | {ops.get('QuantizeLinear', {}).get('nodes', 0)} | {ops.get('DequantizeLinear', {}).get('nodes', 0)} | {islands} |")
    lines += ["", "Per op type (nodes / ms):", "", "| op | " + " | ".join(reports) + " |", "|---|" + "---:|" * len(reports)]
    every = sorted({op for r in reports.values() for op in r["ops"]}, key=lambda op: -max(r["ops"].get(op, {}).get("ms", 0) for r in reports.values()))
    for op in every:
        cells = [f"{r['ops'][op]['nodes']} / {r['ops'][op]['ms']:.3f}" if op in r["ops"] else "-" for r in reports.values()]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    atomic_write_text(Path(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
