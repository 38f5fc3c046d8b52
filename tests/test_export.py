"""ONNX export: every registered model (one VGG for its family) exports, and ONNX Runtime matches PyTorch; bad files are refused."""

from __future__ import annotations

import onnx
import pytest
import torch
from helpers import randomize_batchnorm, test_input_size
from torch import nn

import edgevision as ev
from edgevision.export import ExportError, ExportMismatchError


SIMPLIFY_PARAMS_CAP = 20_000_000


def _graph_ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


# Size cap: a VGG export writes and verifies a 530 MB file (the 102M-parameter first classifier layer);
# vgg11_bn stands for the family (its layers are the others' layers) and covers the matmul pooling path.
EXPORT_MODELS = [name for name in ev.list_models() if name in ("vgg11_bn",) or not name.startswith("vgg")]


@pytest.mark.parametrize("name", EXPORT_MODELS)
def test_every_zoo_model_exports_and_matches_pytorch(name, tmp_path):
    model = randomize_batchnorm(ev.create_model(name))  # non-trivial BatchNorm: the fold must be right
    path = tmp_path / f"{name}.onnx"
    size = test_input_size(name)
    # Size cap: onnxslim dominates the export time of big classics (VGG-16, HorNet-S); it is exercised by
    # every model under the cap, and parity with PyTorch is verified for all.
    simplify = ev.count_params(model) <= SIMPLIFY_PARAMS_CAP
    report = ev.export_onnx(model, path, (3, size, size), simplify=simplify)  # verified at batch 1 and 2 (dynamic batch)
    assert path.is_file() and report.size_bytes == path.stat().st_size
    assert max(report.max_relative_error.values()) <= 1e-4
    assert "BatchNormalization" not in _graph_ops(path)  # deploy form: folded everywhere
    batch_dim = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param == "batch"
    assert model.training  # the caller's model is left as it was
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left behind


def test_export_at_224_static_batch(tmp_path):
    report = ev.export_onnx(ev.create_model("mobilenetv3_large_100"), tmp_path / "m.onnx", dynamic_batch=False)
    assert report.input_shape == (1, 3, 224, 224) and report.simplified
    shape = onnx.load(str(tmp_path / "m.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in shape] == [1, 3, 224, 224]


def test_train_form_export_keeps_the_model_unfused(tmp_path):
    model = randomize_batchnorm(ev.create_model("repvgg_a0"))
    train = ev.export_onnx(model, tmp_path / "train.onnx", (3, 64, 64), deploy=False)
    deploy = ev.export_onnx(model, tmp_path / "deploy.onnx", (3, 64, 64))
    assert not train.deploy and train.nodes > deploy.nodes  # three branches per block vs one conv
    assert max(train.max_relative_error.values()) <= 1e-4


class _CountsCalls(nn.Module):
    """Differs between the traced graph and later PyTorch calls: the trace freezes the counter."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.conv(x) + float(self.calls)


def test_mismatching_file_is_refused_naming_output_and_error(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"previous")  # an earlier file at the path must survive a refused export
    with pytest.raises(ExportMismatchError, match=r"output 'logits' differs from PyTorch by \d\.\d\de[+-]\d\d of the output scale"):
        ev.export_onnx(_CountsCalls(), path, (3, 16, 16))
    assert path.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["bad.onnx"]


def test_shape_the_model_cannot_take_is_an_export_error(tmp_path):
    with pytest.raises(ExportError, match="cannot take input shape 1x4x64x64"):
        ev.export_onnx(ev.create_model("mobileone_s0"), tmp_path / "m.onnx", (4, 64, 64))
    assert list(tmp_path.iterdir()) == []


def test_unwritable_path_fails_before_exporting(tmp_path):
    with pytest.raises(OSError, match="does not exist; create it first"):
        ev.export_onnx(ev.create_model("mobileone_s0"), tmp_path / "missing" / "m.onnx", (3, 64, 64))


def test_model_without_spec_needs_a_shape(tmp_path):
    with pytest.raises(ValueError, match="input_shape is required"):
        ev.export_onnx(nn.Conv2d(3, 3, 1), tmp_path / "m.onnx")


def test_onnx_output_matches_a_fresh_pytorch_run(tmp_path):
    import onnxruntime as ort

    model = randomize_batchnorm(ev.create_model("shufflenet_v2_x0_5")).eval()
    ev.export_onnx(model, tmp_path / "s.onnx", (3, 64, 64))
    x = torch.randn(3, 3, 64, 64)  # a batch size never used during export
    (actual,) = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert actual.shape == (3, 1000)
    assert torch.allclose(torch.from_numpy(actual), expected, atol=1e-4 * expected.abs().max().item())


class _TraceBakesFloorForCeil(nn.Module):
    """Ceil written as -(-n // 2) on a traced size: ONNX integer Div truncates, so the graph reshapes wrongly."""

    def forward(self, x):
        tokens = x.flatten(2)[:, :, ::2]  # (B, C, ceil(N / 2))
        n = x.shape[2] * x.shape[3]
        return tokens.reshape(x.shape[0], -1, -(-n // 2))


def test_a_graph_onnx_runtime_cannot_run_is_refused_with_one_line(tmp_path):
    with pytest.raises(ExportMismatchError, match="ONNX Runtime cannot run the exported graph"):
        ev.export_onnx(_TraceBakesFloorForCeil(), tmp_path / "bad.onnx", (3, 3, 3), dynamic_batch=False, simplify=False)
    assert not list(tmp_path.iterdir())
