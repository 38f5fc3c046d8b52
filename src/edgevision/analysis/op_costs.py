"""Cost formulas per aten operator: multiply-accumulates, FLOPs and bytes moved.

Conventions (stated in every report):

* **MACs** count multiply-accumulates of the multiply-add operators only: convolution, matrix
  products (mm, addmm, bmm, baddbmm) and attention (SDPA: Q·Kᵀ and P·V). Convolution and matmul
  MACs equal ``torch.utils.flop_counter``'s FLOPs / 2 (we use its formulas' shapes).
* **FLOPs** = 2 × MACs for those operators, plus bias adds (one per output element), plus every other
  operator's per-element cost from :data:`ELEMENTWISE_FLOPS_PER_ELEMENT` (a documented, rough count of
  arithmetic per output element: ReLU 1, hard-swish 4, sigmoid 4, SiLU 5, GELU 8, softmax 5,
  inference BatchNorm 2, LayerNorm 5, ...). Pooling costs one FLOP per window element.
* **Bytes** read = every tensor argument (inputs and weights) at its element size, capped by its
  storage size (a broadcast view reads its storage once); bytes written = every output. View
  operators (view, reshape-as-view, transpose, permute, slice, split, chunk, expand, ...) copy
  nothing and move nothing. Memory operators (cat, clone/contiguous, copy, pad) have 0 FLOPs but
  report their bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch

__all__ = ["ELEMENTWISE_FLOPS_PER_ELEMENT", "MEMORY_OPS", "ZERO_COPY_OPS", "OpCost", "op_cost", "tensor_bytes"]

# arithmetic per output element (documented approximations; exp/div counted as 1)
ELEMENTWISE_FLOPS_PER_ELEMENT: dict[str, int] = {
    **dict.fromkeys(["add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "floor_divide", "neg", "abs", "reciprocal"], 1),
    "cumsum": 1,  # one add per output element (SSBNet's inverse-CDF sampling)
    **dict.fromkeys(["relu", "relu_", "threshold", "clamp", "clamp_", "clamp_min", "clamp_min_", "clamp_max"], 1),
    **dict.fromkeys(["hardtanh", "hardtanh_", "maximum", "minimum", "where", "sign", "exp", "log", "sqrt", "rsqrt"], 1),
    **dict.fromkeys(["pow", "square", "erf", "sin", "cos", "fill_", "masked_fill", "masked_fill_"], 1),
    "leaky_relu": 2, "leaky_relu_": 2, "elu": 4, "elu_": 4,
    "hardsigmoid": 3, "hardsigmoid_": 3,  # x + 3, clamp, / 6
    "hardswish": 4, "hardswish_": 4,  # x * hardsigmoid(x)
    "sigmoid": 4, "sigmoid_": 4,  # exp, add, div (+ neg)
    "silu": 5, "silu_": 5,  # sigmoid + mul
    "tanh": 5, "mish": 8, "gelu": 8, "softplus": 3,
    "_softmax": 5, "softmax": 5, "_safe_softmax": 5, "_log_softmax": 5, "log_softmax": 5,  # max, sub, exp, sum, div
    # BatchNorm at inference is a per-channel scale and shift (2); with batch statistics it also
    # computes mean and variance (4); native_batch_norm's ``training`` flag decides, see op_cost
    "_native_batch_norm_legit_no_training": 2, "_native_batch_norm_legit": 4, "native_batch_norm": 4,
    "native_layer_norm": 5, "native_group_norm": 5,  # mean, var, normalize, scale, shift
    "addcmul": 2, "addcdiv": 2, "lerp": 2,
}  # fmt: skip

# operators that only move data (0 FLOPs, bytes counted)
MEMORY_OPS = frozenset(
    [
        "cat", "stack", "clone", "_to_copy", "copy_", "copy", "contiguous", "constant_pad_nd", "pad",
        "reflection_pad2d", "replicate_pad2d", "index_select", "gather", "index", "roll", "repeat",
        "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "empty", "empty_like", "new_zeros",
        "new_empty", "new_full", "scalar_tensor", "lift_fresh_copy", "flip",
        "fill", "zero_", "arange", "rand", "randn", "randint", "rand_like", "randn_like",
    ]
)  # fmt: skip

# operators that return their input's storage without copying, though their schema is not a view
ZERO_COPY_OPS = frozenset(["_unsafe_view", "lift_fresh", "alias", "detach", "_reshape_alias", "_local_scalar_dense"])

_MATMUL = frozenset(["mm", "addmm", "bmm", "baddbmm"])
_SDPA = frozenset(
    [
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_attention_math",
        "_scaled_dot_product_fused_attention_overrideable",
    ]
)
_POOL_WINDOW = frozenset(["max_pool2d_with_indices", "max_pool2d", "avg_pool2d", "max_pool1d", "avg_pool1d"])
_REDUCE_INPUT = frozenset(["mean", "sum", "amax", "amin", "max", "min", "_adaptive_avg_pool2d", "adaptive_avg_pool2d", "var", "std"])


@dataclass(frozen=True)
class OpCost:
    macs: int
    flops: int
    counted: bool  # False when the operator is not in our tables and got the default 1 FLOP/element


def tensor_bytes(tensor: torch.Tensor) -> int:
    """Bytes an operator touches in ``tensor``: its elements, capped by its storage (broadcasts read once)."""
    if tensor.is_meta:
        return tensor.numel() * tensor.element_size()
    nbytes = tensor.numel() * tensor.element_size()
    try:
        return min(nbytes, tensor.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. some subclasses)
        return nbytes


def _flatten_tensors(values: Iterable[Any]) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(_flatten_tensors(value))
    return found


def _conv_macs(args: tuple, output: torch.Tensor) -> tuple[int, bool]:
    input_, weight, bias = args[0], args[1], args[2]
    transposed = bool(args[6]) if len(args) > 6 else False
    kernel = math.prod(weight.shape[2:])
    if transposed:  # weight (C_in, C_out/g, k...): every input element meets C_out/g * k weights
        macs = input_.numel() * weight.shape[1] * kernel
    else:  # weight (C_out, C_in/g, k...): every output element sums C_in/g * k products
        macs = output.numel() * weight.shape[1] * kernel
    return macs, bias is not None


def op_cost(name: str, args: tuple, kwargs: dict, outputs: list[torch.Tensor]) -> OpCost:
    """MACs and FLOPs of one operator call (``name`` is the aten overload packet's name)."""
    out = outputs[0] if outputs else None
    out_elements = sum(o.numel() for o in outputs)
    if name in ("convolution", "_convolution", "convolution_overrideable", "mkldnn_convolution", "_slow_conv2d_forward"):
        macs, has_bias = _conv_macs(args, out)
        return OpCost(macs, 2 * macs + (out.numel() if has_bias else 0), True)
    if name in _MATMUL:
        first, second = (args[1], args[2]) if name.startswith(("add", "badd")) else (args[0], args[1])
        macs = first.numel() * second.shape[-1]  # (.., m, k) x (.., k, n): m*k*n per batch
        bias_adds = out.numel() if name.startswith(("add", "badd")) else 0
        return OpCost(macs, 2 * macs + bias_adds, True)
    if name in _SDPA:
        query, key, value = args[0], args[1], args[2]
        batch_heads = math.prod(query.shape[:-2])
        length_q, length_k = query.shape[-2], key.shape[-2]
        macs = batch_heads * length_q * length_k * (query.shape[-1] + value.shape[-1])
        softmax = ELEMENTWISE_FLOPS_PER_ELEMENT["_softmax"] * batch_heads * length_q * length_k
        return OpCost(macs, 2 * macs + softmax, True)
    if name in MEMORY_OPS:
        return OpCost(0, 0, True)
    if name in _POOL_WINDOW:
        window = args[1] if len(args) > 1 else kwargs.get("kernel_size")
        window = [window] * 2 if isinstance(window, int) else list(window)
        return OpCost(0, out.numel() * math.prod(window), True)
    if name == "linalg_vector_norm":  # square and accumulate each input element, then one root per output (EdgeNeXt's XCA)
        return OpCost(0, 2 * args[0].numel() + out.numel(), True)
    if name in _REDUCE_INPUT:
        source = args[0]
        return OpCost(0, source.numel() + (out.numel() if name in ("mean", "_adaptive_avg_pool2d", "adaptive_avg_pool2d") else 0), True)
    if name in ELEMENTWISE_FLOPS_PER_ELEMENT:
        per_element = ELEMENTWISE_FLOPS_PER_ELEMENT[name]
        if name == "native_batch_norm" and len(args) > 5 and not args[5]:  # training=False: running statistics
            per_element = ELEMENTWISE_FLOPS_PER_ELEMENT["_native_batch_norm_legit_no_training"]
        elements = out.numel() if out is not None else 0
        return OpCost(0, per_element * elements, True)
    return OpCost(0, out_elements, False)


def input_tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    return _flatten_tensors(list(args) + list(kwargs.values()))


def output_tensors(result: Any) -> list[torch.Tensor]:
    return _flatten_tensors([result])
