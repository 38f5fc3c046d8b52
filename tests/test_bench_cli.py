"""`edgevision bench` end to end: the real CLI on two small models with a very short budget."""

import json

import pytest
from bench_helpers import make_row

from edgevision.bench import ResultStore
from edgevision.cli import main

MODELS = ["mobilenetv3_small_075", "shufflenet_v2_x0_5"]


def test_bench_cli_end_to_end_and_rerun_reuses_results(tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["bench", "--models", *MODELS, "--resolution", "64", "--threads", "1", "--per-measurement-budget", "0.2",
            "--budget-ms", "50", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "measured 4, reused 0" in captured.err
    assert "★" in captured.out and "MACs vs latency rank correlation" in captured.out and "best within 50 ms" in captured.out
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["model"], r["result"]["context"]["runtime"]) for r in rows) == sorted((m, r) for m in MODELS for r in ("eager", "ort"))
    assert all(r["result"]["context"]["input_shape"] == [1, 3, 64, 64] and r["costs"]["bound_ms"] > 0 for r in rows)
    for name in ("results.csv", "report.md", "report.html", "pareto_ort.png", "pareto_eager.png", "macs_vs_latency.png", "latency_bars.png"):
        assert (out / name).stat().st_size > 0
    report = (out / "report.md").read_text()
    for row in rows:  # every median in the report is traceable to results.jsonl
        assert f"{row['result']['median_ms']:.2f}" in report

    assert main(argv) == 0  # the same --out again: nothing is measured twice
    assert "measured 0, reused 4" in capsys.readouterr().err


def test_bench_cli_user_errors_are_one_line(tmp_path, capsys):
    assert main(["bench", "--models", "no_such_net*", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "edgevision: error: no registered model matches 'no_such_net*'; see `edgevision models`"
    assert main(["bench", "--runtime", "tensorrt", "--out", str(tmp_path)]) == 2
    assert "unknown runtime 'tensorrt'" in capsys.readouterr().err
    assert main(["bench", "--per-measurement-budget", "0", "--out", str(tmp_path)]) == 2
    capsys.readouterr()

    ResultStore(tmp_path / "results.jsonl").append(make_row(MODELS[0], "eager", 1.0, 1e6, 60.0, fingerprint="000000000000"))
    assert main(["bench", "--models", MODELS[0], "--runtime", "eager", "--resolution", "64", "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("edgevision: error:") and "000000000000" in error and "--allow-mixed" in error


def test_bench_cli_ctrl_c_keeps_results_and_says_how_to_continue(tmp_path, capsys, monkeypatch):
    import edgevision.bench as bench

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "run_bench", interrupted)
    assert main(["bench", "--models", MODELS[0], "--out", str(tmp_path)]) == 130
    assert "run the same command to continue" in " ".join(capsys.readouterr().err.split())  # rich wraps lines


def test_default_model_set_is_the_mobile_regime():
    from edgevision.bench.selection import efficient_models

    candidates = ["mobilenetv2_100", "ghostnet_100", "mobileone_s0", "resnet50", "mobileone_s4", "vgg11"]
    # MobileOne-S0: over 1 GMAC in train form (its k=4 branches), 275M deployed: the deploy form decides
    assert efficient_models(candidates) == ["mobilenetv2_100", "ghostnet_100", "mobileone_s0"]


def test_model_selection_is_library_code():
    from edgevision.bench import select_models

    assert select_models(["mobilenetv2_050", "mobilenetv3_small*", "mobilenetv2_050"]) == (
        "mobilenetv2_050",
        "mobilenetv3_small_075",
        "mobilenetv3_small_100",
    )
    with pytest.raises(ValueError, match="no registered model matches 'nothing\\*'"):
        select_models(["nothing*"])
