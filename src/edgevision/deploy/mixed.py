"""Per-block mixed precision: which blocks stay in fp32 so the INT8 graph is accurate *and* faster.

Quantizing every node is not always a win. On CPUs ONNX Runtime has no integer kernels for some
operations (MobileNetV3's hard-swish, the squeeze-excite gate's multiply), so their QDQ pairs only
add quantize/dequantize work, and some layers lose more accuracy than the others together
(depthwise convolutions with a few outlier channels; Nagel et al. 2021, "A White Paper on Neural
Network Quantization", Sec. 3.2; Krishnamoorthi 2018, Sec. 3). The search here follows the
standard sensitivity analysis: per unit, measure the accuracy cost of quantizing it alone and its
latency gain; keep in float what does not pay in time; then return units to float, worst first,
until the accuracy drop is within ``max_drop``.

Units are blocks (our module paths, ``stages.2.0``; ``stem``; ``head``): the exporter names every
node after its module scope, so a block's nodes are found by name, and per-node search would
cost a quantization per node for no difference we could measure. Per unit:

* **accuracy cost**: when only that unit is quantized, the SQNR of the unit's output tensor against
  fp32 (the activation matching of ONNX Runtime's ``qdq_loss_debug``, on the first 32 search
  images) and the top-1 drop on the search split when labels are meaningful (a trained checkpoint);
* **latency gain**: fp32 minus INT8 time of the unit's nodes from ONNX Runtime's profiler
  (:func:`edgevision.latency.layer_times`), both graphs profiled the same way. Profiles only rank
  units; the shipped form is chosen by end-to-end measurement in :mod:`.pipeline`.

One calibration pass is cached and shared by every variant.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .calibration import ImageSet
from .isa import QuantScheme
from .quantize import _pre_process, load_onnx_model, quantize
from .verify import onnx_logits, onnx_outputs, sqnr_db, top1

__all__ = ["UnitReport", "MixedPlan", "quantizable_units", "unit_of", "mixed_precision"]

# ops ORT's QDQ quantizer never touches: they are not units of their own
_PASSIVE = {"QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Cast", "Identity"}


def unit_of(node_name: str) -> str:
    """The block a node belongs to: '/stages/stages.2/stages.2.0/se/Mul' -> 'stages.2.0'; '/stem/...' -> 'stem'."""
    from ..latency.layers import onnx_node_module_path

    path = onnx_node_module_path(node_name)
    return "(graph)" if path is None else _unit_of_path(path)


def _unit_of_path(path: str) -> str:
    """'stages.2.0.se.gate' -> 'stages.2.0'; 'head.classifier' -> 'head'."""
    parts = path.split(".")
    return ".".join(parts[:3]) if parts[0] == "stages" and len(parts) >= 3 else parts[0]


def quantizable_units(model, split_larger_than: int | None = None) -> dict[str, list[str]]:
    """unit -> node names, in graph order, of an ``onnx.ModelProto``.

    ``split_larger_than``: a unit with more nodes is split one module level deeper, until every unit is small
    enough or cannot be split (dense task models: a detector's ``backbone.features``, SR's ``body.steps`` are one
    unit under the classifier rule, which only knows ``stages.i.j``).
    """
    from ..latency.layers import onnx_node_module_path

    paths = {node.name: onnx_node_module_path(node.name) for node in model.graph.node if node.op_type not in _PASSIVE and node.name}
    unit = {name: "(graph)" if path is None else _unit_of_path(path) for name, path in paths.items()}
    while split_larger_than is not None:
        sizes: dict[str, int] = defaultdict(int)
        for value in unit.values():
            sizes[value] += 1
        changed = False
        for name, path in paths.items():
            current = unit[name]
            if path is None or sizes[current] <= split_larger_than or current == "(graph)":
                continue
            parts, depth = path.split("."), len(current.split("."))
            if len(parts) > depth:
                unit[name], changed = ".".join(parts[: depth + 1]), True
        if not changed:
            break
    units: dict[str, list[str]] = defaultdict(list)
    for name in paths:
        units[unit[name]].append(name)
    return dict(units)


def _resolver(units: dict[str, list[str]]):
    """module path -> its unit: the longest unit name that is the path or a prefix of it (else the classifier rule)."""
    names = sorted((u for u in units if u != "(graph)"), key=len, reverse=True)

    def resolve(path: str) -> str:
        return next((u for u in names if path == u or path.startswith(u + ".")), _unit_of_path(path))

    return resolve


@dataclass(frozen=True)
class UnitReport:
    name: str
    nodes: int
    ops: tuple[str, ...]
    float_ms: float  # profiled time of its nodes in the fp32 graph
    int8_ms: float  # ... in the fully quantized graph (QDQ overhead included)
    sqnr_alone_db: float | None  # SQNR of the unit's output tensor with only this unit quantized
    drop_alone: float | None  # top-1 drop (points) with only this unit quantized, when labels are meaningful
    decision: str  # "int8" | "float: slower in int8" | "float: accuracy"

    @property
    def gain_ms(self) -> float:
        return self.float_ms - self.int8_ms


@dataclass(frozen=True)
class MixedPlan:
    path: str  # the mixed-precision QDQ graph
    full_int8_path: str
    kept_float_units: tuple[str, ...]
    kept_float_nodes: tuple[str, ...]
    units: tuple[UnitReport, ...]
    search_images: int
    float_search_top1: float | None
    mixed_search_top1: float | None
    full_search_top1: float | None
    mixed_sqnr_db: float
    full_sqnr_db: float
    criterion: str  # what the accuracy target was
    met: bool  # the target holds for the mixed graph
    accuracy_only_path: str | None = None  # the search without latency verdicts (only when some block profiled slower)
    accuracy_only_units: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())
    mixed_change: float | None = None  # task models: the task metric's change (budget units) of the mixed graph
    full_change: float | None = None  # ... of the fully quantized graph

    def to_dict(self) -> dict:
        data = asdict(self)
        data["units"] = [{**asdict(unit), "gain_ms": unit.gain_ms} for unit in self.units]
        return data


def _unit_times(path: Path, runs: int, threads: int, repeats: int = 3, resolve=_unit_of_path) -> dict[str, float]:
    """Profiled ms per unit: the minimum over ``repeats`` profiles, so a burst of load on a shared machine does not count."""
    from ..latency import layer_times

    best: dict[str, float] = {}
    for _ in range(repeats):
        times: dict[str, float] = defaultdict(float)
        for layer in layer_times(path, runtime="ort", threads=threads, runs=runs):
            if layer.self_ms <= 0 or layer.path in ("(model)", "(runtime)"):
                continue
            times[resolve(layer.path)] += layer.self_ms
        best = {unit: min(value, best.get(unit, value)) for unit, value in times.items()}
    return best


def mixed_precision(
    float_onnx: str | os.PathLike,
    calibration: ImageSet,
    search: ImageSet,
    output: str | os.PathLike,
    *,
    max_drop: float = 0.5,
    min_sqnr_db: float = 20.0,
    labels_meaningful: bool = True,
    scheme: QuantScheme | str | None = None,
    method: str = "minmax",
    threads: int = 1,
    profile_runs: int = 5,
    unit_accuracy: bool = True,
    latency_aware: bool = True,
    work_dir: str | os.PathLike | None = None,
    metric_change: Callable[[Path], float] | None = None,
    metric_label: str = "",
    split_larger_than: int | None = None,
    all_outputs: bool = False,
    unit_metric: bool = True,
) -> MixedPlan:
    """Search which blocks of ``float_onnx`` stay in fp32; write the chosen mixed graph to ``output``.

    With ``labels_meaningful`` (a trained model and labelled ``search`` images) the target is a top-1
    drop of at most ``max_drop`` points on ``search``; otherwise (random weights) an output SQNR of at
    least ``min_sqnr_db``. With ``latency_aware``, units whose INT8 form profiles slower than fp32 stay in
    float regardless.

    Dense task models: ``metric_change(path)`` is the task metric's loss of the INT8 graph at ``path`` against float,
    in the budget's unit (e.g. mIoU points, dB of PSNR; > 0 is worse); with it the target is ``metric_change <= max_drop``
    and each unit's ``drop_alone`` is its change when quantized alone (``unit_metric=False``: units are ranked by
    their SQNR alone and the metric is computed only for the graphs the search tries). ``all_outputs``: SQNRs are computed on every
    output, flattened (not only the first). ``split_larger_than`` sizes the units (:func:`quantizable_units`).
    """
    import shutil

    use_labels = metric_change is None and labels_meaningful and search.labels is not None and len(search) > 0
    use_metric = metric_change is not None

    def outputs_of(path: Path) -> np.ndarray:
        if not all_outputs:
            return onnx_logits(path, search.images, threads)
        from .tasks import flat_outputs, onnx_forward

        return flat_outputs(onnx_forward(path, threads)(search.images))

    scratch = tempfile.TemporaryDirectory(prefix="edgevision-mixed-") if work_dir is None else None
    work = Path(work_dir or scratch.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        prepared = _pre_process(Path(float_onnx), work / "prepared.onnx")
        cache = work / "calibration.json"
        units = quantizable_units(load_onnx_model(prepared), split_larger_than)
        resolve = _resolver(units)
        ops_of = _unit_ops(prepared, units)
        common = dict(scheme=scheme, method=method, calibration_cache=cache)

        full_path = work / "full.int8.onnx"
        quantize(prepared, calibration, full_path, **common)
        reference = outputs_of(prepared)
        full_logits = outputs_of(full_path)
        float_top1 = top1(reference, search.labels) if use_labels else None
        full_change = metric_change(full_path) if use_metric else None

        float_ms = _unit_times(prepared, profile_runs, threads, resolve=resolve)
        int8_ms = _unit_times(full_path, profile_runs, threads, resolve=resolve)

        def all_nodes_but(kept: Sequence[str]) -> list[str]:
            return [node for unit in kept for node in units[unit]]

        sensitivity: dict[str, tuple[float | None, float | None]] = {}
        probe = search.images[:32]
        unit_outputs = _unit_outputs(prepared, units)
        float_activations = onnx_outputs(prepared, probe, list(unit_outputs.values()), threads) if unit_accuracy else {}
        for unit in units if unit_accuracy else ():
            alone = work / "alone.int8.onnx"
            quantize(prepared, calibration, alone, keep_float=all_nodes_but([u for u in units if u != unit]), **common)
            tensor = unit_outputs[unit]
            quantized_tensor = _dequantized_name(alone, tensor)
            local = sqnr_db(float_activations[tensor], onnx_outputs(alone, probe, [quantized_tensor], threads)[quantized_tensor])
            drop = (float_top1 - top1(onnx_logits(alone, search.images, threads), search.labels) if use_labels
                    else metric_change(alone) if use_metric and unit_metric else None)
            sensitivity[unit] = (local, drop)

        slow = [u for u in units if latency_aware and u != "(graph)" and float_ms.get(u, 0.0) - int8_ms.get(u, 0.0) <= 0.0]
        # worst first: largest drop alone, then lowest SQNR alone
        order = sorted(
            (u for u in units if u not in slow and u in sensitivity),
            key=lambda u: (-(sensitivity[u][1] or 0.0), sensitivity[u][0]),
        )
        kept = list(slow)
        accuracy_kept: list[str] = []

        def evaluate(kept_units: Sequence[str], path: Path = work / "mixed.int8.onnx") -> tuple[Path, np.ndarray]:
            if not kept_units:
                shutil.copyfile(full_path, path)
            else:
                quantize(prepared, calibration, path, keep_float=all_nodes_but(kept_units), **common)
            return path, outputs_of(path)

        changes: dict[str, float] = {}

        def meets(logits: np.ndarray, path: Path | None = None) -> bool:
            if use_labels:
                return float_top1 - top1(logits, search.labels) <= max_drop
            if use_metric:
                changes[str(path)] = metric_change(path)
                return changes[str(path)] <= max_drop
            return sqnr_db(reference, logits) >= min_sqnr_db

        path, logits = evaluate(kept)
        met = meets(logits, path)
        while not met and order:
            unit = order.pop(0)
            kept.append(unit)
            accuracy_kept.append(unit)
            path, logits = evaluate(kept)
            met = meets(logits, path)
        mixed_change = changes.get(str(path))
        shutil.copyfile(path, output)
        # the same search without the profile's verdicts: if the profile misjudged a block, end-to-end timing of the
        # two graphs (in deploy) decides which one ships
        accuracy_only_path, accuracy_only_units = None, ()
        if slow:
            ranked = sorted((u for u in units if u in sensitivity), key=lambda u: (-(sensitivity[u][1] or 0.0), sensitivity[u][0]))
            kept_for_accuracy: list[str] = []
            candidate, candidate_logits = evaluate(kept_for_accuracy, work / "accuracy_only.int8.onnx")
            accurate = meets(candidate_logits, candidate)
            while not accurate and ranked:
                kept_for_accuracy.append(ranked.pop(0))
                candidate, candidate_logits = evaluate(kept_for_accuracy, work / "accuracy_only.int8.onnx")
                accurate = meets(candidate_logits, candidate)
            if accurate and kept_for_accuracy:  # with nothing kept it is the fully quantized graph (PTQ)
                accuracy_only_path = Path(output).with_name(Path(output).stem + ".accuracy_only.onnx")
                shutil.copyfile(candidate, accuracy_only_path)
                accuracy_only_units = tuple(kept_for_accuracy)
        full_copy = Path(output).with_name(Path(output).stem + ".full.onnx")
        shutil.copyfile(full_path, full_copy)
        reports = tuple(
            UnitReport(
                name=unit,
                nodes=len(units[unit]),
                ops=tuple(sorted(ops_of.get(unit, ()))),
                float_ms=round(float_ms.get(unit, 0.0), 5),
                int8_ms=round(int8_ms.get(unit, 0.0), 5),
                sqnr_alone_db=None if unit not in sensitivity else round(sensitivity[unit][0], 2),
                drop_alone=None if unit not in sensitivity or sensitivity[unit][1] is None else round(sensitivity[unit][1], 3),
                decision="float: slower in int8" if unit in slow else "float: accuracy" if unit in accuracy_kept else "int8",
            )
            for unit in units
        )
        criterion = (f"top-1 drop <= {max_drop} pt on the search split" if use_labels
                     else f"{metric_label or 'task metric on the search split'} change <= {max_drop}" if use_metric
                     else f"output SQNR >= {min_sqnr_db} dB (no meaningful labels)")
        return MixedPlan(
            path=os.fspath(output),
            full_int8_path=os.fspath(full_copy),
            kept_float_units=tuple(kept),
            kept_float_nodes=tuple(all_nodes_but(kept)),
            units=reports,
            search_images=len(search),
            float_search_top1=float_top1,
            mixed_search_top1=top1(logits, search.labels) if use_labels else None,
            full_search_top1=top1(full_logits, search.labels) if use_labels else None,
            accuracy_only_path=None if accuracy_only_path is None else os.fspath(accuracy_only_path),
            accuracy_only_units=accuracy_only_units,
            mixed_sqnr_db=round(sqnr_db(reference, logits), 2),
            full_sqnr_db=round(sqnr_db(reference, full_logits), 2),
            criterion=criterion,
            met=met,
            mixed_change=None if mixed_change is None else round(mixed_change, 6),
            full_change=None if full_change is None else round(full_change, 6),
        )
    finally:
        if scratch is not None:
            scratch.cleanup()


def _unit_outputs(path: Path, units: dict[str, list[str]]) -> dict[str, str]:
    """unit -> the first output tensor of its last node in graph order (what the next block reads)."""
    owner = {name: unit for unit, names in units.items() for name in names}
    outputs: dict[str, str] = {}
    for node in load_onnx_model(path).graph.node:
        if node.name in owner and node.output:
            outputs[owner[node.name]] = node.output[0]
    return outputs


def _dequantized_name(qdq_path: Path, tensor: str) -> str:
    """The tensor that carries ``tensor``'s value in a QDQ graph: its DequantizeLinear output when it was quantized.

    ORT drops a quantized ReLU/Clip (its range is folded into the preceding Q), so the float name
    may then hold the pre-activation value; the DQ output is what the next node reads.
    """
    for node in load_onnx_model(qdq_path).graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] == f"{tensor}_QuantizeLinear_Output":
            return node.output[0]
    return tensor


def _unit_ops(path: Path, units: dict[str, list[str]]) -> dict[str, set[str]]:
    owner = {name: unit for unit, names in units.items() for name in names}
    ops: dict[str, set[str]] = defaultdict(set)
    for node in load_onnx_model(path).graph.node:
        if node.name in owner:
            ops[owner[node.name]].add(node.op_type)
    return ops
