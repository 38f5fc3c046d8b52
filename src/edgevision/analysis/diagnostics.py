"""Design diagnostics from the cost report: ShuffleNet V2's four guidelines and MobileOne's observation.

Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design" (ECCV 2018), Sec. 2:
  G1  equal input/output widths minimise memory access for a given FLOP count (1x1 convs);
  G2  excessive group convolution increases memory access;
  G3  network fragmentation (many small operators per block) reduces parallelism;
  G4  element-wise operators are not negligible.
Vasu et al., "MobileOne" (CVPR 2023), Sec. 3: multi-branch train-time structure costs memory access
at inference; re-parameterize to a single branch before deploying ("MobileOne").
Xia et al., "TRT-ViT: TensorRT-oriented Vision Transformer" (2022), Sec. 3 guidelines:
  TRT-ViT stage  convolution stages early, transformer stages late (guideline 1);
  TRT-ViT block  inside a hybrid block, attention first and convolution after (guideline 4).
  Both are reported for every network: the stage layout (C = convolution, T = transformer: a stage
  with attention) and whether it follows, then one flag per stage or hybrid block that does not.
Each flag names the layer (module path) and the guideline.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    from .report import CostReport

__all__ = ["Diagnostic", "diagnose"]

#: 1x1 convs whose wider side is at least this many times the narrower one are flagged (G1)
WIDTH_RATIO_LIMIT = 4.0
#: a block issuing at least this many operators is fragmented (G3); a deploy-form ResNet bottleneck
#: issues 8, an inverted residual with squeeze-excite 12, a train-form MobileOne layer 16
FRAGMENT_MIN_OPERATORS = 12
#: element-wise share of the roofline time above which G4 is flagged
ELEMENTWISE_SHARE_LIMIT = 0.2

_CONV_OPS = ("aten.convolution", "aten._convolution")


@dataclass(frozen=True)
class Diagnostic:
    guideline: str  # "G1".."G4" (ShuffleNet V2), "MobileOne", "TRT-ViT stage" or "TRT-ViT block"
    layer: str  # module path the flag is about
    message: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.guideline}] {self.layer or '<model>'}: {self.message}"


def _convs(report: "CostReport"):
    for cost in report.operators:
        call = cost.call
        if call.op in _CONV_OPS and len(call.input_shapes) >= 2:
            input_shape, weight_shape = call.input_shapes[0], call.input_shapes[1]
            groups = input_shape[1] // weight_shape[1]
            yield cost, input_shape[1], weight_shape[0], tuple(weight_shape[2:]), groups


def _unequal_widths(report: "CostReport") -> list[Diagnostic]:
    flags = []
    for _cost, c_in, c_out, kernel, groups in _convs(report):
        if set(kernel) == {1} and groups == 1 and max(c_in, c_out) >= WIDTH_RATIO_LIMIT * min(c_in, c_out):
            flags.append(
                (max(c_in, c_out) / min(c_in, c_out), _cost.call.module, f"1x1 conv {c_in}->{c_out} channels (ratio 1:{max(c_in, c_out) / min(c_in, c_out):.1f}); equal input/output widths minimise memory access for the same FLOPs")
            )
    flags.sort(key=lambda f: -f[0])
    return [Diagnostic("G1", layer, message) for _, layer, message in flags]


def _group_convs(report: "CostReport") -> list[Diagnostic]:
    dense = [c.intensity for c, _i, _o, _k, g in _convs(report) if g == 1]
    if not dense:
        return []
    median = statistics.median(dense)
    flags = []
    for cost, c_in, c_out, kernel, groups in _convs(report):
        if 1 < groups < c_in and cost.intensity < 0.5 * median:
            flags.append(
                Diagnostic(
                    "G2",
                    cost.call.module,
                    f"group conv (g={groups}, {c_in}->{c_out}) moves {cost.bytes / 1e6:.2f} MB at {cost.intensity:.1f} FLOP/B, "
                    f"under half the dense convs' median {median:.1f} FLOP/B; more groups mean more memory access per FLOP",
                )
            )
    return flags


def _blocks(report: "CostReport", model: nn.Module) -> list[str]:
    resolved = getattr(model, "resolved", None)
    if resolved is not None:
        return [b.path for b in resolved if b.path in report.modules]
    return [m.path for m in report.modules_at_depth(2)] or [m.path for m in report.modules_at_depth(1)]


def _fragmentation(report: "CostReport", model: nn.Module) -> list[Diagnostic]:
    blocks = [report.modules[path] for path in _blocks(report, model)]
    if len(blocks) < 2:
        return []
    median = statistics.median(b.operators for b in blocks)
    return [
        Diagnostic(
            "G3",
            block.path,
            f"{block.operators} operators in one block (median {median:g}); fragmented blocks launch many small kernels and parallelise poorly",
        )
        for block in blocks
        if block.operators >= FRAGMENT_MIN_OPERATORS
    ]


def _elementwise_share(report: "CostReport") -> list[Diagnostic]:
    total = report.total.bound_seconds
    if not total:
        return []
    per_module: dict[str, float] = {}
    elementwise = 0.0
    for cost in report.operators:
        call = cost.call
        if call.macs == 0 and call.flops > 0 and cost.bound_seconds:
            elementwise += cost.bound_seconds
            per_module[call.module] = per_module.get(call.module, 0.0) + cost.bound_seconds
    share = elementwise / total
    if share <= ELEMENTWISE_SHARE_LIMIT:
        return []
    top = sorted(per_module.items(), key=lambda item: -item[1])[:3]
    where = ", ".join(f"{path or '<model>'} {seconds / total:.0%}" for path, seconds in top)
    return [
        Diagnostic(
            "G4",
            top[0][0],
            f"element-wise operators (activations, adds, normalisation, pooling) take {share:.0%} of the roofline time; largest: {where}",
        )
    ]


def _multi_branch(model: nn.Module) -> list[Diagnostic]:
    from ..reparam import Reparameterizable

    branchy = [
        path
        for path, module in model.named_modules()
        if isinstance(module, Reparameterizable) and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())
    ]
    if not branchy:
        return []
    return [
        Diagnostic(
            "MobileOne",
            branchy[0],
            f"{len(branchy)} modules are in train form (BatchNorm / parallel branches); the deploy form fuses them — "
            "analyze edgevision.reparameterize(model) (CLI: --deploy) to see what ships",
        )
    ]


#: operators that mark token-mixing attention: a softmax over keys, or a fused attention kernel
_ATTENTION_OPS = {"aten._softmax", "aten.softmax", "aten._safe_softmax"} | {
    f"aten.{name}"
    for name in (
        "scaled_dot_product_attention",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_attention_math",
    )
}


def _stages(report: "CostReport", model: nn.Module) -> list[tuple[str, list[str]]]:
    """[(stage path, [block paths])] in network order: the resolved stages, else the blocks' parents."""
    resolved = getattr(model, "resolved", None)
    stages: dict[str, list[str]] = {}
    if resolved is not None:
        for block in resolved:
            if block.section == "stages" and block.path in report.modules:
                stages.setdefault(f"stages.{block.stage_index}", []).append(block.path)
    else:
        for path in _blocks(report, model):
            stages.setdefault(path.rpartition(".")[0], []).append(path)
    return list(stages.items())


