"""``output_stride``: turn a built block's stride into dilation (atrous convolution).

DeepLab (Chen et al. 2017, "Rethinking Atrous Convolution", Sec. 3.1) keeps the later feature maps
at 1/16 or 1/8 of the input by running the last strided blocks at stride 1 and dilating every conv
after them by the stride removed. :func:`dilate_block` does that to any same-padded convolutional
block without the block's own code knowing: it probes the block once to learn which convs, pools
run before its stride (they keep ``block.dilation``) and which after (``block.dilation * stride``),
then sets stride, dilation and padding in place. Parameters are untouched, so a dilated network has
the same state dict as the classification network and takes its weights. The structure follows
the spec: a block that had stride 2 keeps its projection shortcut and gains no identity branch.

A same-padded network dilated this way computes the undilated network's maps exactly on every
``2**k``-th position (checked in the tests), up to blocks that pool globally (squeeze-excite).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ShiftedAvgPool2d", "dilate_block"]


class ShiftedAvgPool2d(nn.Module):
    """k x k average pooling with stride 1, any dilation and explicit (top-left, bottom-right) padding.

    ``nn.AvgPool2d`` has no dilation; a dilated 2x2/stride-2 pool (DenseNet transition, ResNet-D
    shortcut) also needs one-sided padding to keep H x W. Zero padding counts (``count_include_pad``).
    """

    def __init__(self, kernel_size: int, dilation: int, padding: tuple[int, int]) -> None:
        super().__init__()
        self.kernel_size, self.dilation, self.padding = kernel_size, dilation, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = self.padding
        height, width = x.shape[-2:]
        x = F.pad(x, (before, after, before, after))
        total = sum(
            x[..., i * self.dilation : i * self.dilation + height, j * self.dilation : j * self.dilation + width]
            for i in range(self.kernel_size)
            for j in range(self.kernel_size)
        )
        return total / self.kernel_size**2

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, dilation={self.dilation}, padding={self.padding}"


class _PaddedMaxPool2d(nn.Module):
    """Max pooling at stride 1 with explicit -inf padding (``nn.MaxPool2d`` caps padding at half the kernel)."""

    def __init__(self, kernel_size: int, dilation: int, padding: tuple[int, int]) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size, 1, dilation=dilation)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        before, after = self.padding
        return self.pool(F.pad(x, (before, after, before, after), value=float("-inf")))


_SPATIAL = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, tuple) else (value, value)  # type: ignore[return-value]


@torch.no_grad()
def _probe(module: nn.Module, in_channels: int, size: int) -> tuple[int, dict[str, int]]:
    """One eval-mode forward of a ``size`` x ``size`` probe: output height, and the input height of every conv / pool."""
    seen: dict[str, int] = {}

    def record(name: str):
        def hook(_module: nn.Module, args: tuple) -> None:  # returns None: the input passes unchanged
            seen.setdefault(name, args[0].shape[-2])

        return hook

    handles = [child.register_forward_pre_hook(record(name)) for name, child in module.named_modules() if isinstance(child, _SPATIAL)]
    was_training = module.training
    param = next(module.parameters(), None)
    try:
        out = module.eval()(torch.zeros(1, in_channels, size, size, dtype=param.dtype if param is not None else torch.float32))
    finally:
        module.train(was_training)
        for handle in handles:
            handle.remove()
    return out.shape[-2], seen


def dilate_block(module: nn.Module, block) -> nn.Module:
    """Apply ``block.dilation`` (and, where ``block.stride`` dropped the spec's stride, stride -> dilation) in place."""
    spec_stride = getattr(block.spec, "stride", 1)
    removed = spec_stride // block.stride  # the stride this block no longer applies (1 or spec_stride)
    probe = 8 * spec_stride
    _, inputs = _probe(module, block.in_channels, probe)
    parents = {name: parent for parent_name, parent in module.named_modules() for name in _child_names(parent_name, parent)}
    where = f"{type(block.spec).__name__} at {block.path}"
    for name, op in list(module.named_modules()):
        if not isinstance(op, _SPATIAL) or name not in inputs:
            continue
        reduction = probe // inputs[name]  # 1: before the block's stride, spec_stride: after it
        dilation = block.dilation * (removed if reduction > 1 else 1)
        replacement = _dilate(op, dilation, removed > 1, where, name)
        if replacement is not None:
            setattr(parents[name], name.rsplit(".", 1)[-1], replacement)
    out_size, _ = _probe(module, block.in_channels, probe)
    expected = probe // block.stride
    if out_size != expected:
        raise ValueError(f"{where} cannot dilate: after the conversion it maps {probe} px to {out_size}, not {expected}")
    return module


def _child_names(parent_name: str, parent: nn.Module):
    for child_name, _ in parent.named_children():
        yield f"{parent_name}.{child_name}" if parent_name else child_name


def _dilate(op: nn.Module, dilation: int, drop_stride: bool, where: str, name: str) -> nn.Module | None:
    """Change one conv / pool in place; return a replacement module where the pool type cannot dilate."""
    kernel, stride = _pair(op.kernel_size), _pair(op.stride)
    if stride != (1, 1) and not drop_stride:
        raise ValueError(f"{where}: {name} has stride {stride} but the block keeps its stride")
    if max(kernel) == 1:  # 1x1: dilation means nothing; only the stride goes
        if isinstance(op, nn.Conv2d):
            op.stride = (1, 1)
        else:
            op.stride = 1
        return None
    padding = _pair(op.padding)
    old_dilation = _pair(getattr(op, "dilation", 1))
    same = all(p == d * (k - 1) // 2 for p, d, k in zip(padding, old_dilation, kernel)) and all(k % 2 for k in kernel)
    patchify = kernel == stride and padding == (0, 0) and old_dilation == (1, 1)  # 2x2 / stride 2 pooling
    if isinstance(op, nn.Conv2d):
        if not same:
            raise ValueError(f"{where}: conv {name} (kernel {kernel}, padding {padding}) is not same-padded, so it cannot dilate")
        op.stride = (1, 1)
        op.dilation = tuple(d * dilation for d in old_dilation)
        op.padding = tuple(d * (k - 1) // 2 for d, k in zip(op.dilation, kernel))
        return None
    if getattr(op, "ceil_mode", False):
        raise ValueError(f"{where}: pool {name} uses ceil_mode, so it cannot dilate")
    k = kernel[0]
    if isinstance(op, nn.MaxPool2d):
        if same:
            return _PaddedMaxPool2d(k, dilation, (dilation * (k - 1) // 2,) * 2)
        if patchify:
            return _PaddedMaxPool2d(k, dilation, (0, dilation * (k - 1)))
    elif same and dilation == 1:
        op.stride = 1
        return None
    elif same:
        return ShiftedAvgPool2d(k, dilation, (dilation * (k - 1) // 2,) * 2)
    elif patchify:
        return ShiftedAvgPool2d(k, dilation, (0, dilation * (k - 1)))
    raise ValueError(f"{where}: pool {name} (kernel {kernel}, stride {stride}, padding {padding}) cannot dilate")
