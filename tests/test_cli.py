"""CLI: tables and JSON, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json

import pytest

import edgevision as ev
from edgevision.cli import main


def test_models_json(capsys):
    assert main(["models", "mobilenetv3_small*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["mobilenetv3_small_075", "mobilenetv3_small_100"]
    small = rows[1]
    assert small["params_train"] == 2542856
    assert small["params_deploy"] < small["params_train"]  # BatchNorm folded
    assert small["published_top1"] == 67.4 and small["published_macs"] == "56M"
    assert abs(small["macs"] - 56.5e6) < 0.1e6


def test_models_table(capsys):
    assert main(["models", "mobilenetv2_100"]) == 0
    out = capsys.readouterr().out
    assert "mobilenetv2_100" in out and "3,504,872" in out and "300.77M" in out and "72.0" in out


def test_spec_table_and_json(capsys):
    assert main(["spec", "mobilenetv2_100", "--resolution", "160"]) == 0
    out = capsys.readouterr().out
    assert "stages.6.0" in out and "160x160" in out
    assert main(["spec", "mobilenetv2_100", "--json"]) == 0
    assert ev.NetworkSpec.from_json(capsys.readouterr().out) == ev.get_spec("mobilenetv2_100")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["models", "nonexistent*"], "no registered model matches 'nonexistent*'"),
        (["models", "mobilenetv2_10"], "did you mean mobilenetv2_100"),
        (["models", "--bogus"], "unrecognized arguments: --bogus"),
        (["models", "--resolution", "abc"], "invalid int value: 'abc'"),
        (["models", "--resolution", "8"], "--resolution must be >= 32"),
        (["spec", "resnet1000"], "unknown model 'resnet1000'"),
        (["spec", "mobilenetv2_100", "--width", "-1"], "--width must be positive"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("edgevision: error: ")
    assert "Traceback" not in captured.err


def test_console_script_runs():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "edgevision.cli", "models", "nope"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.startswith("edgevision: error:")
