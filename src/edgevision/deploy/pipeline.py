"""``deploy()``: build every candidate form, verify each, measure the verified ones together, ship the fastest.

Candidates are runtime x precision: fp32 on ONNX Runtime / OpenVINO / ``torch.compile``; INT8 on
ONNX Runtime (PTQ with this machine's scheme, and the mixed-precision graph of :mod:`.mixed`) and
on OpenVINO (NNCF, with accuracy control when labels are meaningful). Verification:

* fp32: outputs on the verification images within ``1e-4`` of the PyTorch model's output scale;
* int8 with a trained checkpoint: top-1 on the held-out split >= float top-1 - ``max_drop``;
* int8 with random weights (no checkpoint): accuracy cannot be verified; the output SQNR against
  fp32 must reach ``min_sqnr_db`` and ``deploy.json`` says ``accuracy_verified: false``.

The verified candidates are measured interleaved (round-robin, each round a slice of the measure
protocol, :mod:`edgevision.latency.protocol`), so a load change on the machine hits all of them
alike; their samples are pooled into a median with its 95% CI. fp32 on ONNX Runtime is always
measured as the baseline, and an INT8 form measured slower than it is never shipped.
Expensive steps (export, quantization, the mixed-precision search, NNCF) write their artifact
atomically into ``OUT/.work`` with a key of the options; a rerun after a kill reuses them.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .calibration import CalibrationError, DeploySplits, deploy_splits
from .isa import cpu_features, machine_scheme
from .quantize import QuantizeError, onnx_input_shape, quantize
from .verify import logits_of, relative_error, sqnr_db, top1

__all__ = ["DeployError", "Candidate", "DeployResult", "deploy", "RUNTIMES", "PRECISIONS"]

RUNTIMES = ("ort", "openvino", "compile")
PRECISIONS = ("fp32", "int8")
FP32_PARITY = 1e-4


class DeployError(ValueError):
    """Bad options or no candidate passed verification; one line naming the failed check."""


@dataclass
class Candidate:
    runtime: str
    precision: str
    variant: str  # "fp32", "ptq", "mixed", "mixed-accuracy-only", "qat", "nncf", "nncf-accuracy-control"
    path: str | None
    verified: bool | None = None
    check: str = ""  # what was checked and the numbers
    accuracy: float | None = None  # top-1 % on the verification split
    sqnr_db: float | None = None
    parity: float | None = None
    median_ms: float | None = None
    ci_low_ms: float | None = None
    ci_high_ms: float | None = None
    runs: int = 0
    noisy: bool | None = None
    shipped: bool = False
    rejected: str = ""  # why a verified candidate is not shippable (an INT8 form slower than fp32 ORT)
    note: str = ""
    change: float | None = None  # task models: loss of the task metric vs float, in the budget's unit (> 0 is worse)
    metrics: dict | None = None  # task models: every metric of the task's evaluator
    size_checks: list | None = None  # dynamic-size task graphs: one row per other size checked (task_pipeline._judge_sizes)

    @property
    def label(self) -> str:
        return f"{self.runtime}/{self.precision}" + ("" if self.variant in ("fp32", "ptq") else f"/{self.variant}")


@dataclass
class DeployResult:
    data: dict
    shipped: Candidate
    candidates: list[Candidate] = field(default_factory=list)


def _key(**options) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]


def weights_digest(module: nn.Module | None) -> str | None:
    """Digest of a module's parameters and buffers, part of the work key: a model given by name without a checkpoint
    has fresh random weights in every process, so an fp32 graph exported by a killed run must not be reused for it."""
    if module is None:
        return None
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()[:16]


class _Work:
    """OUT/.work: artifacts of finished steps, reused when the options key matches."""

    def __init__(self, root: Path, key: str) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        stamp = root / "key.txt"
        if stamp.exists() and stamp.read_text().strip() != key:
            shutil.rmtree(root)
            root.mkdir(parents=True)
        stamp.write_text(key)

    def artifact(self, name: str, build: Callable[[Path], object]) -> Path:
        path = self.root / name
        done = self.root / f"{name}.done"
        if path.exists() and done.exists():
            return path
        build(path)
        done.write_text("ok")
        return path

    def array(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.root / f"{name}.npy"
        if path.exists():
            return np.load(path)
        from ..atomic import atomic_path

        value = compute()
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as handle:
                np.save(handle, value)
        return value


def _load(model: nn.Module | str, checkpoint: str | None, input_size: int | None, in_channels: int | None):
    """(module or None, onnx path or None, name, metadata) for what the user gave."""
    from ..checkpoint import CheckpointError, load, read_metadata

    if isinstance(model, (str, Path)) and str(model).endswith(".safetensors"):  # MODEL given as a checkpoint file
        if checkpoint and Path(checkpoint).resolve() != Path(model).resolve():
            raise DeployError(f"MODEL {str(model)!r} is a checkpoint and --checkpoint names another; give one of them")
        model, checkpoint = None, str(model)
    if isinstance(model, (str, Path)) and str(model).endswith(".onnx"):
        if checkpoint:
            raise DeployError("--checkpoint applies to a registered model, not an .onnx file; drop one of them")
        return None, Path(model), Path(model).stem, {}
    if checkpoint:
        try:
            metadata = read_metadata(checkpoint)
            module = load(checkpoint)
        except CheckpointError as error:
            raise DeployError(str(error)) from None
        name = module.spec.name
        if isinstance(model, str) and model != name:
            raise DeployError(f"checkpoint {checkpoint!r} holds a {name!r}, not a {model!r}; pass MODEL {name} or the checkpoint of a {model}")
        return module, None, name, {**metadata, "checkpoint": checkpoint}
    if isinstance(model, nn.Module):
        return model.eval(), None, getattr(getattr(model, "spec", None), "name", type(model).__name__), {}
    from ..registry import create_model

    kwargs = {}
    if in_channels is not None:
        kwargs["in_chans"] = in_channels
    try:
        module = create_model(model, **kwargs)
    except KeyError as error:
        raise DeployError(str(error).strip("'\"")) from None
    return module.eval(), None, model, {}


def _input_shape(module, onnx_path, metadata, input_size) -> tuple[int, int, int]:
    if onnx_path is not None:
        return onnx_input_shape(onnx_path)
    spec = module.spec if hasattr(module, "spec") else None
    resolution = input_size or metadata.get("preprocess", {}).get("resolution")
    if resolution is None:
        size = spec.input_size if spec is not None else 224
        resolution = size if isinstance(size, int) else size[0]
    channels = spec.in_channels if spec is not None else 3
    return channels, int(resolution), int(resolution)


def _interleaved(candidates: list[Candidate], shape, threads: int, budget_s: float, rounds: int) -> None:
    """Measure every candidate in ``rounds`` round-robin slices of the measure protocol; pool the samples."""
    from ..latency import MeasurementPlan, collect_samples, get_runtime, summarize

    example = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))
    per_slice = max(budget_s / rounds, 0.2)
    plan = MeasurementPlan(time_budget_s=per_slice, min_runs=6, max_warmup_fraction=0.2)
    samples: dict[int, list[float]] = {i: [] for i in range(len(candidates))}
    with contextlib.ExitStack() as stack:
        calls = {}
        for index, candidate in enumerate(candidates):
            adapter = get_runtime(candidate.runtime)(threads)
            target = candidate.model if candidate.runtime == "compile" else Path(candidate.path)  # type: ignore[attr-defined]
            try:
                calls[index] = stack.enter_context(adapter.prepared(target, example))
            except Exception as error:  # a runtime that cannot load its candidate: it is not shipped
                candidate.verified, candidate.check = False, f"{candidate.check}; cannot run for timing: {str(error).splitlines()[0]}"
        for _ in range(rounds):
            for index, call in calls.items():
                result = collect_samples(call, plan)
                samples[index].extend(result.latencies_s)
    for index, latencies in samples.items():
        if not latencies:
            continue
        summary = summarize(latencies, 0.95)
        candidate = candidates[index]
        candidate.median_ms, candidate.ci_low_ms, candidate.ci_high_ms = summary.median_ms, summary.ci_low_ms, summary.ci_high_ms
        candidate.runs = summary.runs
        candidate.noisy = not summary.relative_half_width <= 0.02


def _export_float(work: _Work, module: nn.Module, shape, dynamic_hw: bool = False) -> Path:
    """The re-parameterized fp32 ONNX graph at ``shape`` (C, H, W), checked against PyTorch, as a reusable work artifact
    (``dynamic_hw``: height and width left free, checked at a second size too)."""
    from ..atomic import atomic_path
    from ..export import ExportError, export_onnx

    def export(path: Path) -> None:
        with atomic_path(path) as temporary:
            try:
                export_onnx(module, temporary, shape, deploy=True, dynamic_hw=dynamic_hw)
            except ExportError as error:
                raise DeployError(f"export failed: {error}") from None

    return work.artifact("model.fp32.onnx", export)


def _measure_and_choose(candidates: list[Candidate], shape, threads: int, budget_s: float, rounds: int, say) -> tuple[Candidate, Candidate]:
    """Measure the verified candidates and the fp32 ORT baseline interleaved; mark INT8 forms slower than the baseline
    rejected; mark and return the fastest shippable one (and the baseline), or a DeployError naming each failed check."""
    verified = [c for c in candidates if c.verified]
    baseline = next(c for c in candidates if c.runtime == "ort" and c.precision == "fp32")
    timed = verified if baseline in verified else [baseline, *verified]
    say(f"measuring {len(timed)} candidates interleaved ({rounds} rounds, {budget_s:.0f} s each)")
    _interleaved(timed, shape, threads, budget_s, rounds)
    for candidate in candidates:
        if candidate.precision == "int8" and candidate.verified and candidate.median_ms and baseline.median_ms and candidate.median_ms >= baseline.median_ms:
            candidate.rejected = f"measured slower than fp32 ORT ({candidate.median_ms:.3f} >= {baseline.median_ms:.3f} ms)"
    shippable = [c for c in candidates if c.verified and not c.rejected and c.median_ms is not None and c.note != "baseline only"]
    if not shippable:
        failed = "; ".join(f"{c.label}: {c.rejected or c.check}" for c in candidates if c.note != "baseline only")
        raise DeployError(f"no candidate passed verification ({failed}); nothing was shipped")
    best = min(shippable, key=lambda c: c.median_ms)
    best.shipped = True
    return best, baseline


def deploy(
    model: nn.Module | str,
    out: str | os.PathLike,
    *,
    checkpoint: str | None = None,
    data: str | None = None,
    max_drop: float | None = None,
    runtimes: Sequence[str] = ("ort", "openvino"),
    precisions: Sequence[str] = PRECISIONS,
    input_size: int | None = None,
    calibration: int = 64,
    search: int | None = None,
    verification: int | None = None,
    method: str = "minmax",
    scheme: str | None = None,
    mixed: bool = True,
    qat_steps: int = 0,
    min_sqnr_db: float = 20.0,
    threads: int | None = None,
    budget_s: float = 10.0,
    rounds: int = 4,
    progress: Callable[[str], None] | None = None,
    max_drop_db: float | None = None,
    max_abs_rel_increase: float | None = None,
    evaluator=None,
    trained: bool | None = None,
    dynamic_size: bool = False,
) -> DeployResult:
    """Build, verify, measure and ship the fastest verified form of ``model`` into ``out``; see the module docstring.

    A dense task model (a registered task model name, a task checkpoint, or a module whose ``spec.task`` is not
    classification) is judged by its task's :class:`~edgevision.deploy.tasks.TaskEvaluator` (``evaluator``, default the
    task's own) under the task's budget: ``max_drop`` in mIoU / mAP points (segmentation / detection; top-1 points for
    classifiers, default 0.5), ``max_drop_db`` in dB of PSNR (super-resolution), ``max_abs_rel_increase`` (depth);
    see :mod:`.task_pipeline`. ``trained`` (task models; default: a checkpoint was given) says the weights are trained,
    so the task metric is verified rather than the output SQNR. ``verification`` defaults to 1000 held-out images for classifiers, 32 for tasks.
    ``dynamic_size`` (super-resolution, depth): the shipped graph takes any height and width; every candidate is also
    verified at the evaluator's other sizes (``size_checks()``), and is calibrated and timed at the task's size.
    """
    from .. import __version__
    from ..atomic import atomic_path, atomic_write_text
    from ..export import ExportError, export_onnx
    from ..latency.runtimes import _version
    from ..machine import machine_info
    from .tasks import task_dynamic_size

    say = progress or (lambda message: None)
    budgets = {"--max-drop": max_drop, "--max-drop-db": max_drop_db, "--max-abs-rel-increase": max_abs_rel_increase}
    for option, value in budgets.items():
        if value is not None and not value >= 0:
            raise DeployError(f"{option} must be >= 0, got {value}")
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise DeployError(f"unknown runtime {runtime!r} in --runtimes; choose from {', '.join(RUNTIMES)}")
    for precision in precisions:
        if precision not in PRECISIONS:
            raise DeployError(f"unknown precision {precision!r} in --precisions; choose from {', '.join(PRECISIONS)}")
    if not runtimes or not precisions:
        raise DeployError("--runtimes and --precisions need at least one entry each")
    if calibration < 1:
        raise DeployError(f"the calibration set is empty (--calibration {calibration}); give at least 1 image")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DeployError(f"--out {str(out)!r} is a file; give a directory")
    machine = machine_info()
    threads = threads or machine.physical_cores
    task, metric = _task_options(model, checkpoint, evaluator, budgets, qat_steps=qat_steps, search=search)  # fails before any build
    if dynamic_size and (metric is None or (evaluator is None and not task_dynamic_size(task))):
        raise DeployError(f"--dynamic-size is for fully convolutional task models (super-resolution, depth); a {task} model's graph keeps its input size here")
    module, onnx_path, name, metadata = _load(model, checkpoint, input_size, None)
    checkpoint = metadata.pop("checkpoint", checkpoint)  # MODEL may itself be the checkpoint file
    if metric is not None:
        return _deploy_dense(module, out, evaluator, metric, budgets[metric.budget_option], name=name, metadata=metadata, checkpoint=checkpoint,
                             data=data, calibration=calibration, verification=verification, input_size=input_size,
                             runtimes=runtimes, precisions=precisions, method=method, scheme=scheme, min_sqnr_db=min_sqnr_db,
                             threads=threads, budget_s=budget_s, rounds=rounds, machine=machine, progress=say,
                             trained=checkpoint is not None if trained is None else trained, mixed=mixed, qat_steps=qat_steps,
                             dynamic_size=dynamic_size)
    max_drop = 0.5 if max_drop is None else max_drop
    verification = 1000 if verification is None else verification
    search = 256 if search is None else search
    shape = _input_shape(module, onnx_path, metadata, input_size)
    trained = checkpoint is not None
    preprocess = metadata.get("preprocess", {})
    data = data or metadata.get("dataset") or "default"
    try:
        splits: DeploySplits = deploy_splits(
            data, shape, calibration=calibration, search=search if (mixed or (trained and "openvino" in runtimes)) else 0,
            verification=verification,
            mean=preprocess.get("mean"), std=preprocess.get("std"),
        )
    except (CalibrationError, ValueError) as error:
        raise DeployError(str(error)) from None
    if trained and module is not None:
        classes = module.spec.head.num_classes
        if classes != splits.num_classes:
            raise DeployError(f"{data} has {splits.num_classes} classes but the checkpoint predicts {classes}; deploy on its own dataset")
    out.mkdir(parents=True, exist_ok=True)
    chosen_scheme = machine_scheme() if scheme in (None, "machine") else scheme
    key = _key(model=name, checkpoint=checkpoint and os.path.getmtime(checkpoint), weights=weights_digest(module), data=data, shape=shape, calibration=calibration,
               search=search, method=method, scheme=str(chosen_scheme), max_drop=max_drop, min_sqnr=min_sqnr_db, version=__version__,
               onnx=str(onnx_path) if onnx_path else None, mixed=mixed, qat=qat_steps)
    work = _Work(out / ".work", key)

    # the float reference: the PyTorch model (or the given ONNX file in ONNX Runtime)
    say("exporting the deploy form")
    if onnx_path is None:
        float_onnx = _export_float(work, module, shape)
        with torch.no_grad():
            reference = torch.cat([module(splits.verification.images[i : i + 64]) for i in range(0, len(splits.verification), 64)]).numpy()
    else:
        float_onnx = onnx_path
        reference = logits_of("ort", float_onnx, splits.verification.images, threads)
    labels = splits.verification.labels
    accuracy_float = top1(reference, labels) if trained and labels is not None else None

    candidates: list[Candidate] = []
    if "fp32" in precisions:
        for runtime in runtimes:
            if runtime == "compile" and module is None:
                continue  # torch.compile needs the PyTorch model, not an ONNX file
            if runtime == "openvino" and not _openvino_installed():
                candidates.append(Candidate(runtime, "fp32", "fp32", None, verified=False, check="openvino not installed: pip install 'edgevision[openvino]'"))
                continue
            candidates.append(Candidate(runtime, "fp32", "fp32", str(float_onnx)))
    if not any(c.runtime == "ort" for c in candidates):  # fp32 ORT is always measured: it is the baseline
        candidates.insert(0, Candidate("ort", "fp32", "fp32", str(float_onnx), note="baseline only"))
    int8_paths: list[Candidate] = []
    if "int8" in precisions and "ort" in runtimes:
        say(f"quantizing (static PTQ, {method}, {getattr(chosen_scheme, 'name', chosen_scheme)})")
        ptq = work.artifact("model.int8.onnx", lambda path: quantize(float_onnx, splits.calibration, path, method=method, scheme=chosen_scheme))
        int8_paths.append(Candidate("ort", "int8", "ptq", str(ptq)))
        if mixed:
            say("mixed-precision search (per block: accuracy alone, profiled gain)")
            plan_holder: dict = {}

            def build_mixed(path: Path) -> None:
                from .mixed import mixed_precision

                plan = mixed_precision(float_onnx, splits.calibration, splits.search, path, max_drop=max_drop, min_sqnr_db=min_sqnr_db,
                                       labels_meaningful=trained, scheme=chosen_scheme, method=method, threads=threads,
                                       work_dir=work.root / "mixed")
                plan_holder["plan"] = plan.to_dict()
                atomic_write_text(work.root / "mixed_plan.json", json.dumps(plan.to_dict(), default=str))

            mixed_path = work.artifact("model.mixed.onnx", build_mixed)
            plan = json.loads((work.root / "mixed_plan.json").read_text())
            kept = plan["kept_float_units"]
            int8_paths.append(Candidate("ort", "int8", "mixed", str(mixed_path), note=f"{len(kept)} of {len(plan['units'])} blocks in fp32"))
            if plan.get("accuracy_only_path") and Path(plan["accuracy_only_path"]).exists():
                int8_paths.append(Candidate("ort", "int8", "mixed-accuracy-only", plan["accuracy_only_path"],
                                            note=f"{len(plan['accuracy_only_units'])} blocks in fp32, chosen on accuracy alone"))
        if qat_steps > 0 and trained and module is not None:
            say(f"quantization-aware fine-tuning ({qat_steps} steps, distilled from the float model)")

            def build_qat(path: Path) -> None:
                from .qat import onnx_activation_ranges, qat_finetune

                tuned = qat_finetune(module, data, shape, steps=qat_steps, mean=preprocess.get("mean"), std=preprocess.get("std"))
                tuned_onnx = work.root / "model.qat.fp32.onnx"
                try:
                    export_onnx(tuned.model, tuned_onnx, shape, deploy=False)
                except ExportError as error:
                    raise DeployError(f"export of the QAT model failed: {error}") from None
                ranges = onnx_activation_ranges(tuned_onnx, tuned.input_ranges)
                quantize(tuned_onnx, splits.calibration, path, method=method, scheme=chosen_scheme, activation_ranges=ranges)

            int8_paths.append(Candidate("ort", "int8", "qat", str(work.artifact("model.qat.int8.onnx", build_qat))))
    if "int8" in precisions and "openvino" in runtimes:
        from .openvino import nncf_quantize, openvino_available

        if openvino_available():
            say("quantizing for OpenVINO (NNCF)")
            nncf_runs = [("nncf", "model.nncf.xml", {})]
            if trained and len(splits.search):
                nncf_runs.append(("nncf-accuracy-control", "model.nncf_ac.xml", {"validation": splits.search, "max_drop": max_drop}))
            for variant, name, options in nncf_runs:
                try:
                    xml = work.artifact(name, lambda path, options=options: nncf_quantize(float_onnx, splits.calibration, path, **options))
                except Exception as error:  # NNCF failing on one model is a failed candidate, not a failed deploy
                    candidates.append(Candidate("openvino", "int8", variant, None, verified=False, check=f"NNCF failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"))
                    continue
                int8_paths.append(Candidate("openvino", "int8", variant, str(xml)))
        else:
            candidates.append(Candidate("openvino", "int8", "nncf", None, verified=False, check="openvino/nncf not installed: pip install 'edgevision[openvino]'"))
    candidates.extend(int8_paths)

    say("verifying candidates on the held-out split")
    images = splits.verification.images
    for candidate in candidates:
        if candidate.verified is False:
            continue
        if candidate.runtime == "compile":
            candidate.model = module  # type: ignore[attr-defined]
            try:
                compiled = torch.compile(module, backend="inductor", dynamic=False)
                with torch.no_grad():
                    output = torch.cat([compiled(images[i : i + 1]) for i in range(min(len(images), 8))]).numpy()
                torch._dynamo.reset()
            except Exception as error:
                candidate.verified, candidate.check = False, f"torch.compile failed: {str(error).splitlines()[0]}"
                continue
            expected = reference[: output.shape[0]]
        else:
            try:
                output = work.array(f"outputs_{candidate.label.replace('/', '_')}", lambda: logits_of(candidate.runtime, candidate.path, images, threads))
            except Exception as error:  # a runtime that cannot run its candidate: that candidate fails, the others go on
                candidate.verified, candidate.check = False, f"cannot run on {candidate.runtime}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
                continue
            expected = reference
        candidate.sqnr_db = round(sqnr_db(expected, output), 2)
        if trained and labels is not None and output.shape[0] == len(labels):
            candidate.accuracy = round(top1(output, labels), 3)
        if candidate.precision == "fp32":
            candidate.parity = relative_error(expected, output)
            candidate.verified = candidate.parity <= FP32_PARITY
            candidate.check = f"fp32 parity {candidate.parity:.1e} of the output scale ({'<=' if candidate.verified else '>'} {FP32_PARITY:.0e})"
        elif trained:
            floor = accuracy_float - max_drop
            candidate.verified = candidate.accuracy >= floor
            candidate.check = f"top-1 {candidate.accuracy:.2f}% {'>=' if candidate.verified else '<'} float {accuracy_float:.2f}% - {max_drop} pt"
        else:
            candidate.verified = candidate.sqnr_db >= min_sqnr_db
            candidate.check = f"output SQNR {candidate.sqnr_db:.1f} dB {'>=' if candidate.verified else '<'} {min_sqnr_db} dB (accuracy not verified: random weights)"
    best, baseline = _measure_and_choose(candidates, shape, threads, budget_s, rounds, say)

    # ship: the file(s), then deploy.json and report.md (deploy.json last: its presence means a complete deploy)
    shipped_files = _ship(best, out)
    accuracy_verified = trained and labels is not None
    result = {
        "model": name,
        "runtime": best.runtime,
        "precision": best.precision,
        "variant": best.variant,
        "files": shipped_files,
        "input_shape": [1, *shape],
        "median_ms": best.median_ms,
        "ci_low_ms": best.ci_low_ms,
        "ci_high_ms": best.ci_high_ms,
        "fp32_ort_median_ms": baseline.median_ms,
        "speedup_vs_fp32_ort": baseline.median_ms / best.median_ms if best.median_ms else None,
        "accuracy_float": accuracy_float,
        "accuracy_deployed": best.accuracy if accuracy_verified else None,
        "accuracy_verified": accuracy_verified,
        "accuracy_note": "" if accuracy_verified else "no checkpoint (random weights): accuracy was not verified; int8 judged on output SQNR and speed only",
        "max_drop": max_drop,
        "verified": True,
        "verification": best.check,
        "data": data,
        "splits": {"calibration": splits.calibration.source, "search": splits.search.source, "verification": splits.verification.source},
        "quantization": {"method": method, "scheme": getattr(chosen_scheme, "to_dict", lambda: chosen_scheme)(), "per_channel": True,
                         "format": "QDQ", "cpu": cpu_features().to_dict()},
        "mixed_precision": json.loads((work.root / "mixed_plan.json").read_text()) if (work.root / "mixed_plan.json").exists() else None,
        "threads": threads,
        "machine": machine.to_dict(),
        "versions": {"edgevision": __version__, **{p: _version(p) for p in ("torch", "onnx", "onnxruntime", "openvino", "nncf")}},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "candidates": [_row(c) for c in candidates],
    }
    atomic_write_text(out / "report.md", _report(result))
    atomic_write_text(out / "deploy.json", json.dumps(result, indent=2, default=str) + "\n")
    return DeployResult(result, best, candidates)


_BUDGET_TASKS = {"--max-drop-db": "super-resolution (PSNR dB)", "--max-abs-rel-increase": "depth (abs-rel)"}


def _task_of(model, checkpoint, evaluator) -> str:
    """The task of what the user gave, without building it: the evaluator's, the checkpoint's metadata, or the registry's."""
    from ..checkpoint import CheckpointError, read_metadata
    from ..registry import UnknownModelError, model_task

    if evaluator is not None:
        return evaluator.task
    if isinstance(model, nn.Module):
        return getattr(getattr(model, "spec", None), "task", None) or "classification"
    file = str(model) if str(model).endswith(".safetensors") else checkpoint
    if file:
        try:
            metadata = read_metadata(file)
        except CheckpointError as error:
            raise DeployError(str(error)) from None
        return metadata.get("task") or "classification"  # classifier checkpoints predate the "task" key
    if str(model).endswith((".onnx", ".safetensors")):
        return "classification"
    try:
        return model_task(str(model))
    except (UnknownModelError, KeyError) as error:
        raise DeployError(str(error).strip("'\"")) from None


