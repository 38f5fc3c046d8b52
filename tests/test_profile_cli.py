"""``edgevision profile``: registered and user models, JSON export, one-line errors."""

from __future__ import annotations

import json

import pytest
import torch

from edgevision.cli import main


def test_profile_registered_model_writes_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert main(["profile", "shufflenet_v2_x0_5", "--input", "1x3x64x64", "--deploy", "--no-roofline", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "blocks (resolved spec)" in printed and "stages.0.0" in printed and "MACs" in printed and "FLOPs" in printed
    data = json.loads(out.read_text())
    assert data["input_shape"] == [1, 3, 64, 64] and data["total"]["macs"] > 0
    assert {m["path"] for m in data["modules"]} >= {"", "stem", "stages", "head"}


def test_profile_measures_layers_beside_the_bound(capsys):
    argv = ["profile", "mobilenetv3_small_075", "--input", "1x3x64x64", "--deploy", "--measure", "ort", "--threads", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "ort ms" in printed and "measured/bound" in printed
    header = next(line for line in printed.splitlines() if "measured/bound" in line)
    model_row = next(line for line in printed.splitlines() if "<model>" in line)
    columns = [cell.strip() for cell in header.strip("┃│ ").split("┃")]
    cells = dict(zip(columns, (cell.strip() for cell in model_row.strip("┃│ ").split("│"))))
    bound_ms, measured_ms = float(cells["bound ms"]), float(cells["ort ms"])
    ratio = float(cells["measured/bound"].rstrip("x"))  # the whole model's measured / roofline bound
    assert bound_ms > 0 and measured_ms > 0
    # the ratio is the two printed times divided (to the printed rounding), not some other number
    assert abs(ratio - measured_ms / bound_ms) <= 0.005 + 0.0005 * (1 + ratio) / bound_ms


def test_profile_user_file_factory_with_depth_and_sort(tmp_path, capsys):
    source = tmp_path / "mine.py"
    source.write_text(
        "import torch.nn as nn\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU()))\n"
    )
    assert main(["profile", f"{source}:build", "--input", "1x3x16x16", "--depth", "1", "--sort", "macs", "--no-roofline"]) == 0
    printed = capsys.readouterr().out
    assert "modules at depth 1" in printed
    assert printed.index("Conv2d") < printed.index("Sequential")  # the 3x3 conv has the most MACs


@pytest.mark.parametrize(
    "argv, message",
    [
        (["profile", "resnet1000"], "unknown model 'resnet1000'"),
        (["profile", "resnet18", "--input", "3x224"], "input shape '3x224' is not NxCxHxW"),
        (["profile", "resnet18", "--input", "1x4x64x64", "--no-roofline"], "cannot take an input of shape 1x4x64x64"),
        (["profile", "resnet18", "--sort", "speed"], "invalid choice: 'speed'"),
        (["profile", "resnet18", "--json", "/nonexistent-dir/r.json"], "directory '/nonexistent-dir' does not exist"),
        (["profile", "missing.py:build"], "model file 'missing.py' does not exist"),
    ],
)
def test_profile_errors_are_one_line_with_exit_code_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_profile_user_file_without_factory(tmp_path, capsys):
    source = tmp_path / "empty.py"
    source.write_text("x = 1\n")
    assert main(["profile", f"{source}:build"]) == 2
    assert "has no callable 'build'" in capsys.readouterr().err


def test_profile_detect_fusion_reports_each_pair_in_json(tmp_path, capsys, monkeypatch):
    """--detect-fusion: nn-Meter's pair test per standard pair, with a fake timer (no timing)."""
    import edgevision.analysis.fusion as fusion

    def fake(runtime, threads=1, time_budget_s=1.0):
        assert runtime == "ort" and threads == 1
        return lambda module, shape: 1.5 if isinstance(module, torch.nn.Sequential) else 1.0  # saves 0.5 = 0.5 min: not fused

    monkeypatch.setattr(fusion, "measured_timer", fake)
    out = tmp_path / "r.json"
    argv = ["profile", "shufflenet_v2_x0_5", "--input", "1x3x32x32", "--no-roofline", "--detect-fusion", "ort", "--threads", "1", "--json", str(out)]
    assert main(argv) == 0
    tests = json.loads(out.read_text())["fusion"]
    assert [t["name"] for t in tests][:2] == ["conv+relu", "conv+hardswish"] and not any(t["fused"] for t in tests)
    assert tests[0]["saved_ms"] == pytest.approx(0.5) and "fusion on ort" in capsys.readouterr().out
