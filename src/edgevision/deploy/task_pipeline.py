"""``deploy()`` for dense task models: the fastest form whose task metric stays within the task's budget.

The same candidates, measurement and shipping as the classifier path (:mod:`.pipeline`), judged by
the task's :class:`~edgevision.deploy.tasks.TaskEvaluator` instead of top-1:

* the graph is exported, calibrated and verified at the task's resolution (the checkpoint's
  training resolution/crop; ``--input-size`` overrides) with a fixed H x W and a dynamic batch —
  static INT8 scales are calibrated for one input size, and the latency is measured at it;
* fp32 candidates: every output within ``1e-4`` of the PyTorch model's output scale on held-out inputs;
* INT8 candidates with a trained checkpoint: the evaluator's primary metric on the held-out split
  (mIoU, mAP, PSNR, abs-rel) within the budget of the float model's (a drop, or for abs-rel an
  increase, in the metric's own unit); without a checkpoint (random weights) the metric means
  nothing, so the output SQNR against fp32 must reach ``min_sqnr_db`` and deploy.json says
  ``accuracy_verified: false``;
* INT8 forms on ONNX Runtime: static PTQ (this CPU's scheme, the ``method`` calibration); the per-unit
  mixed-precision search of :mod:`.mixed` judged by the task metric within the budget (units are split
  below ``TASK_UNIT_NODES`` nodes, since a task model's backbone is one module; ranked by their output
  SQNR alone, because one task evaluation per unit costs minutes on a 38-unit detector); QAT by output
  distillation from the float model (:func:`~edgevision.deploy.qat.qat_distill`, label-free) on the
  calibration images; NNCF for OpenVINO. The mixed search scores units on the evaluator's held-out
  split, the split verification uses (the protocol gives one), and deploy.json's criterion says so.

Detectors: the raw head graph is quantized, verified and measured; the chosen head is then composed
with the fp32 decode + NMS graph into the one shipped ``model.onnx``, checked in ONNX Runtime to give
the detections of head + ``model.postprocess`` (:mod:`edgevision.detection.deploy_eval`); deploy.json's
``postprocess`` says what was checked, and the head alone ships only when that check fails.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from .tasks import TaskEvaluator, flat_outputs, onnx_forward, openvino_forward, torch_forward
from .pipeline import mixed_table
from .verify import relative_error, sqnr_db

__all__ = ["deploy_task"]


def deploy_task(
    module: nn.Module,
    out: Path,
    evaluator: TaskEvaluator,
    *,
    name: str,
    trained: bool,
    budget: float,
    checkpoint: str | None,
    runtimes: Sequence[str],
    precisions: Sequence[str],
    method: str,
    scheme,
    min_sqnr_db: float,
    threads: int,
    budget_s: float,
    rounds: int,
    machine,
    progress: Callable[[str], None],
    mixed: bool = True,
    qat_steps: int = 0,
    dynamic_size: bool = False,
):
    from .. import __version__
    from ..atomic import atomic_write_text
    from ..latency.runtimes import _version
    from .calibration import ImageSet
    from .isa import cpu_features, machine_scheme
    from .pipeline import FP32_PARITY, Candidate, DeployError, DeployResult, _export_float, _key, _measure_and_choose, _openvino_installed, _row, _ship, _Work, weights_digest
    from .quantize import quantize

    say = progress
    metric = evaluator.metric
    shape = tuple(int(d) for d in evaluator.input_shape)
    chosen_scheme = machine_scheme() if scheme in (None, "machine") else scheme
    size_checks = []
    if dynamic_size:
        if not callable(getattr(evaluator, "size_checks", None)):
            raise DeployError(f"--dynamic-size: a {evaluator.task} graph keeps its input size here (its evaluator has no checks at other sizes); "
                              "dynamic-size graphs are built for super-resolution and depth models")
        size_checks = evaluator.size_checks()
    key = _key(model=name, task=evaluator.task, checkpoint=checkpoint and os.path.getmtime(checkpoint), weights=weights_digest(module), data=evaluator.data, shape=shape,
               method=method, scheme=str(chosen_scheme), version=__version__, mixed=mixed, qat=qat_steps, trained=trained,
               dynamic=dynamic_size)  # the budget is not in the key: artifacts do not depend on it
    work = _Work(out / ".work", key)
    calibration = evaluator.calibration_images()
    if calibration.ndim != 4 or calibration.shape[0] == 0 or tuple(calibration.shape[1:]) != shape:
        raise DeployError(f"the {evaluator.task} calibration set is {tuple(calibration.shape)}, not N x {'x'.join(map(str, shape))} with N >= 1; "
                          "give more images (--calibration) or another --data")
    held_out = evaluator.verification_images()

    say(f"exporting the deploy form at {'x'.join(map(str, shape))}" + (" (any height and width)" if dynamic_size else ""))
    float_onnx = _export_float(work, module, shape, dynamic_hw=dynamic_size)
    reference = flat_outputs(torch_forward(module)(held_out))
    size_references = [_flat_over(torch_forward(module), check.inputs) for check in size_checks]
    float_metrics, float_size_metrics = None, []
    if trained:
        say(f"evaluating the float model ({metric.label})")
        float_metrics = evaluator.evaluate(torch_forward(module))
        float_size_metrics = [check.evaluate(torch_forward(module)) for check in size_checks]

    candidates: list[Candidate] = []
    if "fp32" in precisions:
        for runtime in runtimes:
            if runtime == "openvino" and not _openvino_installed():
                candidates.append(Candidate(runtime, "fp32", "fp32", None, verified=False, check="openvino not installed: pip install 'edgevision[openvino]'"))
                continue
            candidates.append(Candidate(runtime, "fp32", "fp32", str(float_onnx)))
    if not any(c.runtime == "ort" and c.precision == "fp32" for c in candidates):  # the baseline is always measured
        candidates.insert(0, Candidate("ort", "fp32", "fp32", str(float_onnx), note="baseline only"))
    if "int8" in precisions and "ort" in runtimes:
        say(f"quantizing (static PTQ, {method}, {getattr(chosen_scheme, 'name', chosen_scheme)}, {len(calibration)} calibration images)")
        ptq = work.artifact("model.int8.onnx", lambda path: quantize(float_onnx, calibration, path, method=method, scheme=chosen_scheme,
                                                                     calibration_count=len(calibration)))
        candidates.append(Candidate("ort", "int8", "ptq", str(ptq)))
        if mixed:
            candidates.extend(_mixed_candidates(work, float_onnx, evaluator, calibration, held_out, float_metrics, budget=budget, trained=trained,
                                                min_sqnr_db=min_sqnr_db, scheme=chosen_scheme, method=method, threads=threads, say=say))
        if qat_steps > 0 and trained:
            say(f"quantization-aware fine-tuning ({qat_steps} steps, distilled from the float model's outputs)")
            candidates.append(Candidate("ort", "int8", "qat", str(work.artifact("model.qat.int8.onnx", lambda path: _build_qat(
                path, work, module, calibration, shape, qat_steps, method=method, scheme=chosen_scheme, dynamic_hw=dynamic_size)))))
    if "int8" in precisions and "openvino" in runtimes:
        from .openvino import nncf_quantize, openvino_available

        if openvino_available():
            say("quantizing for OpenVINO (NNCF)")
            images = ImageSet(calibration, None, evaluator.data)
            try:
                xml = work.artifact("model.nncf.xml", lambda path: nncf_quantize(float_onnx, images, path))
                candidates.append(Candidate("openvino", "int8", "nncf", str(xml)))
            except Exception as error:  # NNCF failing on one model is a failed candidate, not a failed deploy
                candidates.append(Candidate("openvino", "int8", "nncf", None, verified=False, check=f"NNCF failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}"))
        else:
            candidates.append(Candidate("openvino", "int8", "nncf", None, verified=False, check="openvino/nncf not installed: pip install 'edgevision[openvino]'"))

    say(f"verifying candidates ({metric.label} on the held-out split)" if trained else "verifying candidates (parity / output SQNR)")
    for candidate in candidates:
        if candidate.verified is False:
            continue
        try:
            if candidate.runtime == "compile":
                candidate.model = module  # type: ignore[attr-defined]
                compiled = torch.compile(module, backend="inductor", dynamic=dynamic_size)  # dynamic: one graph for every checked size
                forward = torch_forward(compiled)
            elif candidate.runtime == "openvino":
                forward = openvino_forward(candidate.path, threads)
            else:
                forward = onnx_forward(candidate.path, threads)
            output = flat_outputs(forward(held_out))
            metrics = evaluator.evaluate(forward) if trained else None
            size_outputs = [_flat_over(forward, check.inputs) for check in size_checks]
            size_metrics = [check.evaluate(forward) for check in size_checks] if trained else []
        except Exception as error:  # a runtime that cannot run its candidate: that candidate fails, the others go on
            candidate.verified, candidate.check = False, f"cannot run on {candidate.runtime}: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
            continue
        finally:
            if candidate.runtime == "compile":
                torch._dynamo.reset()
        candidate.sqnr_db = round(sqnr_db(reference, output), 2)
        if metrics is not None:
            candidate.metrics = metrics  # type: ignore[attr-defined]
            candidate.accuracy = round(float(metrics[metric.name]), 6)
            candidate.change = round(metric.change(float_metrics[metric.name], metrics[metric.name]), 6)  # type: ignore[attr-defined]
        if candidate.precision == "fp32":
            candidate.parity = relative_error(reference, output)
            candidate.verified = candidate.parity <= FP32_PARITY
            candidate.check = f"fp32 parity {candidate.parity:.1e} of the output scale ({'<=' if candidate.verified else '>'} {FP32_PARITY:.0e})"
        elif trained:
            word = "drop" if metric.higher_is_better else "increase"
            candidate.verified = candidate.change <= budget
            candidate.check = (f"{metric.label} {candidate.accuracy:.4g} vs float {float_metrics[metric.name]:.4g}: {word} {candidate.change:.3g} "
                               f"{metric.unit} {'<=' if candidate.verified else '>'} {budget} ({metric.budget_option})")
        else:
            candidate.verified = candidate.sqnr_db >= min_sqnr_db
            candidate.check = f"output SQNR {candidate.sqnr_db:.1f} dB {'>=' if candidate.verified else '<'} {min_sqnr_db} dB ({metric.label} not verified: random weights)"
        if size_checks:
            _judge_sizes(candidate, size_checks, size_references, size_outputs, float_size_metrics, size_metrics, metric=metric, budget=budget,
                         trained=trained, min_sqnr_db=min_sqnr_db)
    baseline = next(c for c in candidates if c.runtime == "ort" and c.precision == "fp32")
    if baseline.verified is not True:
        raise DeployError(f"the fp32 ONNX Runtime baseline failed verification ({baseline.check}); nothing was shipped")
    best, baseline = _measure_and_choose(candidates, shape, threads, budget_s, rounds, say)

    shipped_files = _ship(best, out)
    float_value = float_metrics[metric.name] if float_metrics else None
    postprocess = None
    if hasattr(module, "postprocess") and hasattr(module, "deployable"):
        postprocess = _ship_with_nms(module, best, out, work, held_out, shape, threads, budget_s, rounds, say)
    result = {
        "model": name,
        "task": evaluator.task,
        "runtime": best.runtime,
        "precision": best.precision,
        "variant": best.variant,
        "files": shipped_files,
        "input_shape": [1, *shape],
        "input_size_fixed": not dynamic_size,
        "dynamic_size": dynamic_size,
        "size_checks": best.size_checks,
        "median_ms": best.median_ms,
        "ci_low_ms": best.ci_low_ms,
        "ci_high_ms": best.ci_high_ms,
        "fp32_ort_median_ms": baseline.median_ms,
        "speedup_vs_fp32_ort": baseline.median_ms / best.median_ms if best.median_ms else None,
        "metric": metric.name,
        "metric_label": metric.label,
        "higher_is_better": metric.higher_is_better,
        "budget_option": metric.budget_option,
        "budget": budget,
        "budget_unit": metric.unit,
        "metric_float": float_value,
        "metric_deployed": best.accuracy if trained else None,
        "metric_change": getattr(best, "change", None) if trained else None,
        "metrics_float": float_metrics,
        "metrics_deployed": getattr(best, "metrics", None) if trained else None,
        "accuracy_float": float_value,
        "accuracy_deployed": best.accuracy if trained else None,
        "accuracy_verified": trained,
        "accuracy_note": "" if trained else f"no checkpoint (random weights): {metric.label} was not verified; int8 judged on output SQNR and speed only",
        "max_drop": budget,
        "verified": True,
        "verification": best.check,
        "postprocess": postprocess,
        "data": evaluator.data,
        "calibration_images": int(calibration.shape[0]),
        "quantization": {"method": method, "scheme": getattr(chosen_scheme, "to_dict", lambda: chosen_scheme)(), "per_channel": True,
                         "format": "QDQ", "cpu": cpu_features().to_dict()},
        "mixed_precision": json.loads((work.root / "mixed_plan.json").read_text()) if (work.root / "mixed_plan.json").exists() else None,
        "qat_steps": qat_steps if trained else 0,
        "threads": threads,
        "machine": machine.to_dict(),
        "versions": {"edgevision": __version__, **{p: _version(p) for p in ("torch", "onnx", "onnxruntime", "openvino", "nncf")}},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "candidates": [_task_row(c, _row) for c in candidates],
    }
    atomic_write_text(out / "report.md", _report(result))
    atomic_write_text(out / "deploy.json", json.dumps(result, indent=2, default=str) + "\n")
    return DeployResult(result, best, candidates)


#: a unit (what mixed precision keeps in float or not) of a task model is split while it holds more nodes than this:
#: about one inverted-residual block or one SR residual step (a classifier's units are its spec's blocks)
TASK_UNIT_NODES = 12


def _mixed_candidates(work, float_onnx, evaluator, calibration, held_out, float_metrics, *, budget, trained, min_sqnr_db, scheme, method, threads,
                      say) -> list:
    """The per-unit mixed-precision graph (and, when the profile kept some unit in float for speed, the accuracy-only
    one) judged by the task metric within ``budget`` (trained) or the output SQNR (random weights)."""
    from ..atomic import atomic_write_text
    from .calibration import ImageSet
    from .mixed import mixed_precision
    from .pipeline import Candidate
    from .tasks import onnx_forward

    metric = evaluator.metric
    say(f"mixed-precision search (per unit: {metric.label if trained else 'SQNR'} alone, profiled gain)")

    def change(path) -> float:
        return metric.change(float_metrics[metric.name], evaluator.evaluate(onnx_forward(path, threads))[metric.name])

    def build(path: Path) -> None:
        plan = mixed_precision(float_onnx, ImageSet(calibration, None, evaluator.data), ImageSet(held_out, None, evaluator.data), path,
                               max_drop=budget, min_sqnr_db=min_sqnr_db, labels_meaningful=False, scheme=scheme, method=method, threads=threads,
                               work_dir=work.root / "mixed", metric_change=change if trained else None,
                               metric_label=f"{metric.label} on the evaluator's held-out split (the one verification uses), in {metric.unit},",
                               split_larger_than=TASK_UNIT_NODES, all_outputs=True, unit_metric=False)
        atomic_write_text(work.root / "mixed_plan.json", json.dumps(plan.to_dict(), default=str))

    path = work.artifact("model.mixed.onnx", build)
    plan = json.loads((work.root / "mixed_plan.json").read_text())
    kept = plan["kept_float_units"]
    found = [Candidate("ort", "int8", "mixed", str(path), note=f"{len(kept)} of {len(plan['units'])} units in fp32")]
    if plan.get("accuracy_only_path") and Path(plan["accuracy_only_path"]).exists():
        found.append(Candidate("ort", "int8", "mixed-accuracy-only", plan["accuracy_only_path"],
                               note=f"{len(plan['accuracy_only_units'])} units in fp32, chosen on accuracy alone"))
    return found


def _flat_over(forward, batches) -> "np.ndarray":
    """Every output of ``forward`` on each batch, flattened and concatenated (the batches may differ in size)."""
    import numpy as np

    return np.concatenate([flat_outputs(forward(batch)) for batch in batches])


def _judge_sizes(candidate, checks, references, outputs, float_metrics, metrics, *, metric, budget: float, trained: bool, min_sqnr_db: float) -> None:
    """A dynamic-size candidate must also pass at each check's size: fp32 parity with PyTorch, INT8 within the task budget
    of the float model's metric at that size (trained) or the output SQNR (random weights). Records ``size_checks``."""
    from .pipeline import FP32_PARITY

    rows, failures = [], []
    for index, check in enumerate(checks):
        row = {"size": check.label, "shapes": check.shapes(), "sqnr_db": round(sqnr_db(references[index], outputs[index]), 2)}
        if candidate.precision == "fp32":
            row["parity"] = relative_error(references[index], outputs[index])
            row["within"] = row["parity"] <= FP32_PARITY
            reason = f"fp32 parity {row['parity']:.1e} > {FP32_PARITY:.0e}"
        elif trained:
            row.update(metric=float(metrics[index][metric.name]), float_metric=float(float_metrics[index][metric.name]))
            row["change"] = round(metric.change(row["float_metric"], row["metric"]), 6)
            row["within"] = row["change"] <= budget
            reason = f"{metric.label} {'drop' if metric.higher_is_better else 'increase'} {row['change']:.3g} {metric.unit} > {budget}"
        else:
            row["within"] = row["sqnr_db"] >= min_sqnr_db
            reason = f"output SQNR {row['sqnr_db']:.1f} dB < {min_sqnr_db} dB"
        rows.append(row)
        if not row["within"]:
            failures.append(f"at {check.label} ({', '.join(row['shapes'][:3])}{', ...' if len(row['shapes']) > 3 else ''}): {reason}")
    candidate.size_checks = rows
    if candidate.verified and failures:
        candidate.verified = False
        candidate.check = f"{candidate.check}; but {'; '.join(failures)}"
    elif candidate.verified:
        candidate.check = f"{candidate.check}; also within at {', '.join(c.label for c in checks)}"


