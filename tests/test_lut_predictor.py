"""Predictors on synthetic data with a known structure: the correction recovers it, the regressor fills gaps."""

from __future__ import annotations

import numpy as np
import pytest
from lut_helpers import CONSTANT, PER_BLOCK, SLOPE, TINY_SPACE, FakeBlockMeasure, synthetic_block_ms, synthetic_network_ms

from edgevision.lut import (
    BlockRegressor,
    LatencyPredictor,
    LatencyTable,
    LutError,
    MeasurementSetting,
    SearchSpace,
    SumCorrection,
    block_features,
    block_key,
    build,
    resolve_networks,
)

SETTING = MeasurementSetting(runtime="ort", threads=2)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A table of 20 tiny networks' blocks, filled from the known formula."""
    path = tmp_path_factory.mktemp("lut") / "lut.sqlite"
    networks = resolve_networks(TINY_SPACE, count=20, seed=1)
    build(networks, "ort", 2, path, measure_block=FakeBlockMeasure())
    return path, networks


def test_space_sampling_is_reproducible_and_round_trips():
    assert SearchSpace.from_json(TINY_SPACE.to_json()) == TINY_SPACE and hash(TINY_SPACE)
    first, second = TINY_SPACE.sample_many(5, seed=3), TINY_SPACE.sample_many(5, seed=3)
    assert first == second and len({spec.name for spec in first}) == 5
    kinds = {block.kind for spec in TINY_SPACE.sample_many(40, seed=0) for stage in spec.stages for block in stage.blocks}
    assert kinds == {"inverted_residual", "ghost_bottleneck", "shufflenet_v2_unit", "repvgg_block", "resnet_basic"}
    with pytest.raises(ValueError, match="must all exceed the widest earlier choice"):
        TINY_SPACE.replace(stem_widths=(64,))
    with pytest.raises(ValueError, match="block_kinds has 'transformer'"):
        TINY_SPACE.stages[0].replace(block_kinds=("transformer",))


def test_correction_recovers_the_known_overhead(synthetic):
    path, networks = synthetic
    with LatencyTable(path) as table:
        predictor = LatencyPredictor(table, SETTING)
        measured = [synthetic_network_ms(n, SETTING) for n in networks[:12]]
        plain = predictor.predict(networks[15])
        correction = predictor.fit_correction(networks[:12], measured)
        # measured = 1.2 * sum + 0.05 * blocks + 0 * MB + 0.3, exactly
        assert correction.coefficients == pytest.approx((SLOPE, PER_BLOCK, 0.0, CONSTANT), abs=1e-6)
        assert correction.relative_residual_std < 1e-6
        for network in networks[12:]:  # networks the correction never saw
            prediction = predictor.predict(network)
            assert prediction.latency_ms == pytest.approx(synthetic_network_ms(network, SETTING), rel=1e-6)
            assert prediction.missing_blocks == 0 and prediction.uncertainty_ms < 1e-6
        # the plain sum misses the overhead by exactly the known amount
        assert plain.latency_ms == plain.sum_ms
        assert synthetic_network_ms(networks[15], SETTING) - plain.sum_ms * SLOPE == pytest.approx(PER_BLOCK * plain.blocks + CONSTANT)


def test_correction_needs_enough_networks():
    with pytest.raises(ValueError, match="at least 8"):
        SumCorrection.fit([{"sum_ms": 1.0, "blocks": 3.0, "megabytes": 1.0}] * 3, [1.0] * 3)


def test_block_regressor_predicts_unmeasured_blocks_with_an_interval(synthetic):
    path, networks = synthetic
    with LatencyTable(path) as table:
        regressor = BlockRegressor(n_estimators=80).fit_table(table, SETTING)
    unseen = [b for n in resolve_networks(TINY_SPACE, count=10, seed=99) for b in n]
    with LatencyTable(path) as table:
        unseen = list({block_key(b, SETTING): b for b in unseen if block_key(b, SETTING) not in table}.values())
    assert len(unseen) >= 5
    quantiles = regressor.predict([block_features(b, SETTING) for b in unseen])
    truth = np.array([synthetic_block_ms(b, SETTING) for b in unseen])
    assert np.all(quantiles[:, 0] <= quantiles[:, 1]) and np.all(quantiles[:, 1] <= quantiles[:, 2])
    assert np.all(quantiles[:, 2] > quantiles[:, 0])  # a real interval, not a point
    assert np.median(np.abs(quantiles[:, 1] - truth) / truth) < 0.35  # learnt the structure, roughly
    constant = np.full_like(truth, np.median(truth))  # ... and better than guessing one number for every block
    assert np.mean(np.abs(quantiles[:, 1] - truth) / truth) < np.mean(np.abs(constant - truth) / truth)


def test_missing_blocks_fall_back_to_the_regressor_and_widen_uncertainty(synthetic, tmp_path):
    path, networks = synthetic
    partial = tmp_path / "partial.sqlite"
    target = networks[0]
    dropped = block_key(target.blocks[2], SETTING)
    with LatencyTable(path) as full, LatencyTable(partial) as table:
        for key, latency in full.items():
            if key != dropped:
                table.put(key, latency)
        with pytest.raises(LutError, match="not in .*lut build"):
            LatencyPredictor(table, SETTING).predict(target)
        predictor = LatencyPredictor(table, SETTING, regressor=BlockRegressor(n_estimators=40).fit_table(table, SETTING))
        prediction = predictor.predict(target)
        exact = full.get(dropped).median_ms
        known = sum(full.get(block_key(b, SETTING)).median_ms for b in target) - exact
        assert prediction.missing_blocks == 1 and prediction.uncertainty_ms > 0
        assert prediction.sum_ms > known  # the regressor added something positive for the missing block


def test_predictor_saves_and_loads_without_pickle(synthetic, tmp_path):
    path, networks = synthetic
    with LatencyTable(path) as table:
        predictor = LatencyPredictor(table, SETTING, regressor=BlockRegressor(n_estimators=20).fit_table(table, SETTING))
        predictor.fit_correction(networks[:10], [synthetic_network_ms(n, SETTING) for n in networks[:10]])
        predictor.save(tmp_path / "predictor.json")
        text = (tmp_path / "predictor.json").read_text()
        assert text.lstrip().startswith("{")  # plain JSON
        loaded = LatencyPredictor.load(tmp_path / "predictor.json", table)
        assert loaded.correction == predictor.correction and loaded.setting == SETTING
        features = [block_features(b, SETTING) for b in networks[19]]
        np.testing.assert_allclose(loaded.regressor.predict(features), predictor.regressor.predict(features))
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with LatencyTable(path) as table, pytest.raises(LutError, match="not an edgevision latency predictor"):
        LatencyPredictor.load(tmp_path / "bad.json", table)
