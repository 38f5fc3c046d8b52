"""Architecture search: choice specs and their pricing, every strategy on a tiny space, resume, errors."""

from __future__ import annotations

import math
import os

import pytest
import torch

import edgevision as ev
from edgevision.blocks import ChoiceBlockSpec, ClassifierHeadSpec, ConvNormActSpec, IdentitySpec, InvertedResidualSpec, choice_blocks, choose, resolve_candidates
from edgevision.cli import main
from edgevision.lut import BlockLatency, LatencyTable, MeasurementSetting, block_key
from edgevision.network import NetworkSpec, StageSpec
from edgevision.search import LatencyModel, SearchError, hypervolume, pareto_front, run
from edgevision.search.result import Candidate
from lut_helpers import TINY_SPACE

SETTING = MeasurementSetting(runtime="ort", threads=2)


def fake_block_ms(block, setting) -> BlockLatency:
    """Known latency: proportional to output channels x pixels x inner width (no measurement)."""
    inner = (block.mid_channels or 8) / 8
    return BlockLatency(median_ms=0.01 + 1e-4 * block.out_channels * block.input_size[0] * inner, runs=1)


def fake_accuracy(spec: NetworkSpec) -> float:
    """Deterministic and monotone in capacity: more parameters, higher 'accuracy'."""
    return min(0.99, ev.count_params(ev.build(spec)) / 1e5)


@pytest.fixture
def latency(tmp_path):
    table = LatencyTable(tmp_path / "lut.sqlite")
    yield LatencyModel(table, SETTING, measure_block=fake_block_ms)
    table.close()


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    """200 random 16x16 grey images in 10 classes: supernet training and proxies without loading MNIST."""
    import numpy as np

    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    rng = np.random.default_rng(0)
    np.savez(path, images=rng.integers(0, 255, (200, 16, 16), dtype=np.uint8), labels=np.arange(200) % 10)
    return f"npz:{path}"


def tiny_supernet() -> NetworkSpec:
    first = ChoiceBlockSpec(
        name="s0.b0",
        candidates=(
            InvertedResidualSpec(out_channels=16, stride=2, kernel_size=3, expansion_ratio=2.0),
            InvertedResidualSpec(out_channels=16, stride=2, kernel_size=5, expansion_ratio=4.0),
        ),
    )
    second = ChoiceBlockSpec(
        name="s0.b1",
        candidates=(InvertedResidualSpec(out_channels=16, kernel_size=3, expansion_ratio=2.0), InvertedResidualSpec(out_channels=16, kernel_size=5, expansion_ratio=4.0), IdentitySpec()),
    )
    return NetworkSpec(
        name="toy-supernet",
        stem=(ConvNormActSpec(out_channels=8, stride=2),),
        stages=(StageSpec(blocks=(first, second)),),
        head=ClassifierHeadSpec(num_classes=10),
        input_size=32,
    )


# ---- choice specs --------------------------------------------------------------------------
def test_supernet_is_a_spec_with_json_round_trip_and_skip_as_a_block():
    supernet = tiny_supernet()
    assert NetworkSpec.from_json(supernet.to_json()) == supernet
    assert hash(supernet) == hash(NetworkSpec.from_json(supernet.to_json()))
    assert [len(c.candidates) for c in choice_blocks(supernet)] == [2, 3]
    path = choose(supernet, [1, 2])  # the second block skipped: dropped from the shipped network
    assert [b.kernel_size for b in path.stages[0].blocks] == [5]
    assert ev.build(path)(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match="needs 2 indices"):
        choose(supernet, [0])
    with pytest.raises(ValueError, match="one stride"):
        ChoiceBlockSpec(candidates=(InvertedResidualSpec(out_channels=8, stride=2), IdentitySpec()))
    with pytest.raises(ValueError, match="one output width"):
        ev.resolve(supernet.replace(stages=(StageSpec(blocks=(ChoiceBlockSpec(candidates=(InvertedResidualSpec(out_channels=8), InvertedResidualSpec(out_channels=16))),)),)))


