"""`edgevision measure` and `edgevision export`: output, JSON, and one-line errors with no partial files."""

from __future__ import annotations

import json

import pytest

from edgevision.cli import main
from edgevision.latency.runtimes import OpenVinoRuntime

SMALL = "mobilenetv3_small_075"


def test_measure_writes_json_with_context(tmp_path, capsys):
    out = tmp_path / "result.json"
    argv = ["measure", SMALL, "--runtime", "ort", "--input", "3x32x32", "--threads", "1", "--budget", "0.5", "--deploy", "--json", str(out)]
    assert main(argv) == 0
    (result,) = json.loads(out.read_text())
    assert result["context"]["runtime"] == "ort" and result["context"]["threads"] == 1
    assert result["context"]["input_shape"] == [1, 3, 32, 32] and result["context"]["model_form"] == "deploy"
    assert result["runs"] >= 10 and result["median_ms"] > 0
    table = capsys.readouterr().out
    assert SMALL in table and "median ms" in table and "1x3x32x32" in table
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_export_writes_a_verified_file(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main(["export", SMALL, str(out), "--input", "3x64x64"]) == 0
    assert out.is_file() and "ONNX Runtime matches PyTorch within" in capsys.readouterr().out


@pytest.fixture
def corrupt_onnx(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07\x12\x04this is not a protobuf model" * 10)
    return path


def _run_cli_error(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("edgevision: error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["measure", SMALL, "--runtime", "tvm"], "unknown runtime 'tvm'; choose one of eager, compile, ort, openvino"),
        (["measure", SMALL, "--input", "3x224"], "input shape '3x224' is not CxHxW or NxCxHxW"),
        (["measure", SMALL, "--input", "axbxc"], "write e.g. 1x3x224x224"),
        (["measure", SMALL, "--input", "5x64x64", "--runtime", "eager", "--threads", "1"], "cannot take input shape 1x5x64x64"),
        (["measure", SMALL, "--threads", "0"], "--threads must be >= 1"),
        (["measure", SMALL, "--budget", "0"], "--budget must be positive"),
        (["measure", "mobilenetv3_small_07"], "did you mean mobilenetv3_small_075"),
        (["measure", "missing.onnx"], "ONNX file 'missing.onnx' does not exist"),
        (["measure", SMALL, "--json", "/nonexistent-dir/out.json"], "directory '/nonexistent-dir' does not exist"),
        (["export", SMALL, "/nonexistent-dir/m.onnx"], "directory '/nonexistent-dir' does not exist"),
        (["export", SMALL, "m.txt"], "should end in .onnx"),
        (["export", SMALL, "/etc/hostname/m.onnx"], "'/etc/hostname' is a file, not a directory"),
        (["export", "resnet1000", "m.onnx"], "unknown model 'resnet1000'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert message in _run_cli_error(argv, capsys)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file


def test_corrupted_onnx_given_to_measure(corrupt_onnx, capsys):
    err = _run_cli_error(["measure", str(corrupt_onnx), "--runtime", "ort", "--input", "3x64x64"], capsys)
    assert f"cannot load ONNX file '{corrupt_onnx}'" in err and "re-export it with `edgevision export" in err


@pytest.mark.skipif(OpenVinoRuntime.is_available(), reason="openvino is installed here")
def test_openvino_not_installed_names_the_extra(capsys):
    err = _run_cli_error(["measure", SMALL, "--runtime", "openvino"], capsys)
    assert "pip install 'edgevision[openvino]'" in err


def test_refused_export_leaves_no_file(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    err = _run_cli_error(["export", SMALL, str(out), "--input", "3x64x64", "--atol", "0"], capsys)
    assert "output 'logits' differs from PyTorch by" in err and "was not written" in err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_directory(tmp_path, capsys):
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        err = _run_cli_error(["export", SMALL, str(locked / "m.onnx")], capsys)
        assert "is not writable" in err
    finally:
        locked.chmod(0o700)
