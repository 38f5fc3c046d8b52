"""Latency lookup tables and learned latency predictors that know this device (issue 6).

``build(space_or_models, runtime="ort", threads=2, table="lut.sqlite")`` measures each distinct
resolved block once into a :class:`LatencyTable` (SQLite, resumable); :class:`LatencyPredictor`
sums it, corrects the sum with a model fitted on networks measured end to end, and falls back to a
gradient-boosted :class:`BlockRegressor` for blocks never measured; ``validate`` measures how good
all that is on unseen networks against the machine's own run-to-run noise. See docs/lut.md.
"""

from .build import BLOCK_PLAN, BuildReport, build, distinct_blocks, measure_block_latency, resolve_networks
from .features import BLOCK_FEATURE_NAMES, block_features
from .key import KEY_VERSION, MeasurementSetting, block_from_key, block_key
from .predictor import BlockRegressor, LatencyPredictor, NetworkPrediction, SumCorrection
from .space import SPACES, SearchSpace, StageChoices, get_space, network_id
from .table import FORMAT_VERSION, BlockLatency, LatencyTable, LutError, OtherMachineError
from .validate import NETWORK_PLAN, TARGETS, AccuracyMetrics, ValidationReport, accuracy, plot_scatter, validate

__all__ = [
    "BLOCK_FEATURE_NAMES",
    "BLOCK_PLAN",
    "FORMAT_VERSION",
    "KEY_VERSION",
    "NETWORK_PLAN",
    "SPACES",
    "TARGETS",
    "AccuracyMetrics",
    "BlockLatency",
    "BlockRegressor",
    "BuildReport",
    "LatencyPredictor",
    "LatencyTable",
    "LutError",
    "MeasurementSetting",
    "NetworkPrediction",
    "OtherMachineError",
    "SearchSpace",
    "StageChoices",
    "SumCorrection",
    "ValidationReport",
    "accuracy",
    "block_features",
    "block_from_key",
    "block_key",
    "build",
    "distinct_blocks",
    "get_space",
    "measure_block_latency",
    "network_id",
    "plot_scatter",
    "resolve_networks",
    "validate",
]