def test_supernet_module_mixes_candidates_by_path_weights():
    model = ev.build(tiny_supernet()).eval()
    layer = model.stages[0][1]
    x = torch.randn(1, 16, 8, 8)
    layer.path_weights = torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(layer(x), x)  # all weight on skip
    layer.path_weights = torch.tensor([0.25, 0.75, 0.0])
    expected = 0.25 * layer.candidates[0](x) + 0.75 * layer.candidates[1](x)
    assert torch.allclose(layer(x), expected, atol=1e-6)


def test_supernet_latency_is_a_sum_of_table_entries(latency):
    supernet = tiny_supernet()
    priced = latency.supernet_latency(supernet)
    resolved = ev.resolve(supernet)
    table = latency.table
    fixed = sum(table.get(block_key(b, SETTING)).median_ms for b in resolved if not isinstance(b.spec, ChoiceBlockSpec))
    assert priced.fixed_ms == pytest.approx(fixed)
    choice = [b for b in resolved if isinstance(b.spec, ChoiceBlockSpec)]
    for block, row in zip(choice, priced.candidate_ms):
        expected = [0.0 if isinstance(c.spec, IdentitySpec) else table.get(block_key(c, SETTING)).median_ms for c in resolve_candidates(block)]
        assert list(row) == pytest.approx(expected)
    assert priced.candidate_ms[1][2] == 0.0  # skip is free
    indices, fastest_ms = priced.fastest()
    assert indices == (0, 2)
    # the chosen plain network costs the same sum through the ordinary network path
    assert latency.network_ms(choose(supernet, indices)) == pytest.approx(fastest_ms)


# ---- calibration of the table sum: call overhead and a stale table, on fake timers ----------------
CALL_OVERHEAD_MS = 0.02


def true_ms(block) -> float:
    """What a block costs inside a network (no call of its own)."""
    return fake_block_ms(block, SETTING).median_ms


def stale_table_block(factor: float):
    """Blocks timed alone (one call's overhead each) while the machine ran ``factor`` x slower than now."""
    return lambda block, setting: BlockLatency(median_ms=factor * (true_ms(block) + CALL_OVERHEAD_MS), runs=1)


def measured_now(spec: NetworkSpec) -> float:
    """The network end to end on the machine as it is now: its blocks plus one call."""
    return sum(true_ms(b) for b in ev.resolve(spec) if not isinstance(b.spec, IdentitySpec)) + CALL_OVERHEAD_MS


def test_calibrated_predictions_of_shipped_networks_match_their_measurement(tmp_path):
    factor = 4.0  # the smoke run's table: measured while the machine ran ~4x slower than when the picks were measured
    table = LatencyTable(tmp_path / "lut.sqlite")
    latency = LatencyModel(table, SETTING, measure_block=stale_table_block(factor), measure_overhead=lambda setting: factor * CALL_OVERHEAD_MS)
    out, lines = tmp_path / "o", []
    result = run(TINY_SPACE, "random", latency_ms=2.0, table=latency, estimator=fake_accuracy, data=None, trials=3, measure=measured_now,
                 calibrate=3, out=out, progress=lines.append)
    assert latency.calibration is None  # the caller's model is not changed
    calibration = result.details["calibration"]
    assert calibration["scale"] == pytest.approx(1 / factor) and calibration["drift"] == pytest.approx(1.0)
    assert calibration["call_overhead_ms"] == pytest.approx(factor * CALL_OVERHEAD_MS)
    assert result.front and result.latency_model.startswith("calibrated table sum")
    assert "drift 1.000" in (out / "report.md").read_text() and (out / "calibration.json").is_file()
    for candidate in result.front:
        assert candidate.predicted_ms == pytest.approx(candidate.measured_ms, rel=1e-9)  # the overhead model is exact here
        blocks = sum(not isinstance(b.spec, IdentitySpec) for b in ev.resolve(candidate.spec))
        raw_error = candidate.table_sum_ms / candidate.measured_ms - 1  # what the plain sum would have shipped with
        assert raw_error == pytest.approx((factor * (candidate.measured_ms + (blocks - 1) * CALL_OVERHEAD_MS)) / candidate.measured_ms - 1)
        assert raw_error > 0.10
    again = []
    run(TINY_SPACE, "random", latency_ms=2.0, table=latency, estimator=fake_accuracy, data=None, trials=3, measure=measured_now,
        calibrate=3, out=out, progress=again.append)
    assert any("calibration reused from" in line for line in again)  # a resumed search prices as before
    table.close()