def _mixing_order(report: "CostReport", block: str) -> tuple[int | None, int | None, str]:
    """(index of the first attention op, index of the first k x k stride-1 conv, that conv's module) in ``block``.

    Downsampling convs (output smaller than input) are the block's patch embedding, not its token
    mixing, and 1x1 convs are per-token projections: neither counts as "convolution" here.
    """
    first_attention = first_conv = None
    conv_module = ""
    for position, cost in enumerate(report.operators):
        call = cost.call
        if not (call.module == block or call.module.startswith(block + ".")):
            continue
        if call.op in _ATTENTION_OPS and first_attention is None:
            first_attention = position
        elif call.op in _CONV_OPS and first_conv is None and len(call.input_shapes) >= 2:
            kernel = tuple(call.input_shapes[1][2:])
            keeps_size = tuple(call.input_shapes[0][2:]) == tuple(call.output_shapes[0][2:])
            if any(k > 1 for k in kernel) and keeps_size:
                first_conv, conv_module = position, call.module
    return first_attention, first_conv, conv_module


def _trt_vit_guidelines(report: "CostReport", model: nn.Module) -> list[Diagnostic]:
    stages = _stages(report, model)
    if not stages:
        return []
    orders = {block: _mixing_order(report, block) for _, blocks in stages for block in blocks}
    kinds = ["T" if any(orders[b][0] is not None for b in blocks) else "C" for _, blocks in stages]
    first_transformer = kinds.index("T") if "T" in kinds else len(kinds)
    late_convs = [path for (path, _), kind in list(zip(stages, kinds))[first_transformer:] if kind == "C"]
    if "T" not in kinds:
        verdict = "no transformer stage, nothing to order"
    else:
        verdict = ("follows" if not late_convs else "does not follow") + " convolution stages early, transformer stages late"
    flags = [Diagnostic("TRT-ViT stage", "", f"stage layout {' '.join(kinds)} (C = convolution, T = transformer): {verdict}")]
    flags += [
        Diagnostic("TRT-ViT stage", path, "convolution stage after a transformer stage; move attention to the late, low-resolution stages")
        for path in late_convs
    ]
    hybrid = {block: order for block, order in orders.items() if order[0] is not None and order[1] is not None}
    conv_first = [block for block, (attention, conv, _) in hybrid.items() if conv < attention]
    if hybrid:
        follows = "all attention first" if not conv_first else f"{len(conv_first)} run convolution before attention"
        flags.append(Diagnostic("TRT-ViT block", "", f"{len(hybrid)} hybrid blocks (attention and k x k convolution): {follows}"))
    flags += [
        Diagnostic(
            "TRT-ViT block",
            block,
            f"convolution ({hybrid[block][2]}) runs before attention in this hybrid block; attention first, convolution after",
        )
        for block in conv_first
    ]
    return flags


def diagnose(report: "CostReport", model: nn.Module) -> list[Diagnostic]:
    """All flags for a report (model is the analysed module, for block structure and train/deploy form)."""
    return (
        _unequal_widths(report)
        + _group_convs(report)
        + _fragmentation(report, model)
        + _elementwise_share(report)
        + _multi_branch(model)
        + _trt_vit_guidelines(report, model)
    )