def _task_options(model, checkpoint, evaluator, budgets: dict, *, qat_steps: int, search: int | None):
    """(task, its TaskMetric or None for classifiers) after checking the options that depend on the task."""
    from .tasks import task_metric

    task = _task_of(model, checkpoint, evaluator)
    name = getattr(getattr(model, "spec", None), "name", None) if isinstance(model, nn.Module) else str(model)
    if task == "classification":
        for option in ("--max-drop-db", "--max-abs-rel-increase"):
            if budgets[option] is not None:
                raise DeployError(f"{option} is a {_BUDGET_TASKS[option]} budget; {name} is a classifier: use --max-drop (points of top-1)")
        return task, None
    if search is not None:
        raise DeployError(f"--search sizes the classifier's mixed-precision search; {name} is a {task} model: drop --search")
    metric = evaluator.metric if evaluator is not None else task_metric(task)
    for option, value in budgets.items():
        if value is not None and option != metric.budget_option:
            raise DeployError(f"{option} does not apply to {task} model {name}: its budget is {metric.budget_option} in {metric.unit} ({metric.label})")
    return task, metric


def _deploy_dense(module, out: Path, evaluator, metric, budget: float | None, *, name: str, metadata: dict, checkpoint, data,
                  calibration: int, verification: int | None, input_size, trained: bool, **options) -> DeployResult:
    """The task-model branch of :func:`deploy`: build the task's evaluator (unless given) and run :func:`deploy_task`."""
    from .tasks import task_evaluator
    from .task_pipeline import deploy_task

    if module is None:
        raise DeployError("an .onnx file is deployed as a classifier; give a task model's name or checkpoint to judge it by its task metric")
    if evaluator is None:
        try:
            evaluator = task_evaluator(module, metadata, data, calibration=calibration, verification=verification or 32, input_size=input_size,
                                       work_dir=out / ".work-data")
        except (ValueError, OSError) as error:
            raise DeployError(str(error).strip().splitlines()[0]) from None
    out.mkdir(parents=True, exist_ok=True)
    return deploy_task(module, out, evaluator, name=name, trained=trained, budget=metric.default_budget if budget is None else budget,
                       checkpoint=checkpoint, **options)


