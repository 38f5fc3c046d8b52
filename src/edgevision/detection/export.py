"""ONNX export of a detector *with* its post-processing: decode, softmax and ``NonMaxSuppression`` in the graph.

``edgevision export NAME`` calls this through the model's ``export_deployable_onnx`` (``--raw`` writes
the bare head outputs instead). It writes the deployable detector (:meth:`SSDLite.deployable`) and
checks ONNX Runtime against PyTorch on a random batch: same selected (image, class, prior) rows, boxes
and scores within ``atol``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path

__all__ = ["export_detector_onnx"]

OUTPUT_NAMES = ("batch_index", "boxes", "scores", "labels")


def export_detector_onnx(model, path, *, image_size: int | None = None, opset: int = 17, atol: float = 1e-4, seed: int = 0) -> dict:
    """Write ``path``; return ``{"path", "nodes", "detections_checked", "max_box_error"}``."""
    import onnx
    import onnxruntime as ort

    size = image_size or model.spec.input_size
    deployed = model.deployable(size).eval()
    images = torch.randn(2, model.spec.in_channels, size, size, generator=torch.Generator().manual_seed(seed))
    path = Path(path)
    with atomic_path(path) as temporary:
        with warnings.catch_warnings():  # the tracer's notes on shape checks and index ops: checked below in ORT instead
            warnings.simplefilter("ignore")
            torch.onnx.export(deployed, (images,), str(temporary), input_names=["images"], output_names=list(OUTPUT_NAMES),
                              opset_version=opset, dynamo=False,
                              dynamic_axes={"images": {0: "batch"}, **{name: {0: "detections"} for name in OUTPUT_NAMES}})
        graph = onnx.load(str(temporary)).graph
        if "NonMaxSuppression" not in {node.op_type for node in graph.node}:
            raise RuntimeError("the exported detector has no NonMaxSuppression node")
        session = ort.InferenceSession(str(temporary), providers=["CPUExecutionProvider"])
        got = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            expected = [t.numpy() for t in deployed(images)]
        if not (np.array_equal(got[0], expected[0]) and np.array_equal(got[3], expected[3])):
            raise RuntimeError("ONNX Runtime selected different detections than PyTorch")
        score_error = float(np.abs(got[2] - expected[2]).max(initial=0.0))
        # among equal scores the operator's choice of prior is implementation-defined (an untrained head
        # scores every prior alike): compare boxes only for rows whose score is unique in its image and class
        keys = np.stack([expected[0], expected[3], np.round(expected[2] / atol)], axis=1)
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        unique = counts[inverse.reshape(-1)] == 1
        box_error = float(np.abs(got[1][unique] - expected[1][unique]).max(initial=0.0))
        if box_error > atol * max(size, 1) or score_error > atol:
            raise RuntimeError(f"ONNX Runtime boxes/scores differ from PyTorch by {box_error:.3g}/{score_error:.3g}")
    return {"path": str(path), "nodes": len(graph.node), "detections_checked": int(len(expected[0])), "max_box_error": box_error}


class ExportsWithNMS:
    """Mixin for detectors with ``deployable()``: the export protocol read by ``edgevision export`` (the detector
    with NMS in the graph, checked in ONNX Runtime)."""

    def export_deployable_onnx(self, path, *, image_size=None, opset: int = 17, atol: float = 1e-4) -> dict:
        return export_detector_onnx(self, path, image_size=image_size, opset=opset, atol=atol)
