"""Run a deploy candidate on images and judge it: logits, top-1, output SQNR, fp32 parity.

SQNR (signal-to-quantization-noise ratio) is ``20 log10(||y|| / ||y - y_q||)`` in dB over all
logits, the measure of ONNX Runtime's QDQ debugging tools
(``onnxruntime.quantization.qdq_loss_debug.compute_signal_to_quantization_noice_ratio``); 20 dB
means the noise is a tenth of the signal. A randomly initialised network's logits are nearly its
classifier bias for every image, so on logits the ratio hardly tells layers apart; the
mixed-precision search therefore ranks blocks by the SQNR of *their own output tensor*
(:func:`onnx_outputs`), as ``qdq_loss_debug``'s activation matching does. fp32 parity is ``max |y - y_ref| / max |y_ref|``, the
check :func:`edgevision.export_onnx` applies.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["onnx_logits", "onnx_outputs", "openvino_logits", "top1", "sqnr_db", "relative_error", "logits_of"]


def onnx_logits(path: str | os.PathLike, images: torch.Tensor, threads: int = 1, batch: int = 64) -> np.ndarray:
    """(N, K) outputs of the ONNX graph at ``path`` in ONNX Runtime (CPU), in batches."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0]
    step = fixed if isinstance(fixed, int) else batch
    outputs = [session.run(None, {name: images[i : i + step].numpy()})[0] for i in range(0, images.shape[0], step)]
    return np.concatenate(outputs).astype(np.float32)


def onnx_outputs(path: str | os.PathLike, images: torch.Tensor, tensors: list[str], threads: int = 1) -> dict[str, np.ndarray]:
    """Values of intermediate ``tensors`` of an ONNX graph on ``images``: the graph is copied with them as extra outputs."""
    import tempfile

    import onnx

    model = onnx.load(str(path))
    present = {output.name for output in model.graph.output}
    for name in tensors:
        if name not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgevision-outputs-") as directory:
        augmented = f"{directory}/augmented.onnx"
        onnx.save(model, augmented)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(augmented, options, providers=["CPUExecutionProvider"])
        values = session.run(tensors, {session.get_inputs()[0].name: images.numpy()})
    return dict(zip(tensors, values))


def openvino_logits(path: str | os.PathLike, images: torch.Tensor, threads: int = 1) -> np.ndarray:
    """(N, K) outputs of an OpenVINO IR (``.xml``) or ONNX file on the OpenVINO CPU plugin, one image at a time."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    rows = [np.array(request.infer({0: images[i : i + 1].numpy()})[0]) for i in range(images.shape[0])]
    return np.concatenate(rows).astype(np.float32)


def logits_of(runtime: str, path: str | os.PathLike, images: torch.Tensor, threads: int = 1) -> np.ndarray:
    return openvino_logits(path, images, threads) if runtime == "openvino" else onnx_logits(path, images, threads)


def top1(logits: np.ndarray, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return float((logits.argmax(1) == labels.numpy()).mean() * 100.0)


def sqnr_db(reference: np.ndarray, other: np.ndarray) -> float:
    """SQNR in dB of ``other`` against ``reference``, ``20 log10(||reference|| / ||reference - other||)``."""
    eps = np.finfo(np.float32).eps
    signal = max(float(np.linalg.norm(reference)), eps)
    noise = max(float(np.linalg.norm(reference - other)), eps)
    return float(20.0 * np.log10(signal / noise))


def relative_error(reference: np.ndarray, other: np.ndarray) -> float:
    """max |other - reference| / max |reference| (the export check's measure)."""
    return float(np.abs(reference - other).max() / max(float(np.abs(reference).max()), 1e-12))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    return Path(a).resolve() == Path(b).resolve()
