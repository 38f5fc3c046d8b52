"""Record every aten operator of one forward pass, with its owning module and tensor lifetimes.

A ``TorchDispatchMode`` (as ``torch.utils.flop_counter`` uses) sees every operator below the Python
API — functional calls, ``@``, ``F.scaled_dot_product_attention``, views, in-place ops — whatever
module or function issued it. Global module hooks keep a stack of module paths so each operator
is attributed to the innermost module that was running. Storage lifetimes come from weak
references: a storage an operator allocated counts as live until the last tensor viewing it dies,
which is exactly when eager PyTorch frees it, so the peak is eager inference's activation peak.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from .op_costs import ZERO_COPY_OPS, input_tensors, op_cost, output_tensors, tensor_bytes

__all__ = ["OperatorCall", "Trace", "trace"]


@dataclass(frozen=True)
class OperatorCall:
    index: int
    op: str  # "aten.convolution"
    module: str  # innermost module path, "" for the root / functional code
    macs: int
    flops: int
    bytes_read: int
    bytes_written: int
    new_activation_bytes: int  # storage this call allocated (0 for views and in-place ops)
    input_shapes: tuple[tuple[int, ...], ...]  # tensor arguments in order (for conv: input, weight[, bias])
    output_shapes: tuple[tuple[int, ...], ...]
    is_view: bool
    counted: bool  # False when the operator got the default cost (not in our tables)
    # dataflow, for grouping operators into the kernels a runtime fuses (analysis.kernels):
    input_bytes: tuple[int, ...] = ()  # bytes read from each tensor argument (sums to bytes_read)
    input_ids: tuple[int, ...] = ()  # trace-local ids of the tensor arguments (0 = not produced in the trace)
    output_ids: tuple[int, ...] = ()
    input_dependent: bool = True  # False when no argument derives from the network input (a runtime can constant-fold it)


@dataclass
class Trace:
    calls: list[OperatorCall]
    peak_activation_bytes: int
    input_bytes: int


class _Lifetimes:
    """Live bytes of storages allocated during the traced forward, and their peak."""

    def __init__(self) -> None:
        self.live = 0
        self.peak = 0
        self._storages: dict[int, list[int]] = {}  # data_ptr -> [nbytes, live tensor count]

    def track(self, tensor: torch.Tensor, allocated: bool) -> int:
        """Register ``tensor``; returns bytes newly allocated (0 when it views a known storage)."""
        if tensor.numel() == 0 or tensor.is_meta:
            return 0
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        entry = self._storages.get(key)
        new_bytes = 0
        if entry is None:
            if not allocated:  # a view or in-place result on parameters / untracked memory
                return 0
            new_bytes = storage.nbytes()
            entry = self._storages[key] = [new_bytes, 0]
            self.live += new_bytes
            self.peak = max(self.peak, self.live)
        entry[1] += 1
        weakref.finalize(tensor, self._release, key)
        return new_bytes

    def _release(self, key: int) -> None:
        entry = self._storages.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.live -= entry[0]
            del self._storages[key]


class _Recorder(TorchDispatchMode):
    def __init__(self, module_stack: list[str], lifetimes: _Lifetimes, example: torch.Tensor) -> None:
        super().__init__()
        self.module_stack = module_stack
        self.lifetimes = lifetimes
        self.calls: list[OperatorCall] = []
        # id(tensor) -> (weak reference, trace id); the weak reference guards against a reused id()
        self._ids: dict[int, tuple[weakref.ref, int]] = {}
        self._serial = 0
        self._dependent: set[int] = set()  # trace ids of tensors that derive from the network input
        self._dependent.add(self._tensor_id(example, create=True))

    def _tensor_id(self, tensor: torch.Tensor, create: bool = False) -> int:
        entry = self._ids.get(id(tensor))
        if entry is not None and entry[0]() is tensor:
            return entry[1]
        if not create:
            return 0
        self._serial += 1
        serial = self._serial
        self._ids[id(tensor)] = (weakref.ref(tensor), serial)
        return serial

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        self._record(func, args, kwargs, result)
        return result

    def _record(self, func, args: tuple, kwargs: dict, result: Any) -> None:
        name = func.overloadpacket.__name__
        inputs = input_tensors(args, kwargs)
        outputs = output_tensors(result)
        input_ids = tuple(self._tensor_id(t) for t in inputs)
        output_ids = tuple(self._tensor_id(t, create=True) for t in outputs)
        dependent = any(i in self._dependent for i in input_ids)
        if dependent:
            self._dependent.update(output_ids)
        is_view = bool(func.is_view) or name in ZERO_COPY_OPS
        input_storages = {t.untyped_storage().data_ptr() for t in inputs if t.numel() and not t.is_meta}
        new_bytes = 0
        for output in outputs:
            aliases_input = output.numel() > 0 and not output.is_meta and output.untyped_storage().data_ptr() in input_storages
            new_bytes += self.lifetimes.track(output, allocated=not is_view and not aliases_input)
        if is_view:
            cost_macs = cost_flops = read = written = 0
            per_input: tuple[int, ...] = tuple(0 for _ in inputs)
            counted = True
        else:
            cost = op_cost(name, args, kwargs, outputs)
            cost_macs, cost_flops, counted = cost.macs, cost.flops, cost.counted
            per_input = tuple(tensor_bytes(t) for t in inputs)
            read = sum(per_input)
            written = sum(o.numel() * o.element_size() for o in outputs)
        self.calls.append(
            OperatorCall(
                index=len(self.calls),
                op=f"{func.namespace}.{name}",
                module=self.module_stack[-1],
                macs=cost_macs,
                flops=cost_flops,
                bytes_read=read,
                bytes_written=written,
                new_activation_bytes=new_bytes,
                input_shapes=tuple(tuple(t.shape) for t in inputs),
                output_shapes=tuple(tuple(o.shape) for o in outputs),
                is_view=is_view,
                counted=counted,
                input_bytes=per_input,
                input_ids=input_ids,
                output_ids=output_ids,
                input_dependent=dependent,
            )
        )


@torch.no_grad()
def trace(model: nn.Module, example: torch.Tensor) -> Trace:
    """Run ``model(example)`` once (inference, no grad) and record every operator."""
    names: dict[int, str] = {}
    for path, module in model.named_modules(remove_duplicate=False):
        names.setdefault(id(module), path)  # a shared module keeps its first path
    module_stack = [""]

    def enter(module: nn.Module, _args) -> None:
        module_stack.append(names.get(id(module), module_stack[-1]))

    def leave(module: nn.Module, _args, _output) -> None:
        if len(module_stack) > 1:
            module_stack.pop()

    lifetimes = _Lifetimes()
    lifetimes.track(example, allocated=True)  # the input is live activation memory too
    recorder = _Recorder(module_stack, lifetimes, example)
    handles = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        with recorder:
            output = model(example)
    finally:
        for handle in handles:
            handle.remove()
    peak = lifetimes.peak
    del output
    return Trace(calls=recorder.calls, peak_activation_bytes=peak, input_bytes=example.numel() * example.element_size())