def test_calibration_with_a_noisy_overhead_and_a_drifted_machine_is_checked_not_exact(tmp_path):
    from edgevision.search import calibrate

    table = LatencyTable(tmp_path / "lut.sqlite")
    latency = LatencyModel(table, SETTING, measure_block=stale_table_block(2.0))
    networks = TINY_SPACE.sample_many(5, seed=3)
    absurd = calibrate(latency, networks[:3], measured_now, overhead_ms=10.0)  # a reading no block could be faster than
    assert absurd.call_overhead_ms == pytest.approx(min(row["smallest_entry_ms"] for row in absurd.networks)) and absurd.scale > 0
    # the table's overhead is 2 x 0.02 ms; a reading 25% off still prices networks it was not fitted on within 10%
    calibrated = latency.with_calibration(calibrate(latency, networks[:3], measured_now, overhead_ms=1.25 * 2 * CALL_OVERHEAD_MS))
    for spec in networks[3:]:
        assert calibrated.network_ms(spec) == pytest.approx(measured_now(spec), rel=0.10)
    # supernet prices stay additive under the calibration: a path costs what the plain network costs
    supernet = tiny_supernet()
    priced = calibrated.supernet_latency(supernet)
    for indices in [(0, 0), (1, 1), (0, 2), (1, 2)]:
        assert priced.path_ms(indices) == pytest.approx(calibrated.network_ms(choose(supernet, indices)))
    table.close()


def test_space_supernet_conversion_covers_what_the_space_samples(latency):
    supernet = TINY_SPACE.supernet()
    layers = choice_blocks(supernet)
    assert [layer.name for layer in layers] == ["s0.b0", "s0.b1", "s1.b0", "s1.b1"]
    assert not any(isinstance(c, IdentitySpec) for c in layers[0].candidates)  # depth >= 1: no skip at the first block
    assert isinstance(layers[1].candidates[-1], IdentitySpec)
    # every candidate of the first layer is a block the space can draw at its widest width
    drawn = {TINY_SPACE.decide(lambda name, options, k=k: (k if name == "s0.kind" else max(options) if "width" in name or "depth" in name else options[0])).stages[0].blocks[0] for k in TINY_SPACE.stages[0].block_kinds}
    assert drawn <= set(layers[0].candidates)


def test_missing_table_entries_name_lut_build(tmp_path):
    with LatencyTable(tmp_path / "empty.sqlite") as table:
        model = LatencyModel(table, SETTING, build_missing=False)
        with pytest.raises(ev.lut.LutError, match="edgevision lut build"):
            model.network_ms(TINY_SPACE.sample(0))


# ---- fronts --------------------------------------------------------------------------------
def test_pareto_front_and_hypervolume():
    spec = TINY_SPACE.sample(0)
    points = [(1.0, 0.5), (2.0, 0.8), (3.0, 0.7), (5.0, 0.9)]
    candidates = [Candidate(spec=spec, predicted_ms=ms, accuracy=acc) for ms, acc in points]
    front = pareto_front(candidates, budget_ms=4.0)
    assert [(c.predicted_ms, c.accuracy) for c in front] == [(1.0, 0.5), (2.0, 0.8)]
    assert hypervolume(points, reference_ms=4.0) == pytest.approx(3 * 0.5 + 2 * 0.3)


