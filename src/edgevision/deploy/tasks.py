"""Deploying dense task models (segmentation, detection, super-resolution, depth) under the task's own metric budget.

A classifier's INT8 form is judged by top-1; a segmenter's by mIoU, a detector's by COCO mAP, a
super-resolution net's by PSNR in dB and a depth net's by abs-rel. Rather than a table of task
types inside the pipeline, every task package provides a :class:`TaskEvaluator` (the protocol
below): its calibration images at the task's resolution, a few held-out inputs, and "evaluate this
runnable on the held-out split -> metric dict", where a *runnable* is any callable
``images (N, C, H, W) -> output(s)`` — the PyTorch model, an ONNX Runtime session
(:func:`onnx_forward`) or an OpenVINO compiled model (:func:`openvino_forward`). The deploy
pipeline, ``quantize_segmentation`` and ``quantize_sr`` all judge INT8 graphs through it
(:func:`quantize_within_budget`), so "float metric, INT8 metric, drop, within budget" is computed
one way for every task.

Task packages register their evaluator factory by module: ``edgevision.<package>.deploy_eval``
exposes ``METRIC`` (its :class:`TaskMetric`) and ``deploy_evaluator(model, metadata, data, *, calibration,
verification, input_size, work_dir)``; :func:`task_metric` / :func:`task_evaluator` import the one named by the
checkpoint's task.

A fully convolutional task (super-resolution, depth) also offers ``size_checks()`` (:class:`SizeCheck`): held-out
inputs at other sizes, with which ``deploy --dynamic-size`` verifies a graph whose height and width are free.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

__all__ = [
    "TaskMetric",
    "TaskEvaluator",
    "Forward",
    "ForwardModule",
    "onnx_forward",
    "openvino_forward",
    "torch_forward",
    "flat_outputs",
    "task_evaluator",
    "task_metric",
    "task_dynamic_size",
    "quantize_within_budget",
    "TASK_EVALUATOR_MODULES",
    "BudgetJudgement",
    "SizeCheck",
]

#: images (N, C, H, W) float -> one tensor or a tuple of tensors, in the model's output order
Forward = Callable[[torch.Tensor], "torch.Tensor | tuple[torch.Tensor, ...]"]

#: task -> module providing ``deploy_evaluator``; a plug-in lookup by the checkpoint's task name
TASK_EVALUATOR_MODULES = {
    "segmentation": "edgevision.segmentation.deploy",
    "detection": "edgevision.detection.deploy_eval",
    "super-resolution": "edgevision.super_resolution.int8",
    "depth": "edgevision.depth.deploy_eval",
}


@dataclass(frozen=True)
class TaskMetric:
    """The primary metric of a task and how an INT8 budget on it is expressed."""

    name: str  # key in the evaluator's metric dict, e.g. "miou"
    label: str  # for people, e.g. "mIoU"
    higher_is_better: bool
    budget_option: str  # the deploy CLI flag that sets the budget, e.g. "--max-drop"
    unit: str  # unit of the budget, e.g. "mIoU points"
    scale: float = 1.0  # metric value x scale = budget units (100: a [0, 1] fraction in points)
    default_budget: float = 0.5

    def change(self, float_value: float, int8_value: float) -> float:
        """The loss in budget units (a drop for higher-is-better metrics, an increase otherwise); > 0 is worse."""
        delta = (float_value - int8_value) if self.higher_is_better else (int8_value - float_value)
        return float(delta * self.scale)

    def to_dict(self) -> dict:
        return asdict(self)


@runtime_checkable
class TaskEvaluator(Protocol):
    """What a task gives the deploy pipeline (see the module docstring)."""

    task: str
    metric: TaskMetric
    input_shape: tuple[int, int, int]  # (C, H, W) the graph is exported, calibrated and verified at
    data: str  # where the images came from, for deploy.json

    def calibration_images(self) -> torch.Tensor:
        """(N, C, H, W) preprocessed images from the training split."""

    def verification_images(self) -> torch.Tensor:
        """A few held-out preprocessed inputs (N, C, H, W): fp32 parity and output SQNR are computed on them."""

    def evaluate(self, forward: Forward) -> dict:
        """The task's metrics of ``forward`` on the held-out split; includes ``metric.name``."""


@dataclass
class SizeCheck:
    """Held-out inputs at one size other than the evaluator's ``input_shape``, for a graph with a free height and width
    (``deploy --dynamic-size``): ``inputs`` are batches ``[N, C, h, w]`` (several when the images differ in size) that
    fp32 parity / output SQNR are computed on, ``evaluate(forward)`` the task's metrics at that size.

    A fully convolutional task's evaluator offers them as ``size_checks() -> list[SizeCheck]`` (optional: only tasks with
    it can ship a dynamic-size graph)."""

    label: str                                # e.g. "48x80 crops", "whole images"
    inputs: list[torch.Tensor]
    evaluate: Callable[["Forward"], dict]

    def shapes(self) -> list[str]:
        return sorted({"x".join(map(str, batch.shape[-2:])) for batch in self.inputs})


@dataclass
class BudgetJudgement:
    metric: str
    float_value: float
    int8_value: float
    change: float
    budget: float
    within: bool

    def to_dict(self) -> dict:
        return asdict(self)


class ForwardModule(nn.Module):
    """An ``nn.Module`` face for a runnable, so a task's own evaluate function (which calls ``model(x)``,
    ``model.eval()``, ``model.to(device)`` and task methods like ``postprocess``) runs it unchanged.
    ``methods`` are attributes copied on (e.g. ``postprocess=model.postprocess``)."""

    def __init__(self, forward: Forward, **methods) -> None:
        super().__init__()
        self._run = forward
        for name, value in methods.items():
            setattr(self, name, value)

    def forward(self, images: torch.Tensor):
        return self._run(images.detach().cpu().float())


