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
  quantile regression (10th/50th/90th percentiles of log latency), conformally calibrated so the
  interval covers ~80% of unseen blocks: conformalized quantile regression (Romano, Patterson and
  Candès, NeurIPS 2019) scored on a 25% calibration split (``calibration="split"``, the default).
  ``calibration="cross"`` scores every row out of fold (5-fold cross-conformal, Vovk 2015): less
  variance in theory, but on the stored tables it over-covers (84.7% ORT / 86.0% eager against
  split's 82.7% / 83.3%, raw trees 66.7% / 64.0%; 5-fold cross-validated over 300 entries each,
  benchmarks/results/lut-calibration.md) at 6x the fits, so split stays the default. Network
  prediction falls back to it for blocks missing from the table and widens the network's
  uncertainty accordingly.
* **Network interval**: the corrected sum's ±80% half-width is the conformal quantile of the
  correction's leave-one-out relative errors on its training networks (jackknife+ style), not
  1.28 x its in-sample residual σ (which assumed normal errors and saw its own training fit).

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
    "conformal_quantile",
]

#: network-level features the correction is linear in (plus a constant)
NETWORK_FEATURE_NAMES = ("sum_ms", "blocks", "megabytes")

#: z for a two-sided 80% interval (10th to 90th percentile) of a normal distribution
_Z80 = 1.2815515655446004
#: the nominal coverage of every interval here
_COVERAGE = 0.8


