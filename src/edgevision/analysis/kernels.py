"""Operators grouped into the kernels a runtime actually runs, with bytes counted once per kernel.

A runtime that fuses conv + BatchNorm + activation never writes the conv's output: charging it as
if it did (the per-aten-operator cost model) puts the roofline *above* the measured time. Here the
traced operators (:mod:`.tracer`, with their dataflow) are grouped by per-runtime rules:

``eager``     no fusion: one kernel per aten operator (the deploy form has already folded BN).
``ort``       ONNX Runtime's CPU graph optimizations (ORT_ENABLE_ALL, as our ``ort`` adapter runs
              it): BatchNorm folded into the conv, Conv/Gemm + Add (residual "Sum") + activation
              (Relu, Clip, HardSwish, HardSigmoid, Sigmoid, Tanh, LeakyRelu) in one kernel (the
              NCHWc Conv's ``activation`` attribute), a multiply/divide/subtract by a constant folded
              into the conv's weights (ConvMulFusion, or our exporter's constant folding:
              inception_resnet_v2's scaled residual), a per-channel affine by constants that follows
              no conv (DenseNet's pre-activation BatchNorm after a concat) run as one depthwise NCHWc
              conv with its activation, and operators that depend only on weights constant-folded
              away. :func:`ort_optimized_graph` reads ORT's optimized model to check these rules
              against the real thing (densenet121: 182 NCHWc convs for our 120 convs + 62 affines).
``compile``   inductor: every chain of point-wise operators becomes one loop, fused into the
``openvino``  producing conv/matmul as an epilogue; constants folded.

A fused kernel reads each external tensor once (inputs from other kernels, weights) and writes
only its last output; its FLOPs are the sum of its operators'. The rules err towards *more* fusion
than the runtime does: fewer bytes can only lower the bound, so the roofline stays a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .op_costs import ELEMENTWISE_FLOPS_PER_ELEMENT

__all__ = ["FUSION_RULES", "FusionRules", "Kernel", "group_kernels", "kernel_costs", "ort_optimized_graph"]

_CONV_GEMM = frozenset(
    ["convolution", "_convolution", "mkldnn_convolution", "_slow_conv2d_forward", "convolution_overrideable", "mm", "addmm", "bmm", "baddbmm"]
)
_BATCH_NORM = frozenset(["_native_batch_norm_legit_no_training", "native_batch_norm", "_native_batch_norm_legit"])
# activations ORT's conv kernels take as an attribute (ConvActivationFusion / NchwcTransformer); SiLU
# and GELU are included although ORT keeps them apart, because over-fusing only lowers the bound
_ORT_ACTIVATIONS = frozenset(
    name + suffix
    for name in ("relu", "clamp", "clamp_min", "clamp_max", "hardtanh", "hardswish", "hardsigmoid", "sigmoid", "tanh", "leaky_relu", "silu", "gelu")
    for suffix in ("", "_")
)
# x * c, x / c, x - c, x + c with a constant c (a weight, a folded BatchNorm's scale, a number)
_CONSTANT_AFFINE = frozenset(name + suffix for name in ("mul", "div", "sub", "add") for suffix in ("", "_"))
_POINTWISE = frozenset(
    name for name in ELEMENTWISE_FLOPS_PER_ELEMENT if not name.startswith(("_softmax", "softmax", "_safe", "_log_softmax", "log_softmax", "native_", "cumsum"))
)


@dataclass(frozen=True)
class FusionRules:
    """Which operators join the kernel of the operator producing their input."""

    runtime: str
    anchors: frozenset[str]  # operators whose kernel can take an epilogue
    epilogue: frozenset[str]  # operators that join their producer's kernel (when its only consumer)
    max_epilogue: int  # operators an anchor may absorb
    constant_fold: bool  # operators that depend only on weights are computed once, at load time
    # operators that join their producer's kernel only when every other operand is a constant (a
    # weight or a number): the runtime folds them into the producer's weights (ORT's ConvMulFusion)
    constant_epilogue: frozenset[str] = frozenset()
    # operators that start a kernel able to take an epilogue when every other operand is a constant:
    # ORT runs a per-channel scale (+ shift) + activation as one depthwise NCHWc conv
    constant_anchors: frozenset[str] = frozenset()


FUSION_RULES: dict[str, FusionRules] = {
    "eager": FusionRules("eager", frozenset(), frozenset(), 0, False),
    "ort": FusionRules(
        "ort", _CONV_GEMM, _BATCH_NORM | _ORT_ACTIVATIONS | {"add", "add_"} | {"native_layer_norm"}, 4, True,
        constant_epilogue=_CONSTANT_AFFINE, constant_anchors=_CONSTANT_AFFINE | _BATCH_NORM,
    ),
    "compile": FusionRules("compile", _CONV_GEMM | _POINTWISE, _BATCH_NORM | _POINTWISE, 64, True),
    "openvino": FusionRules("openvino", _CONV_GEMM | _POINTWISE, _BATCH_NORM | _POINTWISE, 64, True),
    "cuda": FusionRules("cuda", frozenset(), frozenset(), 0, False),
}


def _rules(runtime: str) -> FusionRules:
    try:
        return FUSION_RULES[runtime]
    except KeyError:
        raise ValueError(f"no fusion rules for runtime {runtime!r}; choose one of {', '.join(FUSION_RULES)}") from None


def _bare(op: str) -> str:
    return op.split(".", 1)[-1]


def group_kernels(calls: Sequence[Any], runtime: str) -> list[list[int]]:
    """Positions in ``calls`` (tracer.OperatorCall) of each kernel's operators, in execution order.

    Views and work-free calls (``aten.empty``) belong to no kernel; with ``constant_fold`` the
    weight-only operators belong to none either.
    """
    rules = _rules(runtime)
    alias: dict[int, int] = {}  # view output id -> id of the tensor owning the storage

    def root(tensor_id: int) -> int:
        while tensor_id in alias:
            tensor_id = alias[tensor_id]
        return tensor_id

    # consumers of each tensor version: (root id, position of the call that wrote it) -> readers
    producer: dict[int, int] = {}
    consumers: dict[tuple[int, int], set[int]] = {}
    reads: list[list[tuple[int, int]]] = []  # per call: the (root, writer) versions it reads
    for position, call in enumerate(calls):
        versions = []
        if call.is_view:
            for output in call.output_ids:
                if call.input_ids and call.input_ids[0] and output != call.input_ids[0]:
                    alias[output] = call.input_ids[0]
            reads.append(versions)
            continue
        for tensor in call.input_ids:
            base = root(tensor)
            if tensor and base in producer:
                versions.append((base, producer[base]))
                consumers.setdefault((base, producer[base]), set()).add(position)
        reads.append(versions)
        for output in call.output_ids:
            producer[root(output)] = position

    # tensors computed from weights alone; id 0 = a weight or buffer; any other id derives from the input
    weight_only = {root(o) for call in calls if not call.input_dependent for o in call.output_ids}

    def by_constants(position: int) -> bool:
        """At most one tensor operand derives from the network input; the others are weights or numbers."""
        return sum(1 for t in calls[position].input_ids if t and root(t) not in weight_only) <= 1

    def is_anchor(position: int) -> bool:
        op = _bare(calls[position].op)
        return op in rules.anchors or (op in rules.constant_anchors and by_constants(position))

    kernels: list[list[int]] = []
    kernel_of: dict[int, int] = {}
    for position, call in enumerate(calls):
        if call.is_view or (rules.constant_fold and not call.input_dependent):
            continue
        if call.flops == 0 and call.bytes_read + call.bytes_written == 0:  # e.g. aten.empty: no work, no kernel
            continue
        target = None
        op = _bare(call.op)
        if op in rules.epilogue or (op in rules.constant_epilogue and by_constants(position)):
            for version in reads[position]:
                writer = version[1]
                kernel = kernel_of.get(writer)
                if kernel is None or consumers.get(version) != {position}:
                    continue
                members = kernels[kernel]
                if members[-1] == writer and is_anchor(members[0]) and len(members) <= rules.max_epilogue:
                    target = kernel
                    break
        if target is None:
            kernel_of[position] = len(kernels)
            kernels.append([position])
        else:
            kernel_of[position] = target
            kernels[target].append(position)
    return kernels


@dataclass(frozen=True)
class Kernel:
    """One kernel a runtime runs: its operators, their summed work, and bytes counted once."""

    index: int
    operators: tuple[int, ...]  # positions in the report's operator list
    ops: tuple[str, ...]  # "aten.convolution", "aten.relu_", ...
    module: str  # the module of its first operator
    macs: int
    flops: int
    bytes_read: int  # every external tensor once: inputs from other kernels and weights
    bytes_written: int  # its last operator's output
    bound_seconds: float | None
    bound_by: str | None

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def to_dict(self) -> dict:
        return {
            "index": self.index, "operators": list(self.operators), "ops": list(self.ops), "module": self.module,
            "macs": self.macs, "flops": self.flops, "bytes_read": self.bytes_read, "bytes_written": self.bytes_written,
            "bytes": self.bytes, "bound_seconds": self.bound_seconds, "bound_by": self.bound_by,
        }  # fmt: skip


def kernel_costs(calls: Sequence[Any], runtime: str, peaks=None) -> list[Kernel]:
    """The kernels of ``runtime`` with their FLOPs, bytes and roofline bound (None without ``peaks``)."""
    result = []
    for index, members in enumerate(group_kernels(calls, runtime)):
        produced: set[int] = set()
        seen: set[int] = set()
        read = 0
        for position in members:
            call = calls[position]
            for tensor, nbytes in zip(call.input_ids, call.input_bytes or (0,) * len(call.input_ids)):
                if tensor and (tensor in produced or tensor in seen):
                    continue
                if tensor:
                    seen.add(tensor)
                read += nbytes
            produced.update(call.output_ids)
        last = calls[members[-1]]
        flops = sum(calls[p].flops for p in members)
        written = last.bytes_written
        bound = peaks.bound_seconds(flops, read + written) if peaks is not None else (None, None)
        result.append(
            Kernel(
                index=index,
                operators=tuple(members),
                ops=tuple(calls[p].op for p in members),
                module=calls[members[0]].module,
                macs=sum(calls[p].macs for p in members),
                flops=flops,
                bytes_read=read,
                bytes_written=written,
                bound_seconds=bound[0],
                bound_by=bound[1],
            )
        )
    return result


@dataclass(frozen=True)
class OrtNode:
    """One node of ONNX Runtime's optimized graph."""

    name: str
    op_type: str
    domain: str
    activation: str | None  # the activation a fused conv applies ("Relu", "HardSwish", ...)
    fused_add: bool  # an NCHWc conv with a "Sum" input: the residual Add is inside the kernel

    @property
    def is_layout(self) -> bool:
        """Layout conversions ORT inserts (ReorderInput/ReorderOutput): not an operator of ours."""
        return self.op_type.startswith("Reorder")


def ort_optimized_graph(onnx_path: str | Path, threads: int = 1) -> list[OrtNode]:
    """The nodes ONNX Runtime runs for ``onnx_path`` after its ORT_ENABLE_ALL graph optimizations.

    ORT writes the optimized graph when ``SessionOptions.optimized_model_filepath`` is set; fused
    nodes keep our exporter's names (``/layer/conv/Conv...``) so they map back to modules.
    """
    import tempfile

    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgevision-ort-") as directory:
        optimized = Path(directory) / "optimized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.optimized_model_filepath = str(optimized)
        options.log_severity_level = 3
        ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(str(optimized)).graph
    nodes = []
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        activation = attributes.get("activation")
        nodes.append(
            OrtNode(
                name=node.name,
                op_type=node.op_type,
                domain=node.domain,
                activation=activation.decode() if isinstance(activation, bytes) else activation,
                fused_add=node.domain == "com.microsoft.nchwc" and node.op_type == "Conv" and len(node.input) > 3,
            )
        )
    return nodes