def _one_or_tuple(outputs: Sequence[np.ndarray]):
    tensors = tuple(torch.from_numpy(np.asarray(o)) for o in outputs)
    return tensors[0] if len(tensors) == 1 else tensors


def torch_forward(module: nn.Module) -> Forward:
    module = module.eval()

    def run(images: torch.Tensor):
        with torch.no_grad():
            return module(images)

    return run


def onnx_forward(path: str | os.PathLike, threads: int = 1) -> Forward:
    """ONNX Runtime (CPU) session of ``path`` as a runnable: every output, one image at a time when the batch is fixed."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0]

    def run(images: torch.Tensor):
        array = images.numpy().astype(np.float32)
        if isinstance(fixed, int) and fixed != array.shape[0]:
            rows = [session.run(None, {name: array[i : i + fixed]}) for i in range(0, array.shape[0], fixed)]
            return _one_or_tuple([np.concatenate(parts) for parts in zip(*rows)])
        return _one_or_tuple(session.run(None, {name: array}))

    return run


def openvino_forward(path: str | os.PathLike, threads: int = 1) -> Forward:
    """An OpenVINO IR (``.xml``) or ONNX file on the CPU plugin (fp32 inference precision) as a runnable, image by image."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    count = len(compiled.outputs)

    def run(images: torch.Tensor):
        rows = []
        for i in range(images.shape[0]):
            result = request.infer({0: images[i : i + 1].numpy()})
            rows.append([np.array(result[compiled.output(k)]) for k in range(count)])
        return _one_or_tuple([np.concatenate(parts) for parts in zip(*rows)])

    return run


def flat_outputs(outputs) -> np.ndarray:
    """Every output of a runnable, flattened and concatenated (the vector parity and SQNR are computed on)."""
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    return np.concatenate([np.asarray(o.detach().cpu().float() if isinstance(o, torch.Tensor) else o, dtype=np.float32).ravel() for o in outputs])


def _task_module(task: str):
    if task not in TASK_EVALUATOR_MODULES:
        raise ValueError(f"no deploy evaluator for task {task!r}; tasks with one: {', '.join(TASK_EVALUATOR_MODULES)}")
    return importlib.import_module(TASK_EVALUATOR_MODULES[task])


def task_metric(task: str) -> TaskMetric:
    """The primary metric (and budget flag) of ``task``, without loading any data."""
    return _task_module(task).METRIC


def task_dynamic_size(task: str) -> bool:
    """Whether ``task``'s package builds dynamic-size graphs (its module's ``DYNAMIC_SIZE``; its evaluator has ``size_checks()``)."""
    return bool(getattr(_task_module(task), "DYNAMIC_SIZE", False))


def task_evaluator(model: nn.Module, metadata: dict, data: str | None, *, calibration: int = 32, verification: int = 64,
                   input_size: int | None = None, work_dir: str | os.PathLike | None = None) -> TaskEvaluator:
    """The evaluator of ``model``'s task (``model.spec.task``), from its package's ``deploy_evaluator``."""
    task = metadata.get("task") or getattr(getattr(model, "spec", None), "task", "classification")
    factory = _task_module(task).deploy_evaluator
    evaluator = factory(model, metadata, data, calibration=calibration, verification=verification, input_size=input_size,
                        work_dir=Path(work_dir) if work_dir is not None else None)
    assert isinstance(evaluator, TaskEvaluator), f"{TASK_EVALUATOR_MODULES[task]}.deploy_evaluator broke the TaskEvaluator protocol"
    return evaluator


def quantize_within_budget(float_onnx: str | os.PathLike, evaluator: TaskEvaluator, output: str | os.PathLike, budget: float, *,
                           float_metrics: dict | None = None, methods: Sequence[str] = ("minmax",), scheme=None,
                           threads: int = 1) -> dict:
    """Quantize ``float_onnx`` (static PTQ, :func:`~edgevision.deploy.quantize.quantize`) with each calibration method in
    turn until the INT8 graph's metric is within ``budget`` of the float one; the best graph tried ends at ``output``.

    ``float_metrics`` are the float model's metrics (default: ``float_onnx`` evaluated in ONNX Runtime).
    Returns ``{"float": metrics, "int8": metrics, "judgement": BudgetJudgement dict, "method", "accepted", "tried", "path"}``.
    """
    from .quantize import quantize

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    metric = evaluator.metric
    reference = float_metrics if float_metrics is not None else evaluator.evaluate(onnx_forward(float_onnx, threads))
    images = evaluator.calibration_images()
    tried = []
    for method in methods:
        candidate = output.with_suffix(f".{method}.onnx")
        quantize(float_onnx, images, candidate, method=method, scheme=scheme, calibration_count=len(images))
        metrics = evaluator.evaluate(onnx_forward(candidate, threads))
        change = metric.change(reference[metric.name], metrics[metric.name])
        tried.append({"method": method, "metrics": metrics, "change": change, "path": str(candidate)})
        if change <= budget:
            break
    best = min(tried, key=lambda t: t["change"])
    Path(best["path"]).replace(output)
    for other in tried:
        if other is not best:
            Path(other["path"]).unlink(missing_ok=True)
    judgement = BudgetJudgement(metric.name, float(reference[metric.name]), float(best["metrics"][metric.name]), best["change"], budget,
                                best["change"] <= budget)
    return {"float": reference, "int8": best["metrics"], "judgement": judgement.to_dict(), "method": best["method"],
            "accepted": judgement.within, "tried": [{k: v for k, v in t.items() if k != "path"} for t in tried], "path": str(output)}
