"""run_bench on a tiny model set with a fake clock: resumable JSONL, refusal to mix machines or versions."""

import json

import pytest
from bench_helpers import make_row, ticking_clock

from edgevision.bench import BenchConfig, MixedResultsError, ResultStore, run_bench
from edgevision.bench.report import header_lines
from edgevision.machine import machine_info

MODELS = ("mobilenetv3_small_075", "shufflenet_v2_x0_5")
CONFIG = BenchConfig(models=MODELS, runtimes=("eager",), threads=1, resolution=64, time_budget_s=1.0)


def _run(out, config=CONFIG, **kwargs):
    return run_bench(config, out, peaks=None, clock=ticking_clock(), **kwargs)


def test_run_writes_one_line_per_measurement_with_costs_and_context(tmp_path):
    bench = _run(tmp_path)
    assert (bench.measured, bench.skipped, bench.failures) == (2, 0, [])
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2
    row = json.loads(lines[0])
    assert row["model"] == MODELS[0] and row["top1"] == pytest.approx(65.4)
    assert row["costs"]["macs"] > 0 and row["costs"]["params"] > 0 and row["costs"]["bound_ms"] is None  # peaks=None
    context = row["result"]["context"]
    assert context["fingerprint"] == machine_info().fingerprint and context["model_form"] == "deploy"
    assert context["input_shape"] == [1, 3, 64, 64] and context["threads"] == 1
    assert row["result"]["median_ms"] == pytest.approx(4.0) and not row["result"]["noisy"]


def test_resume_after_interruption_skips_finished_measurements(tmp_path):
    def interrupt(model, runtime, row):
        raise KeyboardInterrupt  # Ctrl-C right after the first measurement was written

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, on_done=interrupt)
    assert len(ResultStore(tmp_path / "results.jsonl").rows) == 1
    with open(tmp_path / "results.jsonl", "a") as handle:  # a torn line from a killed writer
        handle.write('{"model": "shufflenet_v2_x0_5", "res')
    started = []
    bench = _run(tmp_path, on_start=lambda model, runtime, index, total: started.append((model, index, total)))
    assert started == [(MODELS[1], 0, 1)]  # only the unfinished one
    assert (bench.measured, bench.skipped) == (1, 1)
    assert sorted(row["model"] for row in bench.rows) == sorted(MODELS)
    assert len(ResultStore(tmp_path / "results.jsonl").rows) == 2  # the torn line is ignored, the new one intact
    again = _run(tmp_path, on_start=lambda *args: pytest.fail("nothing should be measured again"))
    assert (again.measured, again.skipped, len(again.rows)) == (0, 2, 2)


def test_refuses_results_of_another_machine_unless_allowed(tmp_path):
    ResultStore(tmp_path / "results.jsonl").append(make_row(MODELS[0], "eager", 1.0, 1e6, 60.0, fingerprint="000000000000"))
    with pytest.raises(MixedResultsError, match="000000000000.*--allow-mixed"):
        _run(tmp_path, on_start=lambda *args: pytest.fail("must refuse before measuring"))
    allowed = BenchConfig(**{**CONFIG.__dict__, "allow_mixed": True})
    bench = _run(tmp_path, config=allowed)  # told to mix: the other machine's result is reused, and flagged
    assert (bench.measured, bench.skipped, len(bench.rows)) == (1, 1, 2)
    assert "MIXED" in header_lines(bench.rows)[0]


def test_refuses_other_runtime_versions(tmp_path):
    ResultStore(tmp_path / "results.jsonl").append(make_row(MODELS[0], "eager", 1.0, 1e6, 60.0, versions={"torch": "1.0.0"}))
    with pytest.raises(MixedResultsError, match="torch 1.0.0"):
        _run(tmp_path)


def test_a_failing_measurement_is_reported_and_the_run_goes_on(tmp_path, monkeypatch):
    import edgevision.latency as latency

    real_measure = latency.measure

    def measure(model, *args, **kwargs):
        if model == MODELS[0]:
            raise latency.MeasurementError("cannot export")
        return real_measure(model, *args, **kwargs)

    monkeypatch.setattr(latency, "measure", measure)
    done = []
    bench = _run(tmp_path, on_done=lambda model, runtime, row: done.append((model, row is not None)))
    assert done == [(MODELS[0], False), (MODELS[1], True)]
    assert [(f.model, f.runtime, f.message) for f in bench.failures] == [(MODELS[0], "eager", "cannot export")]
    assert [row["model"] for row in bench.rows] == [MODELS[1]] and bench.measured == 1
