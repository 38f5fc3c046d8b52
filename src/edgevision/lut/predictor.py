"""Latency predictors over a :class:`LatencyTable`.

* **Sum of the table** (FBNet, Wu et al. 2019, Eq. 5; ProxylessNAS, Cai et al. 2019, Eq. 4):
  network latency = sum of its blocks' measured latencies.
* **Corrected sum**: the sum misses what happens between blocks (framework overhead per call and
  per block, fusion across block boundaries, activations staying in cache). :class:`SumCorrection`
  learns ``measured = a * sum + b * blocks + c * MB moved + d`` from a training set of networks
  measured end to end, by least squares on *relative* error (weights 1/measured), so small and
  large networks count alike.
* **Block regressor** (nn-Meter, Zhang et al. 2021, Sec. 4.2, with gradient-boosted trees instead of
  random forests): predicts a block never measured from its features, with an 80% interval from
  quantile regression (10th/50th/90th percentiles of log latency), conformally calibrated on a
  held-out split so the interval covers ~80% of unseen blocks. Network prediction falls back
  to it for blocks missing from the table and widens the network's uncertainty accordingly.

Everything saves to JSON without pickle: the correction is four coefficients; the regressor stores
its hyperparameters and training rows and refits deterministically on load.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..blocks.base import ResolvedBlock
from ..resolve import ResolvedNetwork
from .features import BLOCK_FEATURE_NAMES, block_features
from .key import MeasurementSetting, block_from_key, block_key
from .table import LatencyTable, LutError

__all__ = [
    "BlockRegressor",
    "LatencyPredictor",
    "NetworkPrediction",
    "SumCorrection",
    "NETWORK_FEATURE_NAMES",
]

#: network-level features the correction is linear in (plus a constant)
NETWORK_FEATURE_NAMES = ("sum_ms", "blocks", "megabytes")

#: z for a two-sided 80% interval (10th to 90th percentile) of a normal distribution
_Z80 = 1.2815515655446004


class BlockRegressor:
    """Gradient-boosted quantile regression of log(block latency) on block features."""

    quantiles = (0.1, 0.5, 0.9)

    def __init__(self, *, n_estimators: int = 300, learning_rate: float = 0.05, max_leaf_nodes: int = 15, min_samples_leaf: int = 5) -> None:
        self.hyperparameters = {
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "max_leaf_nodes": max_leaf_nodes,
            "min_samples_leaf": min_samples_leaf,
        }
        self._models: list = []
        self._rows: list[list[float]] = []
        self._targets: list[float] = []
        # conformalized quantile regression (Romano, Patterson and Candès, NeurIPS 2019): the widening
        # of the 10-90% interval, in log ms, that makes it cover 80% of a held-out calibration split
        self.conformal_offset = 0.0

    @property
    def fitted(self) -> bool:
        return bool(self._models)

    def fit(self, features: Sequence[dict[str, float]], latencies_ms: Sequence[float]) -> "BlockRegressor":
        # the exact (not histogram) trees: no OpenMP, whose thread pool fights torch's on a small CPU;
        # tables hold hundreds of rows, where the exact trees are just as fast
        from sklearn.ensemble import GradientBoostingRegressor

        if len(features) != len(latencies_ms):
            raise ValueError(f"BlockRegressor.fit got {len(features)} feature rows but {len(latencies_ms)} latencies")
        if len(features) < 10:
            raise ValueError(f"BlockRegressor needs at least 10 measured blocks to fit, got {len(features)}; build a larger table")
        if any(not (t > 0) for t in latencies_ms):
            raise ValueError("BlockRegressor.fit needs positive latencies (it models log latency)")
        self._rows = [[float(row[name]) for name in BLOCK_FEATURE_NAMES] for row in features]
        self._targets = [float(t) for t in latencies_ms]
        x, y = np.asarray(self._rows), np.log(np.asarray(self._targets))

        def fit_quantiles(rows: np.ndarray, targets: np.ndarray) -> list:
            return [
                GradientBoostingRegressor(loss="quantile", alpha=q, random_state=0, **self.hyperparameters).fit(rows, targets)
                for q in self.quantiles
            ]

        self.conformal_offset = 0.0
        if len(y) >= 40:  # enough for a calibration split of 10+ blocks: fit on 75%, score the other 25%
            order = np.random.default_rng(0).permutation(len(y))
            calibration, proper = order[: len(y) // 4], order[len(y) // 4 :]
            low, _, high = fit_quantiles(x[proper], y[proper])
            scores = np.maximum(low.predict(x[calibration]) - y[calibration], y[calibration] - high.predict(x[calibration]))
            coverage = self.quantiles[2] - self.quantiles[0]
            rank = min(len(scores), int(np.ceil((len(scores) + 1) * coverage)))  # the finite-sample conformal quantile
            self.conformal_offset = float(np.sort(scores)[rank - 1])  # negative: the raw interval was too wide
        self._models = fit_quantiles(x, y)
        return self

    def fit_table(self, table: LatencyTable, setting: MeasurementSetting) -> "BlockRegressor":
        """Fit on every entry of ``table`` measured under ``setting``."""
        rows, targets = [], []
        for key, latency in table.items():
            block, entry_setting = block_from_key(key)
            if entry_setting == setting and latency.median_ms > 0:
                rows.append(block_features(block, setting))
                targets.append(latency.median_ms)
        return self.fit(rows, targets)

    def predict(self, features: Sequence[dict[str, float]]) -> np.ndarray:
        """(n, 3) array of the 10th, 50th and 90th percentile latency in ms."""
        if not self.fitted:
            raise LutError("BlockRegressor is not fitted; call fit() or fit_table() first")
        x = np.asarray([[float(row[name]) for name in BLOCK_FEATURE_NAMES] for row in features])
        log_predictions = np.sort(np.column_stack([model.predict(x) for model in self._models]), axis=1)  # fitted apart, they can cross
        log_predictions[:, 0] -= self.conformal_offset
        log_predictions[:, 2] += self.conformal_offset
        return np.sort(np.exp(log_predictions), axis=1)

    def to_dict(self) -> dict:
        return {"hyperparameters": self.hyperparameters, "feature_names": list(BLOCK_FEATURE_NAMES), "rows": self._rows, "latencies_ms": self._targets}

    @classmethod
    def from_dict(cls, data: dict) -> "BlockRegressor":
        if data.get("feature_names") != list(BLOCK_FEATURE_NAMES):
            raise LutError("the saved block regressor uses other features than this edgevision; refit it from the table")
        regressor = cls(**data["hyperparameters"])
        if data["rows"]:
            names = BLOCK_FEATURE_NAMES
            regressor.fit([dict(zip(names, row)) for row in data["rows"]], data["latencies_ms"])
        return regressor


@dataclass(frozen=True)
class SumCorrection:
    """``measured ≈ coefficients · (sum_ms, blocks, megabytes, 1)``, fitted on relative error."""

    coefficients: tuple[float, float, float, float]
    relative_residual_std: float  # of the training fit: the correction's own uncertainty, relative

    @classmethod
    def fit(cls, network_features: Sequence[dict[str, float]], measured_ms: Sequence[float]) -> "SumCorrection":
        if len(network_features) != len(measured_ms):
            raise ValueError(f"SumCorrection.fit got {len(network_features)} networks but {len(measured_ms)} latencies")
        if len(network_features) < 8:
            raise ValueError(f"SumCorrection needs at least 8 measured training networks, got {len(network_features)}")
        x = np.asarray([[row[name] for name in NETWORK_FEATURE_NAMES] + [1.0] for row in network_features], dtype=float)
        y = np.asarray(measured_ms, dtype=float)
        weights = 1.0 / y  # least squares on (prediction - measured) / measured
        coefficients, *_ = np.linalg.lstsq(x * weights[:, None], y * weights, rcond=None)
        relative = (x @ coefficients - y) / y
        dof = max(1, len(y) - x.shape[1])
        return cls(tuple(float(c) for c in coefficients), float(math.sqrt(float(relative @ relative) / dof)))

    def apply(self, features: dict[str, float]) -> float:
        values = [features[name] for name in NETWORK_FEATURE_NAMES] + [1.0]
        return float(sum(c * v for c, v in zip(self.coefficients, values)))

    def to_dict(self) -> dict:
        return {"features": [*NETWORK_FEATURE_NAMES, "constant"], "coefficients": list(self.coefficients), "relative_residual_std": self.relative_residual_std}

    @classmethod
    def from_dict(cls, data: dict) -> "SumCorrection":
        if data.get("features") != [*NETWORK_FEATURE_NAMES, "constant"]:
            raise LutError(f"the saved correction uses features {data.get('features')}, expected {[*NETWORK_FEATURE_NAMES, 'constant']}")
        return cls(tuple(data["coefficients"]), data["relative_residual_std"])


@dataclass(frozen=True)
class NetworkPrediction:
    network: str
    latency_ms: float  # the corrected sum when a correction is fitted, else the sum
    sum_ms: float  # sum over blocks: table entries, regressor medians for missing blocks
    uncertainty_ms: float  # half-width of an ~80% interval (missing blocks and correction residual combined)
    blocks: int
    missing_blocks: int  # blocks the table lacks, predicted by the regressor
    megabytes: float  # bytes moved by all blocks (cost model), in MB

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class LatencyPredictor:
    """Network latency from a table (+ optional regressor for missing blocks, + optional correction)."""

    def __init__(
        self,
        table: LatencyTable,
        setting: MeasurementSetting,
        *,
        regressor: BlockRegressor | None = None,
        correction: SumCorrection | None = None,
    ) -> None:
        self.table = table
        self.setting = setting
        self.regressor = regressor
        self.correction = correction

    def network_features(self, network: ResolvedNetwork) -> tuple[dict[str, float], int, float]:
        """(features for the correction, missing blocks, variance of the regressor's share of the sum)."""
        total = 0.0
        megabytes = 0.0
        missing: list[ResolvedBlock] = []
        for block in network:
            entry = self.table.get(block_key(block, self.setting))
            megabytes += block_features(block, self.setting)["bytes"] / 1e6
            if entry is None:
                missing.append(block)
            else:
                total += entry.median_ms
        variance = 0.0
        if missing:
            if self.regressor is None or not self.regressor.fitted:
                raise LutError(
                    f"{len(missing)} block(s) of {network.spec.name} are not in {self.table.path} (first: {missing[0].path} "
                    f"{missing[0].spec.kind}); run `edgevision lut build` for this network, or fit a block regressor"
                )
            quantiles = self.regressor.predict([block_features(block, self.setting) for block in missing])
            total += float(quantiles[:, 1].sum())
            # 80% interval -> sigma per block; summed, not added in quadrature: one network's block errors are
            # correlated (the same kinds and shapes), so independence would understate the uncertainty
            variance = float(((quantiles[:, 2] - quantiles[:, 0]) / (2 * _Z80)).sum()) ** 2
        return {"sum_ms": total, "blocks": float(len(network)), "megabytes": megabytes}, len(missing), variance

    def predict(self, network: ResolvedNetwork) -> NetworkPrediction:
        features, missing, variance = self.network_features(network)
        latency = features["sum_ms"] if self.correction is None else self.correction.apply(features)
        if self.correction is not None:  # scale the block variance by the correction's slope, add its residual
            variance = variance * self.correction.coefficients[0] ** 2 + (self.correction.relative_residual_std * latency) ** 2
        return NetworkPrediction(
            network=network.spec.name,
            latency_ms=latency,
            sum_ms=features["sum_ms"],
            uncertainty_ms=_Z80 * math.sqrt(variance),
            blocks=int(features["blocks"]),
            missing_blocks=missing,
            megabytes=features["megabytes"],
        )

    def fit_correction(self, networks: Sequence[ResolvedNetwork], measured_ms: Sequence[float]) -> SumCorrection:
        """Fit (and keep) the correction on networks measured end to end."""
        self.correction = SumCorrection.fit([self.network_features(n)[0] for n in networks], measured_ms)
        return self.correction

    # ---- persistence (JSON, no pickle) ----------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        from ..atomic import atomic_write_text

        data = {
            "format": "edgevision-latency-predictor",
            "version": 1,
            "setting": self.setting.to_dict(),
            "table_fingerprint": self.table.fingerprint,
            "correction": None if self.correction is None else self.correction.to_dict(),
            "regressor": None if self.regressor is None else self.regressor.to_dict(),
        }
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike, table: LatencyTable) -> "LatencyPredictor":
        data = read_predictor_file(path)
        if data["table_fingerprint"] != table.fingerprint:
            raise LutError(f"{path} was fitted on a table from machine {data['table_fingerprint']}, {table.path} is from {table.fingerprint}")
        try:
            return cls(
                table,
                MeasurementSetting(**data["setting"]),
                regressor=None if data["regressor"] is None else BlockRegressor.from_dict(data["regressor"]),
                correction=None if data["correction"] is None else SumCorrection.from_dict(data["correction"]),
            )
        except (TypeError, KeyError, ValueError) as error:
            if isinstance(error, LutError):
                raise
            raise LutError(f"{path}: {type(error).__name__}: {' '.join(str(error).split())[:200]}; the file is damaged") from None