def _openvino_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def _row(candidate: Candidate) -> dict:
    row = {k: v for k, v in asdict(candidate).items() if k not in ("path",)}
    row["label"] = candidate.label
    return row


def _ship(best: Candidate, out: Path) -> list[str]:
    from ..atomic import atomic_path

    if best.runtime == "compile":
        # torch.compile has no file of its own: ship the verified fp32 ONNX graph it was checked against, say so
        sources = [(Path(best.path), "model.onnx")]
    elif best.path.endswith(".xml"):
        sources = [(Path(best.path), "model.xml"), (Path(best.path).with_suffix(".bin"), "model.bin")]
    else:
        sources = [(Path(best.path), "model.onnx")]
    for stale in ("model.onnx", "model.xml", "model.bin"):
        if stale not in [name for _, name in sources]:
            with contextlib.suppress(FileNotFoundError):
                (out / stale).unlink()
    for source, name in sources:
        with atomic_path(out / name) as temporary:
            shutil.copyfile(source, temporary)
    return [name for _, name in sources]


def _report(result: dict) -> str:
    def ms(value):
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"# Deploy: {result['model']}",
        "",
        f"Shipped **{result['runtime']} / {result['precision']}** ({result['variant']}): {ms(result['median_ms'])} ms "
        f"(95% CI {ms(result['ci_low_ms'])}-{ms(result['ci_high_ms'])}), "
        f"{result['speedup_vs_fp32_ort']:.2f}x fp32 ONNX Runtime ({ms(result['fp32_ort_median_ms'])} ms); files: {', '.join(result['files'])}.  ",
        f"Verification: {result['verification']}.  ",
        f"Accuracy: float {result['accuracy_float']}, deployed {result['accuracy_deployed']} (max drop {result['max_drop']} pt)"
        if result["accuracy_verified"] else f"Accuracy: {result['accuracy_note']}.",
        "",
        f"Machine: {result['machine']['cpu_model']} ({result['machine']['physical_cores']} cores), {result['quantization']['cpu']['summary']}; "
        f"fingerprint `{result['machine']['fingerprint']}`; {result['threads']} threads, batch 1, input {'x'.join(map(str, result['input_shape']))}.  ",
        f"INT8 scheme: {result['quantization']['scheme']}; calibration {result['quantization']['method']} on {result['splits']['calibration']}; "
        f"verification on {result['splits']['verification']}.  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        "| candidate | verified | check | top-1 % | SQNR dB | median ms | 95% CI | runs | shipped |",
        "|---|---|---|---:|---:|---:|---|---:|---|",  # "no: <reason>" when verified but not shippable
    ]
    for row in result["candidates"]:
        ci = "-" if row["ci_low_ms"] is None else f"{row['ci_low_ms']:.3f}-{row['ci_high_ms']:.3f}"
        lines.append(
            f"| {row['label']}{' (' + row['note'] + ')' if row['note'] else ''} | {row['verified']} | {row['check']} | "
            f"{'-' if row['accuracy'] is None else row['accuracy']} | {'-' if row['sqnr_db'] is None else row['sqnr_db']} | "
            f"{ms(row['median_ms'])} | {ci} | {row['runs']} | {'**yes**' if row['shipped'] else ('no: ' + row['rejected'] if row['rejected'] else '')} |"
        )
    return "\n".join(lines + mixed_table(result.get("mixed_precision"), "top-1 drop alone")) + "\n"


def mixed_table(plan: dict | None, drop_label: str) -> list[str]:
    """report.md lines of a mixed-precision plan (``MixedPlan.to_dict()``): one row per unit; none without a plan."""
    if not plan:
        return []
    lines = ["", f"## Mixed precision ({plan['criterion']}; met: {plan['met']})", "",
             f"| unit | ops | fp32 ms (profiled) | int8 ms | SQNR alone dB | {drop_label} | decision |", "|---|---|---:|---:|---:|---:|---|"]
    for unit in plan["units"]:
        lines.append(f"| {unit['name']} | {', '.join(unit['ops'])} | {unit['float_ms']:.3f} | {unit['int8_ms']:.3f} | "
                     f"{unit['sqnr_alone_db']} | {unit['drop_alone']} | {unit['decision']} |")
    return lines
