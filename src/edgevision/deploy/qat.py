"""Quantization-aware fine-tuning: fake-quant INT8 in PyTorch, then ONNX Runtime's QDQ quantizer on the result.

Why not torchao's PT2E flow: on this CPU build (torch 2.13, torchao 0.18) ``prepare_qat_pt2e`` /
``convert_pt2e`` with ``X86InductorQuantizer`` run, but the converted graph cannot be exported to
ONNX here: the TorchScript exporter rejects the ``torch.export`` GraphModule, and the dynamo
exporter needs ``onnxscript``, which is not installed. ``torch.ao.quantization``'s eager flow is
deprecated in favour of torchao. So we do what both flows do during training, with the core ATen
fake-quant ops (``torch.fake_quantize_per_channel_affine`` / ``..._per_tensor_affine``, straight-
through gradients; Jacob et al. 2018, Sec. 3; Krishnamoorthi 2018, Sec. 3.2):

* every ``Conv2d`` / ``Linear`` weight is fake-quantized per output channel, symmetric int8
  (7-bit when the machine's scheme uses ``reduce_range``), the grid ORT will use;
* every ``Conv2d`` / ``Linear`` input is fake-quantized per tensor, uint8 or int8 as the scheme
  says, with an exponential moving average of min/max as the range (the QAT observer);

on the **deploy form** (BatchNorm already folded, so the grid the weights learn is the grid that
ships). After fine-tuning, the fake-quant is removed and the adapted float weights go through
:func:`~edgevision.deploy.quantize.quantize` (static QDQ), which quantizes them onto the grid they
were trained for; the input ranges learned in training are handed to ORT as fixed ranges
(``TensorQuantOverrides`` rmin/rmax on each Conv/Gemm input tensor, found by module scope:
:func:`onnx_activation_ranges`); the remaining tensors (Add outputs, ...) are calibrated. Optional distillation (Hinton et al. 2015):
the loss mixes cross-entropy with the KL divergence to the float model's softened outputs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .isa import QuantScheme, machine_scheme

__all__ = ["QatResult", "qat_finetune", "qat_distill", "FakeQuantized", "onnx_activation_ranges"]


class _WeightFakeQuant(nn.Module):
    """Parametrization: per-output-channel symmetric fake-quant of a weight."""

    def __init__(self, quant_max: int) -> None:
        super().__init__()
        self.quant_max = quant_max

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        flat = weight.detach().reshape(weight.shape[0], -1)
        scale = (flat.abs().amax(1) / self.quant_max).clamp_min(1e-8)  # (C_out,)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -self.quant_max, self.quant_max)


class FakeQuantized:
    """Fake-quant on every Conv2d/Linear of ``model`` (weights by parametrization, inputs by pre-hook)."""

    def __init__(self, model: nn.Module, scheme: QuantScheme, momentum: float = 0.9) -> None:
        from torch.nn.utils import parametrize

        self.model = model
        self.momentum = momentum
        self.ranges: dict[str, tuple[float, float]] = {}
        self.handles = []
        unsigned = scheme.activation_type == "uint8"
        self.quant_min, self.quant_max = (0, 255) if unsigned else (-128, 127)
        weight_max = 63 if scheme.reduce_range else 127
        self.layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        for name, module in self.layers:
            parametrize.register_parametrization(module, "weight", _WeightFakeQuant(weight_max))
            self.handles.append(module.register_forward_pre_hook(self._input_hook(name)))

    def _input_hook(self, name: str):
        def hook(module, args):
            (x,) = args[:1]
            low, high = float(x.detach().min()), float(x.detach().max())
            if module.training or name not in self.ranges:
                if name in self.ranges:
                    old_low, old_high = self.ranges[name]
                    low = self.momentum * old_low + (1 - self.momentum) * low
                    high = self.momentum * old_high + (1 - self.momentum) * high
                self.ranges[name] = (low, high)
            low, high = self.ranges[name]
            low, high = min(low, 0.0), max(high, 0.0)  # zero must be exactly representable (padding)
            scale = max((high - low) / (self.quant_max - self.quant_min), 1e-8)
            zero = int(round(self.quant_min - low / scale))
            zero = max(self.quant_min, min(self.quant_max, zero))
            return (torch.fake_quantize_per_tensor_affine(x, scale, zero, self.quant_min, self.quant_max), *args[1:])

        return hook

    def remove(self) -> nn.Module:
        """Drop the fake-quant; the model keeps its fine-tuned float weights."""
        from torch.nn.utils import parametrize

        for handle in self.handles:
            handle.remove()
        for _, module in self.layers:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        return self.model


@dataclass(frozen=True)
class QatResult:
    model: nn.Module  # deploy form, fine-tuned float weights (quantize it with ``quantize``)
    steps: int
    final_loss: float
    distilled: bool
    input_ranges: dict[str, tuple[float, float]]  # module path of each Conv/Linear -> learned (min, max) of its input


def onnx_activation_ranges(onnx_path, input_ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Learned module input ranges -> ONNX tensor names: the first input of each Conv/Gemm/MatMul whose scope is that module."""
    import onnx

    from ..latency.layers import onnx_node_module_path

    ranges: dict[str, tuple[float, float]] = {}
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        path = onnx_node_module_path(node.name)
        if path in input_ranges:
            low, high = input_ranges[path]
            if node.input[0] in ranges:  # one tensor read by several layers: the union of their ranges
                low, high = min(low, ranges[node.input[0]][0]), max(high, ranges[node.input[0]][1])
            ranges[node.input[0]] = (low, high)
    return ranges