class BlockRegressor:
    """Gradient-boosted quantile regression of log(block latency) on block features."""

    quantiles = (0.1, 0.5, 0.9)
    #: "split": conformity scores on one 25% calibration split (the scoring fits see 75%); "cross": out of
    #: fold over every row (``calibration_folds`` folds); "none": the raw quantile trees
    CALIBRATIONS = ("split", "cross", "none")

    def __init__(
        self,
        *,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 5,
        calibration: str = "split",
        calibration_folds: int = 5,
    ) -> None:
        if calibration not in self.CALIBRATIONS:
            raise ValueError(f"BlockRegressor calibration must be one of {self.CALIBRATIONS}, got {calibration!r}")
        if calibration_folds < 2:
            raise ValueError(f"BlockRegressor needs calibration_folds >= 2, got {calibration_folds}")
        self.hyperparameters = {
            "n_estimators": n_estimators,
            "learning_rate": learning_rate,
            "max_leaf_nodes": max_leaf_nodes,
            "min_samples_leaf": min_samples_leaf,
        }
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self._models: list = []
        self._rows: list[list[float]] = []
        self._targets: list[float] = []
        # conformalized quantile regression (Romano, Patterson and Candès, NeurIPS 2019): the widening
        # of the 10-90% interval, in log ms, that makes it cover 80% of blocks it was not fitted on
        self.conformal_offset = 0.0

    @property
    def coverage(self) -> float:
        """The nominal coverage of the interval (0.8)."""
        return self.quantiles[2] - self.quantiles[0]

    @property
    def fitted(self) -> bool:
        return bool(self._models)

    def fit(self, features: Sequence[dict[str, float]], latencies_ms: Sequence[float], *, conformal_offset: float | None = None) -> "BlockRegressor":
        """Fit the three quantile models on every row; calibrate unless ``conformal_offset`` is given (a saved fit)."""
        if len(features) != len(latencies_ms):
            raise ValueError(f"BlockRegressor.fit got {len(features)} feature rows but {len(latencies_ms)} latencies")
        if len(features) < 10:
            raise ValueError(f"BlockRegressor needs at least 10 measured blocks to fit, got {len(features)}; build a larger table")
        if any(not (t > 0) for t in latencies_ms):
            raise ValueError("BlockRegressor.fit needs positive latencies (it models log latency)")
        self._rows = [[float(row[name]) for name in BLOCK_FEATURE_NAMES] for row in features]
        self._targets = [float(t) for t in latencies_ms]
        x, y = np.asarray(self._rows), np.log(np.asarray(self._targets))
        if conformal_offset is not None:
            self.conformal_offset = float(conformal_offset)
        else:
            scores = self.calibration_scores(x, y)
            self.conformal_offset = conformal_quantile(scores, self.coverage) if len(scores) else 0.0
        self._models = self._fit_quantiles(x, y)
        return self

    def _fit_quantiles(self, rows: np.ndarray, targets: np.ndarray) -> list:
        # the exact (not histogram) trees: no OpenMP, whose thread pool fights torch's on a small CPU;
        # tables hold hundreds of rows, where the exact trees are just as fast
        from sklearn.ensemble import GradientBoostingRegressor

        return [GradientBoostingRegressor(loss="quantile", alpha=q, random_state=0, **self.hyperparameters).fit(rows, targets) for q in self.quantiles]

    def calibration_scores(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """CQR conformity scores max(low - y, y - high) (log ms) of rows the scoring models were not fitted on.

        Needs 40 rows (10+ per calibration part); fewer, or ``calibration="none"``: no scores (raw intervals).
        """
        if self.calibration == "none" or len(y) < 40:
            return np.empty(0)
        order = np.random.default_rng(0).permutation(len(y))
        if self.calibration == "split":
            parts = [order[: len(y) // 4]]
        else:
            parts = np.array_split(order, self.calibration_folds)
        scores = []
        for held_out in parts:
            kept = np.setdiff1d(order, held_out)
            low, _, high = self._fit_quantiles(x[kept], y[kept])
            scores.append(np.maximum(low.predict(x[held_out]) - y[held_out], y[held_out] - high.predict(x[held_out])))
        return np.concatenate(scores)

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
        return {
            "hyperparameters": self.hyperparameters,
            "feature_names": list(BLOCK_FEATURE_NAMES),
            "rows": self._rows,
            "latencies_ms": self._targets,
            "calibration": self.calibration,
            "calibration_folds": self.calibration_folds,
            "conformal_offset": self.conformal_offset,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "BlockRegressor":
        """Refit the saved rows deterministically; a saved ``conformal_offset`` is reused (no recalibration), older files recalibrate by splitting."""
        if data.get("feature_names") != list(BLOCK_FEATURE_NAMES):
            raise LutError("the saved block regressor uses other features than this edgevision; refit it from the table")
        # files written before cross-conformal calibration carry neither field: they were calibrated on a split
        regressor = cls(**data["hyperparameters"], calibration=data.get("calibration", "split"), calibration_folds=data.get("calibration_folds", 5))
        if data["rows"]:
            names = BLOCK_FEATURE_NAMES
            regressor.fit([dict(zip(names, row)) for row in data["rows"]], data["latencies_ms"], conformal_offset=data.get("conformal_offset"))
        return regressor


def conformal_quantile(scores: Sequence[float], coverage: float) -> float:
    """The finite-sample conformal quantile: the ceil((n + 1) x coverage)-th smallest score (the largest when that exceeds n)."""
    ordered = np.sort(np.asarray(scores, dtype=float))
    if not len(ordered):
        raise ValueError("conformal_quantile needs at least one score")
    rank = min(len(ordered), int(np.ceil((len(ordered) + 1) * coverage)))
    return float(ordered[rank - 1])


@dataclass(frozen=True)
class SumCorrection:
    """``measured ≈ coefficients · (sum_ms, blocks, megabytes, 1)``, fitted on relative error."""

    coefficients: tuple[float, float, float, float]
    relative_residual_std: float  # of the training fit: the correction's own uncertainty, relative
    # conformal 80% quantile of |leave-one-out relative error| on the training networks; None: a file
    # from before it existed, whose interval stays 1.28 x relative_residual_std
    relative_half_width_80: float | None = None

    @classmethod
    def fit(cls, network_features: Sequence[dict[str, float]], measured_ms: Sequence[float]) -> "SumCorrection":
        if len(network_features) != len(measured_ms):
            raise ValueError(f"SumCorrection.fit got {len(network_features)} networks but {len(measured_ms)} latencies")
        if len(network_features) < 8:
            raise ValueError(f"SumCorrection needs at least 8 measured training networks, got {len(network_features)}")
        x = np.asarray([[row[name] for name in NETWORK_FEATURE_NAMES] + [1.0] for row in network_features], dtype=float)
        y = np.asarray(measured_ms, dtype=float)
        coefficients = _relative_least_squares(x, y)
        relative = (x @ coefficients - y) / y
        dof = max(1, len(y) - x.shape[1])
        # each training network predicted by the fit on the others: errors of networks a fit never saw
        leave_one_out = [
            abs(float(x[i] @ _relative_least_squares(np.delete(x, i, 0), np.delete(y, i)) - y[i]) / y[i]) for i in range(len(y))
        ]
        return cls(
            tuple(float(c) for c in coefficients),
            float(math.sqrt(float(relative @ relative) / dof)),
            conformal_quantile(leave_one_out, _COVERAGE),
        )

    def half_width_ms(self, latency_ms: float) -> float:
        """Half-width of the correction's own ~80% interval around ``latency_ms``."""
        relative = self.relative_half_width_80 if self.relative_half_width_80 is not None else _Z80 * self.relative_residual_std
        return relative * abs(latency_ms)

    def apply(self, features: dict[str, float]) -> float:
        values = [features[name] for name in NETWORK_FEATURE_NAMES] + [1.0]
        return float(sum(c * v for c, v in zip(self.coefficients, values)))

    def to_dict(self) -> dict:
        return {
            "features": [*NETWORK_FEATURE_NAMES, "constant"],
            "coefficients": list(self.coefficients),
            "relative_residual_std": self.relative_residual_std,
            "relative_half_width_80": self.relative_half_width_80,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "SumCorrection":
        if data.get("features") != [*NETWORK_FEATURE_NAMES, "constant"]:
            raise LutError(f"the saved correction uses features {data.get('features')}, expected {[*NETWORK_FEATURE_NAMES, 'constant']}")
        return cls(tuple(data["coefficients"]), data["relative_residual_std"], data.get("relative_half_width_80"))


def _relative_least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Coefficients minimising the squared *relative* error (weights 1 / measured), so small and large networks count alike."""
    weights = 1.0 / y
    coefficients, *_ = np.linalg.lstsq(x * weights[:, None], y * weights, rcond=None)
    return coefficients


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
        half_width = _Z80 * math.sqrt(variance)  # the regressor's blocks
        if self.correction is not None:  # scaled by the correction's slope, combined with the correction's own interval
            half_width = math.hypot(half_width * self.correction.coefficients[0], self.correction.half_width_ms(latency))
        return NetworkPrediction(
            network=network.spec.name,
            latency_ms=latency,
            sum_ms=features["sum_ms"],
            uncertainty_ms=half_width,
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
        width = correction.get("relative_half_width_80")
        if width is not None and (not _finite_numbers([width]) or width < 0):
            return f"correction.relative_half_width_80 must be a finite number >= 0 or null, got {width!r}"
    if regressor is not None:
        if not isinstance(regressor, dict) or not isinstance(regressor.get("hyperparameters"), dict):
            return "'regressor' must be an object with 'hyperparameters' or null"
        rows, targets = regressor.get("rows"), regressor.get("latencies_ms")
        if not isinstance(rows, list) or not all(_finite_numbers(r, len(BLOCK_FEATURE_NAMES)) for r in rows):
            return f"regressor.rows must be lists of {len(BLOCK_FEATURE_NAMES)} finite numbers"
        if not _finite_numbers(targets, len(rows)) or any(t <= 0 for t in targets):
            return "regressor.latencies_ms must be one positive finite number per row"
        offset = regressor.get("conformal_offset")
        if offset is not None and not _finite_numbers([offset]):
            return f"regressor.conformal_offset must be a finite number or null, got {offset!r}"
        if regressor.get("calibration", "split") not in BlockRegressor.CALIBRATIONS:
            return f"regressor.calibration must be one of {BlockRegressor.CALIBRATIONS}, got {regressor.get('calibration')!r}"
        folds = regressor.get("calibration_folds", 5)
        if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
            return f"regressor.calibration_folds must be an integer >= 2, got {folds!r}"
    return None