def read_predictor_file(path: str | os.PathLike) -> dict:
    """The predictor JSON, checked for format, version and shape without a table (LutError naming what is wrong)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise LutError(f"cannot read predictor {str(path)!r}: {' '.join(str(error).split())[:200]}") from None
    if not isinstance(data, dict) or data.get("format") != "edgevision-latency-predictor" or data.get("version") != 1:
        raise LutError(f"{path} is not an edgevision latency predictor (version 1); write one with `edgevision lut validate`")
    problem = _predictor_problem(data)
    if problem:
        raise LutError(f"{path}: {problem}; the file is damaged, write it again with `edgevision lut validate`")
    return data


def _finite_numbers(values, length: int | None = None) -> bool:
    return (
        isinstance(values, list)
        and (length is None or len(values) == length)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    )


def _predictor_problem(data: dict) -> str | None:
    """What is wrong with a predictor.json's fields (None if every field has its type and length)."""
    if not isinstance(data.get("table_fingerprint"), str):
        return "'table_fingerprint' must be a string"
    if not isinstance(data.get("setting"), dict):
        return "'setting' must be an object"
    for name in ("correction", "regressor"):
        if name not in data:
            return f"{name!r} is missing"
    correction, regressor = data["correction"], data["regressor"]
    if correction is not None:
        if not isinstance(correction, dict):
            return "'correction' must be an object or null"
        if not _finite_numbers(correction.get("coefficients"), len(NETWORK_FEATURE_NAMES) + 1):
            return f"correction.coefficients must be {len(NETWORK_FEATURE_NAMES) + 1} finite numbers, got {json.dumps(correction.get('coefficients'))[:60]}"
        std = correction.get("relative_residual_std")
        if not _finite_numbers([std]) or std < 0:
            return f"correction.relative_residual_std must be a finite number >= 0, got {std!r}"
    if regressor is not None:
        if not isinstance(regressor, dict) or not isinstance(regressor.get("hyperparameters"), dict):
            return "'regressor' must be an object with 'hyperparameters' or null"
        rows, targets = regressor.get("rows"), regressor.get("latencies_ms")
        if not isinstance(rows, list) or not all(_finite_numbers(r, len(BLOCK_FEATURE_NAMES)) for r in rows):
            return f"regressor.rows must be lists of {len(BLOCK_FEATURE_NAMES)} finite numbers"
        if not _finite_numbers(targets, len(rows)) or any(t <= 0 for t in targets):
            return "regressor.latencies_ms must be one positive finite number per row"
    return None