# ---- strategies ----------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_sampling_strategies_train_within_the_budget(strategy, latency):
    budget = 0.25
    result = run(TINY_SPACE, strategy, latency_ms=budget, table=latency, estimator=fake_accuracy, data=None, trials=6, measure=lambda spec: 1.0)
    trained = [c for c in result.candidates if c.accuracy is not None]
    assert len({c.name for c in trained}) >= 6
    assert all(c.predicted_ms <= budget for c in trained)  # over-budget networks are told without training
    assert result.front and all(c.measured_ms == 1.0 for c in result.front)
    accuracies = [c.accuracy for c in result.front]
    assert accuracies == sorted(accuracies) and len(set(accuracies)) == len(accuracies)  # a front: slower only when better
    assert result.best is result.front[-1] and 0 < result.hypervolume <= 1


def test_blocks_strategy_compares_one_front_per_block_kind(latency):
    result = run(TINY_SPACE, "blocks", latency_ms=0.3, table=latency, estimator=fake_accuracy, data=None, trials=2, measure=False, options={"kinds": ("inverted_residual", "resnet_basic")})
    kinds = result.details["block_kinds"]
    assert set(kinds) == {"inverted_residual", "resnet_basic"}
    assert all(row["trained"] >= 2 for row in kinds.values())
    assert {c.source for c in result.candidates} == {"blocks:inverted_residual", "blocks:resnet_basic"}


@pytest.mark.parametrize("strategy", ["dnas", "proxyless"])
def test_supernet_strategies_learn_an_architecture_distribution(strategy, latency, tiny_data):
    result = run(
        tiny_supernet(), strategy, latency_ms=1.0, table=latency, estimator=lambda spec: 0.5, data=tiny_data,
        trials=2, resolution=16, supernet_epochs=2, steps_per_epoch=2, measure=False,
    )
    architecture = result.details["architecture"]
    assert set(architecture) == {"s0.b0", "s0.b1"}
    assert all(sum(p) == pytest.approx(1.0, abs=1e-3) for p in architecture.values())
    assert any(max(p) - min(p) > 1e-4 for p in architecture.values())  # θ moved from uniform
    history = result.details["history"]
    assert history[1]["temperature"] == pytest.approx(5.0 * math.exp(-0.045))  # FBNet annealing
    assert "arch_loss" in history[-1]
    assert result.candidates[0].extra["argmax"] and len(result.candidates) >= 2


def test_fbnet_loss_is_ce_times_alpha_log_latency_to_beta():
    from edgevision.search.supernet import fbnet_loss

    ce, lat = torch.tensor(2.0), torch.tensor(3000.0)
    assert float(fbnet_loss(ce, lat)) == pytest.approx(2.0 * 0.2 * math.log(3000.0) ** 0.6)


def test_budget_below_the_fastest_network_names_it(latency):
    with pytest.raises(SearchError, match=r"below the fastest network of space 'tiny': tiny-[0-9a-f]{12} predicts"):
        run(TINY_SPACE, "random", latency_ms=0.01, table=latency, estimator=fake_accuracy, data=None, trials=2, measure=False)
    measured = []
    with pytest.raises(SearchError, match=r"fastest network of space 'tiny': tiny-[0-9a-f]{12} predicts .* and measures 5.000 ms"):
        run(TINY_SPACE, "random", latency_ms=1.0, table=latency, estimator=fake_accuracy, data=None, trials=2, calibrate=3, measure=lambda spec: measured.append(spec) or 5.0)
    assert len(measured) == 1  # refused after the first measurement, before calibrating further


def test_resume_after_an_interrupted_study_keeps_finished_trials(tmp_path, latency):
    storage = f"sqlite:///{tmp_path / 'study.sqlite'}"
    calls = []

    def counting(spec):
        calls.append(spec.name)
        return fake_accuracy(spec)

    options = dict(latency_ms=0.3, table=latency, data=None, measure=False, storage=storage)
    run(TINY_SPACE, "random", estimator=counting, trials=2, **options)
    assert len(calls) == 2
    import optuna

    study = optuna.load_study(study_name="tiny-random", storage=storage)
    stale = study.ask()  # what kill -9 in the middle of a trial leaves behind: a RUNNING trial
    stale.suggest_categorical("stem.width", [8])
    result = run(TINY_SPACE, "random", estimator=counting, trials=3, **options)
    assert len(calls) == 3  # the two finished trials were not trained again
    assert result.details["study_runs"][0]["retried_stale"] == 1
    assert sum(c.accuracy is not None for c in result.candidates) >= 3
    with pytest.raises(SearchError, match="other settings"):
        run(TINY_SPACE, "random", estimator=counting, trials=3, **{**options, "latency_ms": 0.4})


