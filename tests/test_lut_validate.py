"""Validation statistics on hand-computed numbers, the resumable harness on fake measurements, CLI errors."""

from __future__ import annotations

import json
import math

import pytest
from lut_helpers import TINY_SPACE, CountingNetworkMeasure, FakeBlockMeasure, other_machine

from edgevision.cli import main
from edgevision.lut import LatencyTable, accuracy, validate


def test_accuracy_on_known_numbers():
    # relative errors: +10%, -5%, +50%, 0%
    metrics = accuracy([110.0, 95.0, 300.0, 50.0], [100.0, 100.0, 200.0, 50.0])
    assert metrics.count == 4
    assert metrics.mape_pct == pytest.approx(16.25)
    assert metrics.mean_error_pct == pytest.approx(13.75)
    assert metrics.rmse_ms == pytest.approx(math.sqrt((100 + 25 + 10000 + 0) / 4))
    assert metrics.within_5_pct == 50.0 and metrics.within_10_pct == 75.0 and metrics.max_error_pct == pytest.approx(50.0)
    # ranks (3, 2, 4, 1) vs (2.5, 2.5, 4, 1): Pearson of ranks = 4.5 / sqrt(5 * 4.5)
    assert metrics.spearman == pytest.approx(4.5 / math.sqrt(5 * 4.5))
    # 5 concordant pairs, 0 discordant, one tie in measured: tau-b = 5 / sqrt(6 * 5)
    assert metrics.kendall == pytest.approx(5 / math.sqrt(30))
    with pytest.raises(ValueError, match="positive measured"):
        accuracy([1.0, 2.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="equally long"):
        accuracy([1.0, 2.0], [1.0])


def test_validate_reports_sum_corrected_and_noise_and_resumes(tmp_path):
    table = tmp_path / "lut.sqlite"
    networks = CountingNetworkMeasure()
    kwargs = dict(
        train=8, test=5, seed=2, measure_block=FakeBlockMeasure(), measure_network=networks, regressor_hyperparameters={"n_estimators": 20}
    )
    report = validate(TINY_SPACE, table, tmp_path, **kwargs)
    assert networks.calls == 8 + 5 + 5  # training networks once, test networks twice
    # the correction recovers the synthetic overhead exactly; the pure sum is off by it
    assert report.corrected_metrics.mape_pct < 1e-6 and report.corrected_metrics.within_5_pct == 100.0
    assert report.sum_metrics.mape_pct > 5 and report.sum_metrics.mean_error_pct < 0  # the sum runs low
    # the fake pass 2 reads 1% higher than pass 1: that is the noise floor
    assert report.noise_metrics.mape_pct == pytest.approx(1.0) and report.noise_metrics.mean_error_pct == pytest.approx(1.0)
    targets = report.targets()
    assert targets["corrected"]["within_10_pct"] == (100.0, True) and targets["corrected"]["error_over_noise"][1]
    assert not targets["sum"]["error_over_noise"][1]
    for name in ("validation.json", "predictor.json", "scatter.png", "networks.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "validation.json").read_text())
    assert saved["test_networks"] == 5 and len(saved["rows"]) == 5 and saved["targets"]["corrected"]["spearman"]["met"]
    assert "| corrected sum |" in report.to_markdown() and "run-to-run noise" in report.to_markdown()

    # resume: everything is stored, so nothing is measured again and the figures are the same
    again = CountingNetworkMeasure()
    blocks = FakeBlockMeasure()
    rerun = validate(TINY_SPACE, table, tmp_path, **{**kwargs, "measure_network": again, "measure_block": blocks})
    assert again.calls == 0 and blocks.calls == 0
    assert rerun.corrected_metrics == report.corrected_metrics and rerun.noise_metrics == report.noise_metrics


def test_interleaved_alternates_in_proportion_and_keeps_every_element_once():
    from edgevision.lut.validate import interleaved

    assert interleaved(["t0", "t1"], ["T0", "T1", "T2", "T3"]) == ["T0", "t0", "T1", "T2", "t1", "T3"]
    assert interleaved([1, 2, 3], [4, 5, 6]) == [1, 4, 2, 5, 3, 6] and interleaved([], [1, 2]) == [1, 2] and interleaved([1], []) == [1]
    merged = interleaved(list(range(50)), list(range(100, 200)))
    assert sorted(merged) == [*range(50), *range(100, 200)]
    assert all(sum(x < 100 for x in merged[k: k + 15]) in (4, 5, 6) for k in range(0, 135, 15))  # 1 in 3 in every stretch


def test_validate_fits_the_correction_under_the_drift_the_test_networks_see(tmp_path):
    """A machine that slows down steadily (each measurement 1% slower than the one before): with pass 1 in the old
    order (all training networks, then all test networks) the fitted correction would run ~10% low on the test set;
    interleaved, training and test networks are measured at the same times and the error stays small."""
    from lut_helpers import synthetic_network_ms

    class Drifting:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, network, setting, run):
            self.calls += 1
            return synthetic_network_ms(network, setting, run) * (1.01 ** self.calls)

    drifting = Drifting()
    report = validate(TINY_SPACE, tmp_path / "lut.sqlite", tmp_path, train=8, test=8, seed=3, noise=False, measure_block=FakeBlockMeasure(),
                      measure_network=drifting, regressor_hyperparameters={"n_estimators": 20})
    assert drifting.calls == 16
    assert abs(report.corrected_metrics.mean_error_pct) < 3.0


def test_validate_refuses_too_few_training_networks(tmp_path):
    with pytest.raises(ValueError, match="train >= 8"):
        validate(TINY_SPACE, tmp_path / "lut.sqlite", tmp_path, train=3, test=5)


# ---- CLI --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (["lut", "build", "--table", "t.sqlite"], "give MODEL names or --space"),
        (["lut", "build", "--space", "nosuch", "--table", "t.sqlite"], "unknown search space 'nosuch'"),
        (["lut", "build", "--space", "mobile", "--table", "t.sqlite", "--threads", "0"], "--threads must be >= 1"),
        (["lut", "build", "--space", "mobile", "--table", "t.sqlite", "--runtime", "tpu"], "unknown runtime 'tpu'"),
        (["lut", "build", "--space", "mobile", "--table", "t.sqlite", "--budget", "0"], "--budget must be positive"),
        (["lut", "validate", "--out", "v", "--train", "3"], "train >= 8"),
        (["lut", "predict", "resnet18", "--table", "missing.sqlite"], "latency table 'missing.sqlite' does not exist"),
        (["lut", "frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_cli_refuses_another_machines_table_and_names_the_override(tmp_path, capsys):
    path = tmp_path / "elsewhere.sqlite"
    LatencyTable(path, machine=other_machine()).close()
    assert main(["lut", "build", "--space", "mobile", "--networks", "1", "--table", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Some Other CPU" in err and "--allow-other-machine" in err


def test_cli_help_lists_the_subcommands(capsys):
    assert main(["lut"]) == 0
    out = capsys.readouterr().out
    assert "build" in out and "validate" in out and "predict" in out


def test_cli_predict_sums_the_table(tmp_path, capsys):
    from lut_helpers import synthetic_block_ms

    from edgevision.lut import MeasurementSetting, build, resolve_networks

    table = tmp_path / "lut.sqlite"
    build("resnet18", "ort", 2, table, input_size=32, measure_block=FakeBlockMeasure())
    network = resolve_networks("resnet18", input_size=32)[0]
    expected = sum(synthetic_block_ms(block, MeasurementSetting()) for block in network)
    out = tmp_path / "predictions.json"
    argv = ["lut", "predict", "resnet18", "--table", str(table), "--input-size", "32", "--json", str(out)]
    assert main(argv) == 0
    (prediction,) = json.loads(out.read_text())
    assert prediction["sum_ms"] == pytest.approx(expected) and prediction["latency_ms"] == prediction["sum_ms"]
    assert prediction["missing_blocks"] == 0 and f"resnet18: {expected:.3f} ms" in capsys.readouterr().out
    # the table was filled for 2 threads: asking for 1 thread finds no block, and fitting a regressor
    # is impossible without entries for that setting, so the error names the build command
    assert main(argv[:-2] + ["--threads", "1"]) == 2
    assert "lut build" in capsys.readouterr().err
