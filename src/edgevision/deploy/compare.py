"""fp32 vs INT8 forms of one zoo model, measured interleaved: what ``bench --precision int8`` and ``bench_quant`` report.

Forms: ``ort/fp32`` (the verified deploy-form export), ``ort/int8`` (static PTQ with this
machine's scheme), ``ort/int8/mixed`` (:mod:`.mixed`, SQNR criterion: random weights),
``openvino/fp32`` and ``openvino/int8`` (NNCF). Calibration uses the embedded data resized to the
model's input, 32 images by default. Every form's output SQNR against fp32 is recorded with its
latency; the "deployed" column is the fastest form, fp32 unless an INT8 form measured faster.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from .calibration import deploy_splits
from .pipeline import Candidate, _interleaved
from .quantize import quantize
from .verify import logits_of, sqnr_db

__all__ = ["FORMS", "compare_forms", "int8_markdown"]

FORMS = ("ort/fp32", "ort/int8", "ort/int8/mixed", "openvino/fp32", "openvino/int8")


def compare_forms(
    name: str,
    *,
    resolution: int = 224,
    forms: Sequence[str] = ("ort/fp32", "ort/int8"),
    threads: int | None = None,
    budget_s: float = 10.0,
    rounds: int = 3,
    calibration: int = 32,
    data: str = "default",
    work_dir: str | os.PathLike | None = None,
) -> dict:
    """Build ``forms`` of registered model ``name`` and measure them interleaved; one dict of numbers."""
    from ..export import export_onnx
    from ..machine import machine_info
    from ..registry import create_model

    threads = threads or machine_info().physical_cores
    model = create_model(name).eval()
    shape = (model.spec.in_channels, resolution, resolution)
    scratch = tempfile.TemporaryDirectory(prefix="edgevision-compare-") if work_dir is None else None
    work = Path(work_dir or scratch.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        float_onnx = work / f"{name}.fp32.onnx"
        export_onnx(model, float_onnx, shape, deploy=True)
        splits = deploy_splits(data, shape, calibration=calibration, search=64 if "ort/int8/mixed" in forms else 0, verification=32)
        candidates: list[Candidate] = []
        for form in forms:
            runtime, precision, *variant = form.split("/")
            if precision == "fp32":
                path = float_onnx
            elif runtime == "ort" and not variant:
                path = Path(quantize(float_onnx, splits.calibration, work / f"{name}.int8.onnx").path)
            elif runtime == "ort":
                from .mixed import mixed_precision

                plan = mixed_precision(float_onnx, splits.calibration, splits.search, work / f"{name}.mixed.onnx", labels_meaningful=False,
                                       threads=threads, work_dir=work / "mixed")
                path = Path(plan.path)
            else:
                from .openvino import nncf_quantize

                path = nncf_quantize(float_onnx, splits.calibration, work / f"{name}.nncf.xml")
            candidates.append(Candidate(runtime, precision, variant[0] if variant else ("fp32" if precision == "fp32" else "ptq"), str(path)))
        images = splits.verification.images
        reference = logits_of("ort", float_onnx, images, threads)
        for candidate in candidates:
            candidate.sqnr_db = round(sqnr_db(reference, logits_of(candidate.runtime, candidate.path, images, threads)), 2)
            candidate.verified = True
        _interleaved(candidates, shape, threads, budget_s, rounds)
        baseline = next((c for c in candidates if c.label == "ort/fp32"), None)
        fastest = min((c for c in candidates if c.median_ms is not None), key=lambda c: c.median_ms)
        row = {"model": name, "resolution": resolution, "threads": threads, "deployed": fastest.label, "deployed_ms": fastest.median_ms}
        for candidate in candidates:
            row[candidate.label] = {
                "median_ms": candidate.median_ms, "ci_low_ms": candidate.ci_low_ms, "ci_high_ms": candidate.ci_high_ms,
                "runs": candidate.runs, "noisy": candidate.noisy, "sqnr_db": candidate.sqnr_db,
                "speedup_vs_fp32_ort": baseline.median_ms / candidate.median_ms if baseline and candidate.median_ms else None,
            }
        if baseline:
            row["deployed_speedup"] = baseline.median_ms / fastest.median_ms
        return row
    finally:
        if scratch is not None:
            scratch.cleanup()


def int8_markdown(rows: Sequence[dict], forms: Sequence[str]) -> list[str]:
    """A markdown table: per model, median ms of each form, its speed-up over fp32 ORT, and the deployed form."""
    header = "| model | " + " | ".join(f"{form} ms (×)" for form in forms) + " | deployed | deployed × |"
    lines = [header, "|---|" + "---:|" * len(forms) + "---|---:|"]
    for row in rows:
        cells = []
        for form in forms:
            entry = row.get(form)
            if not entry or entry["median_ms"] is None:
                cells.append("-")
                continue
            speedup = entry["speedup_vs_fp32_ort"]
            cells.append(f"{entry['median_ms']:.2f} ({speedup:.2f}×)" if speedup else f"{entry['median_ms']:.2f}")
        lines.append(f"| {row['model']} | " + " | ".join(cells) + f" | {row['deployed']} | {row.get('deployed_speedup', float('nan')):.2f}× |")
    return lines


def add_int8_columns(
    models: Sequence[str],
    out: str | os.PathLike,
    *,
    resolution: int = 224,
    threads: int | None = None,
    budget_s: float = 10.0,
    forms: Sequence[str] = ("ort/fp32", "ort/int8"),
    on_model=None,
) -> Path:
    """``bench --precision int8``: per model fp32/INT8 ORT interleaved, resumable (``int8.jsonl``), appended to report.md."""
    import json

    from ..atomic import atomic_write_text
    from ..machine import machine_info
    from .isa import cpu_features, machine_scheme

    out = Path(out)
    store = out / "int8.jsonl"
    rows = [json.loads(line) for line in store.read_text().splitlines() if line.strip()] if store.exists() else []
    done = {row["model"] for row in rows if row.get("resolution") == resolution}
    failures = []
    for name in models:
        if name in done:
            continue
        if on_model:
            on_model(name)
        try:
            row = compare_forms(name, resolution=resolution, forms=forms, threads=threads, budget_s=budget_s)
        except Exception as error:  # one model that cannot be quantized must not stop the others; it is listed
            failures.append(f"{name}: {str(error).splitlines()[0] if str(error) else type(error).__name__}")
            continue
        rows.append(row)
        with open(store, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, default=str) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    scheme = machine_scheme()
    section = [
        "",
        "## INT8 (ONNX Runtime static QDQ, per-channel weights)",
        "",
        f"CPU: {cpu_features().summary}; scheme {scheme.name} ({scheme.activation_type} activations, {scheme.weight_type} weights, "
        f"reduce_range={scheme.reduce_range}); calibration: 32 embedded images; random weights (speed only); "
        f"{threads or machine_info().physical_cores} threads, measured interleaved. `deployed` = the fastest form.",
        "",
        *int8_markdown([row for row in rows if row.get("resolution") == resolution], forms),
        *([""] + [f"- failed: {line}" for line in failures] if failures else []),
    ]
    atomic_write_text(out / "int8.md", "\n".join(section).lstrip() + "\n")
    report = out / "report.md"
    if report.exists():
        text = report.read_text(encoding="utf-8").split("\n## INT8 (ONNX Runtime static QDQ")[0].rstrip("\n")
        atomic_write_text(report, text + "\n" + "\n".join(section) + "\n")
    return out / "int8.md"