def test_proxies_are_finite_and_correlations_are_rank_based(tiny_data):
    from edgevision.search import ProxyScore, proxy_correlations, proxy_scores

    score = proxy_scores(TINY_SPACE.sample(0), data=tiny_data, resolution=16, batch=8)
    assert set(score.scores) == {"synflow", "naswot", "grad_norm", "params", "macs"}
    assert all(math.isfinite(v) for v in score.scores.values())
    fake = [ProxyScore(str(i), {"params": float(i), "macs": float(-i)}) for i in range(5)]
    correlations = proxy_correlations(fake, [0.1, 0.2, 0.3, 0.4, 0.5])
    assert correlations["params"]["spearman"] == pytest.approx(1.0)
    assert correlations["macs"]["kendall"] == pytest.approx(-1.0)


# ---- outputs and CLI -------------------------------------------------------------------------
def test_outputs_pareto_json_and_best_checkpoint(tmp_path, latency):
    import json

    out = tmp_path / "out"
    run(TINY_SPACE, "random", latency_ms=0.3, table=latency, estimator=fake_accuracy, data=None, trials=3, measure=lambda spec: 0.2, out=out)
    data = json.loads((out / "pareto.json").read_text())
    for row in data["pareto"]:
        assert {"spec", "predicted_ms", "measured_ms", "accuracy", "params", "macs"} <= set(row)
        assert NetworkSpec.from_dict(row["spec"]).name == row["network"]
    model = ev.load(out / "best.safetensors")
    assert model.spec.name == data["best"]
    assert {"report.md", "report.html", "front.png"} <= {p.name for p in out.iterdir()}
    assert "not overlaid" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--strategy", "annealing"], "unknown strategy 'annealing'"),
        (["--space", "huge"], "unknown search space 'huge'"),
        (["--ray-address", "127.0.0.1:1"], "no Ray cluster answers at 127.0.0.1:1"),
        (["--no-build"], "edgevision lut build"),
        (["--branch-budget", "0.5"], "--branch-budget is for --strategy repnas"),
        (["--strategy", "repnas", "--branch-budget", "1.5"], "--branch-budget must be in (0, 1]"),
        (["--accuracy", "oracle"], "unknown --accuracy 'oracle'"),
        (["--calibrate", "3", "--no-measure"], "--calibrate measures networks"),
        (["--calibrate", "-1"], "--calibrate must be >= 0"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, message, tmp_path, capsys):
    code = main(["search", "--latency-ms", "5", "--out", str(tmp_path / "o"), "--table", str(tmp_path / "t.sqlite"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_a_corrupt_study_database_and_leaves_it(tmp_path, capsys):
    bad = tmp_path / "study.sqlite"
    bad.write_bytes(b"not a database")
    code = main(["search", "--latency-ms", "5", "--out", str(tmp_path), "--table", str(tmp_path / "t.sqlite")])
    assert code == 2 and "corrupt or not an Optuna study" in capsys.readouterr().err
    assert bad.read_bytes() == b"not a database"


def test_cli_refuses_a_table_another_writer_holds_and_no_build_does_not_need_it(tmp_path, capsys):
    from edgevision.lut.build import table_lock

    table = tmp_path / "t.sqlite"
    argv = ["search", "--latency-ms", "5", "--out", str(tmp_path / "o"), "--table", str(table)]
    with table_lock(table):  # e.g. a `lut build` or another search measuring into the same table
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and f"latency table {str(table)!r} is in use by pid {os.getpid()}" in err and "--no-build" in err
        assert len(err.strip().splitlines()) == 1
        code = main([*argv, "--no-build"])  # pricing only: no lock needed, it fails on the empty table instead
        err = capsys.readouterr().err
        assert code == 2 and "edgevision lut build" in err and "in use by" not in err
    with table_lock(table):  # the refused and the failed run both let it go
        pass


# ---- Ray (slow to start: run with EDGEVISION_RAY_TESTS=1, `make test-search-ray`) --------------
@pytest.mark.skipif(os.environ.get("EDGEVISION_RAY_TESTS") != "1", reason="starts Ray (~10-30 s); make test-search-ray")
def test_random_search_on_local_ray(latency):
    result = run(TINY_SPACE, "random", latency_ms=0.3, table=latency, estimator=fake_accuracy, data=None, trials=4, workers=2, measure=False)
    assert sum(c.accuracy is not None for c in result.candidates) >= 4


# ---- --predictor: the fitted correction prices networks, the table sum is reported next to it ----------
def test_predictor_correction_prices_the_search_and_the_table_sum_is_kept(tmp_path, latency):
    import json

    from edgevision.lut import LatencyPredictor, SumCorrection

    corrected = LatencyModel(latency.table, SETTING, measure_block=fake_block_ms)
    corrected.predictor = LatencyPredictor(latency.table, SETTING, correction=SumCorrection((2.0, 0.0, 0.0, 0.05), 0.0))
    budget = 0.5
    result = run(TINY_SPACE, "random", latency_ms=budget, table=corrected, estimator=fake_accuracy, data=None, trials=4, measure=False, out=tmp_path / "o")
    for candidate in result.candidates:
        assert candidate.table_sum_ms == pytest.approx(latency.network_ms(candidate.spec))  # the plain sum, from the same table
        assert candidate.predicted_ms == pytest.approx(2.0 * candidate.table_sum_ms + 0.05)
    assert all(c.predicted_ms <= budget for c in result.candidates if c.accuracy is not None)  # the budget is on the prediction
    data = json.loads((tmp_path / "o" / "pareto.json").read_text())
    assert data["latency_model"].startswith("predictor") and all(row["table_sum_ms"] is not None for row in data["pareto"])
    assert "table sum ms" in (tmp_path / "o" / "report.md").read_text()


def test_cli_predictor_for_another_setting_is_one_line_exit_2(tmp_path, capsys):
    from edgevision.lut import LatencyPredictor, SumCorrection

    table = LatencyTable(tmp_path / "t.sqlite")
    LatencyPredictor(table, MeasurementSetting(runtime="ort", threads=1), correction=SumCorrection((1.0, 0.0, 0.0, 0.0), 0.0)).save(tmp_path / "p.json")
    table.close()
    code = main(["search", "--latency-ms", "5", "--out", str(tmp_path / "o"), "--table", str(tmp_path / "t.sqlite"), "--predictor", str(tmp_path / "p.json")])
    err = capsys.readouterr().err
    assert code == 2 and "was fitted for" in err and len(err.strip().splitlines()) == 1


# ---- weight sharing: one supernet, sub-networks inherit its weights ---------------------------------
def test_inherited_subnetwork_computes_exactly_the_supernets_path():
    import itertools

    from edgevision.search.sharing import inherit, path_of

    supernet = tiny_supernet()
    torch.manual_seed(0)
    model = ev.build(supernet).eval()
    for module in model.modules():  # trained-looking BN statistics, so a wrong copy shows
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 32, 32)
    layers = [m for m in model.modules() if isinstance(m, ev.blocks.ChoiceBlock)]
    for indices in itertools.product(range(2), range(3)):
        network = choose(supernet, indices)
        assert path_of(supernet, network) == list(indices)
        for layer, index in zip(layers, indices):
            layer.active = index
        inherited = inherit(supernet, model, indices).eval()
        assert inherited.spec == network and inherit(supernet, model, indices, name="toy-path").spec.name == "toy-path"
        with torch.no_grad():
            assert torch.equal(inherited(x), model(x))
    with pytest.raises(ValueError, match="not a candidate"):
        path_of(supernet, choose(supernet, [0, 0]).replace(stages=(StageSpec(blocks=(InvertedResidualSpec(out_channels=16, stride=2, kernel_size=7),)),)))


class Killed(BaseException):
    """Raised from the progress callback: the search stops there as a kill would (nothing after it runs)."""


def test_a_resumed_shared_weights_search_reuses_the_saved_supernet_and_refuses_another(latency, tiny_data, tmp_path):
    from edgevision.search.accuracy import _data
    from edgevision.search.sharing import SUPERNET_FILE, SharedWeights, path_of

    out = tmp_path / "o"
    options = dict(latency_ms=1.0, table=latency, accuracy="supernet", data=tiny_data, resolution=16, supernet_epochs=1, steps_per_epoch=2, measure=False, out=out)

    def kill_after_first_trial(line: str) -> None:
        if line.startswith("trial "):
            raise Killed(line)

    with pytest.raises(Killed):
        run(tiny_supernet(), "random", trials=3, progress=kill_after_first_trial, **options)
    saved = out / SUPERNET_FILE
    assert saved.is_file() and not list(out.glob(f".{SUPERNET_FILE}*.tmp"))  # written whole before the first trial
    lines = []
    result = run(tiny_supernet(), "random", trials=3, progress=lines.append, **options)
    assert not any("supernet (weight sharing) epoch" in line for line in lines)  # not retrained
    assert any("weights reused from" in line for line in lines)
    # every trial, before and after the kill, is scored by the one saved supernet
    reloaded = SharedWeights(tiny_supernet().with_classes(10), ev.load(saved), _data(tiny_data), 16)
    trained = [c for c in result.candidates if c.accuracy is not None]
    assert len({c.name for c in trained}) == 3 and all(0.0 <= c.accuracy <= 1.0 for c in trained)
    first, last = min(trained, key=lambda c: c.trial), max(trained, key=lambda c: c.trial)  # scored before and after the kill
    assert reloaded(first.spec) == pytest.approx(first.accuracy) and reloaded(last.spec) == pytest.approx(last.accuracy)
    shipped = result.best.spec
    assert shipped.name != tiny_supernet().name and path_of(tiny_supernet(), shipped)  # a named plain path of the supernet
    with pytest.raises(SearchError, match="random or evolution"):
        run(tiny_supernet(), "dnas", latency_ms=1.0, table=latency, accuracy="supernet", data=tiny_data, trials=1)

    with pytest.raises(SearchError, match=r"other settings \(epochs: 1 stored, 2 asked"):
        run(tiny_supernet(), "random", trials=3, **{**options, "supernet_epochs": 2})
    other = tiny_supernet().replace(name="other-supernet")
    with pytest.raises(SearchError, match="belong to another space or supernet spec"):
        run(other, "random", trials=3, **options)
    saved.write_bytes(saved.read_bytes()[:100])  # a damaged file is named, not retrained over
    with pytest.raises(SearchError, match="cannot be read"):
        run(tiny_supernet(), "random", trials=3, **options)


class DiesOnce:
    """An estimator whose worker process dies (os._exit) on its first call: what an OOM kill looks like to Ray."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __call__(self, spec: NetworkSpec) -> float:
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return fake_accuracy(spec)


@pytest.mark.skipif(os.environ.get("EDGEVISION_RAY_TESTS") != "1", reason="starts Ray (~10-30 s); make test-search-ray")
def test_a_trial_whose_ray_worker_dies_is_retried_and_recorded(latency, tmp_path):
    result = run(TINY_SPACE, "random", latency_ms=0.3, table=latency, estimator=DiesOnce(str(tmp_path / "died")), data=None, trials=2, workers=1, measure=False)
    assert (tmp_path / "died").exists()
    assert sum(c.accuracy is not None for c in result.candidates) >= 2
    assert result.details["study_runs"][0]["worker_retries"] == 1
    assert [c.extra["worker_retries"] for c in result.candidates if "worker_retries" in c.extra] == [1]