def _build_qat(path: Path, work, module, calibration, shape, steps: int, *, method: str, scheme, dynamic_hw: bool = False) -> None:
    """QAT by output distillation on the calibration images, then static QDQ with the learned input ranges."""
    from ..export import ExportError, export_onnx
    from .pipeline import DeployError
    from .qat import onnx_activation_ranges, qat_distill
    from .quantize import quantize

    tuned = qat_distill(module, calibration, steps=steps, scheme=scheme)
    tuned_onnx = work.root / "model.qat.fp32.onnx"
    try:
        export_onnx(tuned.model, tuned_onnx, shape, deploy=False, dynamic_hw=dynamic_hw)
    except ExportError as error:
        raise DeployError(f"export of the QAT model failed: {error}") from None
    quantize(tuned_onnx, calibration, path, method=method, scheme=scheme, calibration_count=len(calibration),
             activation_ranges=onnx_activation_ranges(tuned_onnx, tuned.input_ranges))


def _ship_with_nms(module, best, out: Path, work, held_out, shape, threads: int, budget_s: float, rounds: int, say) -> dict:
    """Detectors: replace the shipped head graph by the head composed with the fp32 decode + NMS graph (one ONNX),
    after checking in ONNX Runtime that it gives the detections of head + ``postprocess``; deploy.json's ``postprocess``."""
    from ..atomic import atomic_path
    from ..detection.deploy_eval import check_composed, compose_with_postprocess
    from .pipeline import Candidate, _interleaved

    head_outputs = len(_outputs(best.path)) if best.path and best.path.endswith(".onnx") else None
    in_python = (f"decode and NMS run in fp32 ({type(module).__name__}.postprocess), the form the metric was verified on; "
                 "`edgevision export` writes the fp32 graph with NonMaxSuppression")
    if head_outputs is None:  # an OpenVINO IR: its head is shipped, post-processing stays in Python
        return {"in_graph": False, "note": f"model.xml is the raw head graph; {in_python}"}
    say("composing the shipped head with the fp32 decode + NMS graph")
    size = int(shape[1])
    composed = work.root / f"model.{best.variant}.{best.precision}.nms.onnx"
    try:
        graph = compose_with_postprocess(best.path, module, composed, image_size=size)
        check = check_composed(composed, best.path, module, held_out, image_size=size, threads=threads)
    except Exception as error:  # a detector whose post-processing does not trace: ship the head, say why
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return {"in_graph": False, "note": f"model.onnx is the raw head graph ({head_outputs} outputs): composing with NMS failed ({reason}); {in_python}"}
    if not check["same"]:
        return {"in_graph": False, "check": check,
                "note": f"model.onnx is the raw head graph ({head_outputs} outputs): the composed graph failed its check ({check['mismatch']}); {in_python}"}
    with atomic_path(out / "model.onnx") as temporary:
        temporary.write_bytes(composed.read_bytes())
    timed = Candidate("ort", best.precision, f"{best.variant}+nms", str(composed))
    _interleaved([timed], shape, threads, budget_s / 2, max(1, rounds // 2))
    return {
        "in_graph": True,
        "note": (f"model.onnx is the {best.precision} head composed with the fp32 decode + NonMaxSuppression graph "
                 f"({graph['head_nodes']} + {graph['postprocess_nodes']} nodes); outputs batch_index, boxes, scores, labels; "
                 f"same detections as head + {type(module).__name__}.postprocess on {check['compared_images']} of {check['images']} held-out images "
                 f"({check['tied_images']} with tied scores left out), inner head outputs identical (error {check['head_outputs_error']:.1g})"),
        "check": check,
        "ops": graph["ops"],
        "median_ms_with_nms": timed.median_ms,
        "ci_low_ms_with_nms": timed.ci_low_ms,
        "ci_high_ms_with_nms": timed.ci_high_ms,
    }


def _outputs(path: str) -> list[str]:
    import onnx

    return [o.name for o in onnx.load(path, load_external_data=False).graph.output]


def _task_row(candidate, row) -> dict:
    data = row(candidate)
    data.pop("model", None)
    data["metric"] = data.pop("accuracy")
    data["metric_change"] = getattr(candidate, "change", None)
    data["metrics"] = getattr(candidate, "metrics", None)
    return data


def _size_summary(row: dict) -> str:
    detail = (f"parity {row['parity']:.1e}" if "parity" in row else
              f"change {row['change']:.3g}" if "change" in row else f"SQNR {row['sqnr_db']:.1f} dB")
    return f"{row['size']} ({detail})"


def _report(result: dict) -> str:
    def ms(value):
        return "-" if value is None else f"{value:.3f}"

    def number(value):
        return "-" if value is None else f"{value + 0.0:.4g}"  # + 0.0: a change of -0.0 prints as 0, not "-0"

    lines = [
        f"# Deploy: {result['model']} ({result['task']})",
        "",
        f"Shipped **{result['runtime']} / {result['precision']}** ({result['variant']}): {ms(result['median_ms'])} ms "
        f"(95% CI {ms(result['ci_low_ms'])}-{ms(result['ci_high_ms'])}), "
        f"{result['speedup_vs_fp32_ort']:.2f}x fp32 ONNX Runtime ({ms(result['fp32_ort_median_ms'])} ms); files: {', '.join(result['files'])}.  ",
        f"Verification: {result['verification']}.  ",
        (f"{result['metric_label']}: float {number(result['metric_float'])}, deployed {number(result['metric_deployed'])} "
         f"(budget {result['budget']} {result['budget_unit']}, {result['budget_option']})") if result["accuracy_verified"] else f"{result['accuracy_note']}.",
        "",
        f"Data: {result['data']}; input {'x'.join(map(str, result['input_shape']))} "
        + ("(fixed H x W); " if result["input_size_fixed"] else
           f"(any H x W: calibrated and timed at this size, verified also at {', '.join(_size_summary(r) for r in result['size_checks'] or [])}); ")
        + f"INT8 scheme {(result['quantization']['scheme'] or {}).get('name') if isinstance(result['quantization']['scheme'], dict) else result['quantization']['scheme']}, calibration {result['quantization']['method']} on {result['calibration_images']} images.  ",
    ]
    if result.get("postprocess"):
        post = result["postprocess"]
        timing = (f" Shipped graph with NMS: {ms(post['median_ms_with_nms'])} ms (measured after the choice, not interleaved)."
                  if post.get("median_ms_with_nms") is not None else "")
        lines.append(f"Post-processing: {post['note']}.{timing}  ")
    lines += [
        f"Machine: {result['machine']['cpu_model']} ({result['machine']['physical_cores']} cores), {result['quantization']['cpu']['summary']}; "
        f"fingerprint `{result['machine']['fingerprint']}`; {result['threads']} threads, batch 1.  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        f"| candidate | verified | check | {result['metric_label']} | change ({result['budget_unit']}) | SQNR dB | median ms | 95% CI | runs | shipped |",
        "|---|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in result["candidates"]:
        ci = "-" if row["ci_low_ms"] is None else f"{row['ci_low_ms']:.3f}-{row['ci_high_ms']:.3f}"
        lines.append(
            f"| {row['label']}{' (' + row['note'] + ')' if row['note'] else ''} | {row['verified']} | {row['check']} | {number(row['metric'])} | "
            f"{number(row['metric_change'])} | {'-' if row['sqnr_db'] is None else row['sqnr_db']} | {ms(row['median_ms'])} | {ci} | {row['runs']} | "
            f"{'**yes**' if row['shipped'] else ('no: ' + row['rejected'] if row['rejected'] else '')} |"
        )
    return "\n".join(lines + mixed_table(result.get("mixed_precision"), f"{result['metric_label']} change alone")) + "\n"
