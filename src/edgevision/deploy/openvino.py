"""OpenVINO INT8 through NNCF: ``nncf.quantize`` and ``nncf.quantize_with_accuracy_control``.

Optional (``pip install 'edgevision[openvino]'``): nothing here is imported unless asked. NNCF's
default post-training pipeline (min/max ranges on calibration images, fast bias correction,
symmetric int8 weights, per-channel) targets OpenVINO's CPU plugin. The accuracy-controlled
variant returns layers to float, most harmful first, until the metric on the validation images is
within ``max_drop`` (NNCF docs, "Quantization with accuracy control"); it is used only when
labels are meaningful (a trained checkpoint). The IR is written as ``.xml`` + ``.bin``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import numpy as np

from .calibration import ImageSet

__all__ = ["openvino_available", "nncf_quantize"]


def openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None and importlib.util.find_spec("nncf") is not None


@contextlib.contextmanager
def _quiet():
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def nncf_quantize(
    float_onnx: str | os.PathLike,
    calibration: ImageSet,
    output_xml: str | os.PathLike,
    *,
    validation: ImageSet | None = None,
    max_drop: float | None = None,
) -> Path:
    """Quantize ``float_onnx`` for OpenVINO; with ``validation`` and ``max_drop`` (points of top-1) under accuracy control."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(float_onnx))
    batches = [calibration.images[i : i + 1].numpy() for i in range(len(calibration))]
    calibration_set = nncf.Dataset(batches)
    with _quiet():
        if validation is not None and max_drop is not None and validation.labels is not None:
            pairs = [(validation.images[i : i + 1].numpy(), int(validation.labels[i])) for i in range(len(validation))]

            def top1(compiled, items) -> float:
                output = compiled.outputs[0]
                correct = [int(np.argmax(compiled(image)[output])) == label for image, label in items]
                return float(np.mean(correct))

            quantized = nncf.quantize_with_accuracy_control(
                model,
                calibration_set,
                nncf.Dataset(pairs),
                validation_fn=top1,
                max_drop=max_drop / 100.0,  # our max_drop is in points, NNCF's metric is a fraction
                drop_type=nncf.DropType.ABSOLUTE,
                subset_size=len(batches),
            )
        else:
            quantized = nncf.quantize(model, calibration_set, subset_size=len(batches))
    output_xml = Path(output_xml)
    ov.save_model(quantized, str(output_xml))
    return output_xml