def qat_finetune(
    model: nn.Module,
    data: str = "default",
    input_shape: Sequence[int] | None = None,
    *,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 1e-3,
    distill: bool = True,
    temperature: float = 2.0,
    scheme: QuantScheme | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
) -> QatResult:
    """Fine-tune ``model``'s deploy form with INT8 fake-quant on ``data``'s training split (see the module docstring)."""
    from ..datasets import BatchPreprocessor, load_data
    from ..export import input_shape_of
    from ..reparam import reparameterize

    if steps < 1:
        raise ValueError(f"QAT needs at least 1 step, got {steps}")
    channels, height, _ = input_shape_of(model, input_shape)[1:]
    splits = load_data(data, image_size=height)
    preprocess = BatchPreprocessor(height, channels, tuple(mean or splits.mean), tuple(std or splits.std), crop_padding=2, seed=seed)
    teacher = reparameterize(copy.deepcopy(model)).eval()
    student = reparameterize(copy.deepcopy(model)).train()
    fake = FakeQuantized(student, scheme or machine_scheme())
    optimizer = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    loss = torch.tensor(0.0)
    train = splits.train
    for _ in range(steps):
        index = torch.randint(0, len(train), (batch_size,), generator=generator)
        if hasattr(train, "images"):  # TensorImageDataset: one slice, no per-image indexing
            images, labels = train.images[index], train.labels[index]
        else:
            images = torch.stack([train[int(i)][0] for i in index])
            labels = torch.stack([torch.as_tensor(train[int(i)][1]) for i in index])
        inputs = preprocess(images, train=True)
        logits = student(inputs)
        loss = F.cross_entropy(logits, labels)
        if distill:
            with torch.no_grad():
                target = F.softmax(teacher(inputs) / temperature, 1)
            kl = F.kl_div(F.log_softmax(logits / temperature, 1), target, reduction="batchmean") * temperature**2
            loss = 0.5 * loss + 0.5 * kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    ranges = dict(fake.ranges)
    return QatResult(fake.remove().eval(), steps, float(loss.detach()), distill, ranges)


def _as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def qat_distill(
    model: nn.Module,
    images: torch.Tensor,
    *,
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 1e-4,
    scheme: QuantScheme | None = None,
    flip: bool = True,
    seed: int = 0,
) -> QatResult:
    """QAT for dense task models without their task loss: the fake-quantized deploy form learns to reproduce the float
    model's outputs on ``images`` (N, C, H, W), preprocessed images of the training split (the calibration set).

    The loss is the mean squared error of every output, each divided by the float output's variance over the batch
    (so box deltas, class logits, a depth map or an SR image weigh alike): output distillation (Hinton et al. 2015
    in its regression form), label-free, so any task's checkpoint can be fine-tuned. ``flip``: random horizontal
    flips of the batch (the teacher sees the same flipped images). Adam at ``lr`` with a cosine schedule.
    """
    from ..reparam import reparameterize

    if steps < 1:
        raise ValueError(f"QAT needs at least 1 step, got {steps}")
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(f"QAT needs images (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    teacher = reparameterize(copy.deepcopy(model)).eval()
    student = reparameterize(copy.deepcopy(model)).train()
    for module in student.modules():  # BatchNorm is folded in the deploy form; any left keeps its statistics
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    fake = FakeQuantized(student, scheme or machine_scheme())
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    generator = torch.Generator().manual_seed(seed)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        index = torch.randint(0, images.shape[0], (min(batch_size, images.shape[0]),), generator=generator)
        batch = images[index]
        if flip:
            flipped = torch.rand(batch.shape[0], generator=generator) < 0.5
            batch = torch.where(flipped[:, None, None, None], batch.flip(-1), batch)
        with torch.no_grad():
            targets = _as_tuple(teacher(batch))
        outputs = _as_tuple(student(batch))
        loss = sum(F.mse_loss(o, t) / t.var().clamp_min(1e-8) for o, t in zip(outputs, targets)) / len(targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    ranges = dict(fake.ranges)
    return QatResult(fake.remove().eval(), steps, float(loss.detach()), True, ranges)
