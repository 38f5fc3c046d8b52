"""Where an INT8 graph leaves the integer domain: op types after ONNX Runtime's optimizer, their profiled time, and
the float nodes that sit between a DequantizeLinear and a QuantizeLinear.

ONNX Runtime runs a QDQ graph by fusing ``DQ -> op -> Q`` into an integer kernel (``QLinearConv``,
``QLinearAdd``, ``QLinearMul``, ``QLinearGlobalAveragePool``, ...) where it has one. Where it has none
(HardSwish, HardSigmoid, ReduceMean, Resize on this build), the op runs in fp32 between a
DequantizeLinear and a QuantizeLinear: a *float island* that costs the float op plus a conversion
each way. A graph can then be slower in INT8 than in fp32 (MobileNetV3's hard-swish and
squeeze-excite: the issue's table, 0.32-0.39x). :func:`op_report` counts and profiles op types of the
graph ORT actually runs (``optimized_model_filepath``; per-node kernel times from its profiler),
for the fp32 and the INT8 graph alike, so the comparison does not rest on end-to-end wall time.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

__all__ = ["op_report", "float_islands", "INTEGER_OPS"]

#: op types that are integer kernels (ORT contrib or ONNX QLinear*, and the int8 data movement ORT keeps quantized)
INTEGER_OPS = frozenset({
    "QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool",
    "QLinearAveragePool", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearConcat", "QLinearSoftmax", "QGemm", "QLinearReduceMean",
})
_CONVERSIONS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})


def _optimized(path: Path, scratch: Path, threads: int, runs: int, shape) -> tuple[object, dict[str, float]]:
    """(ORT's optimized ModelProto, op type -> profiled ms per run)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(scratch / f"{path.stem}.optimized.onnx")
    options.enable_profiling = True
    options.profile_file_prefix = str(scratch / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    dims = [d if isinstance(d, int) else 1 for d in first.shape]
    example = np.random.default_rng(0).standard_normal(shape or dims).astype(np.float32)
    for _ in range(runs):
        session.run(None, {first.name: example})
    events = json.loads(Path(session.end_profiling()).read_text())
    times: dict[str, float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            times[event["args"]["op_name"]] += event["dur"] / 1000.0 / runs
    return onnx.load(options.optimized_model_filepath), dict(times)


def float_islands(model) -> Counter:
    """op type -> number of float nodes of an (optimized) QDQ ``ModelProto`` that read a DequantizeLinear output
    (directly or through other float nodes) and feed a QuantizeLinear: computed in fp32 between two conversions."""
    producer = {output: node for node in model.graph.node for output in node.output}
    consumers: dict[str, list] = defaultdict(list)
    for node in model.graph.node:
        for name in node.input:
            consumers[name].append(node)

    def upstream(node):
        return [producer[name] for name in node.input if name in producer]

    def downstream(node):
        return [target for name in node.output for target in consumers.get(name, ())]

    def reaches(node, step, goal: str, seen) -> bool:
        """``goal`` (a DequantizeLinear upstream, a QuantizeLinear downstream) is reached through float nodes only."""
        for other in step(node):
            if id(other) in seen:
                continue
            if other.op_type == goal:
                return True
            if other.op_type not in INTEGER_OPS and other.op_type not in _CONVERSIONS and reaches(other, step, goal, seen | {id(other)}):
                return True
        return False

    islands: Counter = Counter()
    for node in model.graph.node:
        if node.op_type in INTEGER_OPS or node.op_type in _CONVERSIONS or node.op_type in ("Constant", "Shape", "Gather", "Unsqueeze", "Concat", "Slice", "Reshape"):
            continue  # shape arithmetic and data movement are no island of compute
        if reaches(node, upstream, "DequantizeLinear", frozenset({id(node)})) and reaches(node, downstream, "QuantizeLinear", frozenset({id(node)})):
            islands[node.op_type] += 1
    return islands


def op_report(onnx_path: str | os.PathLike, *, threads: int = 1, runs: int = 20, input_shape=None) -> dict:
    """Op types of the graph ONNX Runtime runs for ``onnx_path``: ``{"ops": {op: {"nodes", "ms"}}, "total_ms",
    "integer_ms", "conversion_ms", "float_ms", "float_islands": {op: count}}`` (ms: profiled kernel time per run;
    rank op types with it, do not read it as end-to-end latency)."""
    path = Path(onnx_path)
    with tempfile.TemporaryDirectory(prefix="edgevision-ops-") as scratch:
        model, times = _optimized(path, Path(scratch), threads, runs, input_shape)
    counts = Counter(node.op_type for node in model.graph.node)
    ops = {op: {"nodes": counts.get(op, 0), "ms": round(times.get(op, 0.0), 4)} for op in sorted(set(counts) | set(times), key=lambda o: -times.get(o, 0.0))}
    integer = sum(v["ms"] for op, v in ops.items() if op in INTEGER_OPS)
    conversion = sum(v["ms"] for op, v in ops.items() if op in _CONVERSIONS)
    total = sum(v["ms"] for v in ops.values())
    return {"ops": ops, "total_ms": round(total, 4), "integer_ms": round(integer, 4), "conversion_ms": round(conversion, 4),
            "float_ms": round(total - integer - conversion, 4), "float_islands": dict(float_islands(model))}
