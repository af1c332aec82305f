"""Regressors that predict a positive cost (latency or peak memory) with an uncertainty.

Candidates, chosen per (device, protocol, objective) by cross-validated error on the training set:

* ``linear`` -- the baseline: non-negative weights on the cost terms (time and memory add up over
  FLOPs, score work, element-wise work, weights), scikit-learn ``LinearRegression(positive=True)``.
* ``gbm`` -- gradient-boosted trees (scikit-learn ``HistGradientBoostingRegressor``) on log features,
  predicting log cost.
* ``linear+gp`` -- the baseline, corrected by a Gaussian process (scikit-learn, ARD RBF + white
  noise) fitted to the log ratio measured / baseline: the GP learns what the cost terms miss, and
  its posterior standard deviation is the uncertainty.

Every prediction is a positive mean and a standard deviation in the same unit, never a sample.
For ``linear`` and ``gbm`` the deviation is the cross-validated spread of the log ratio (a constant
relative error); for ``linear+gp`` it is the GP's, per architecture.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lts.errors import LtsError
from lts.surrogate.defaults import KINDS  # noqa: F401  re-exported: defined without numpy for the CLI
from lts.surrogate.features import COST_TERMS, FEATURES, log1p_matrix

_COST_IDX = [FEATURES.index(n) for n in COST_TERMS]
_FLOOR = 1e-6


def _fit_linear(X: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.linear_model import LinearRegression

    Xc = X[:, _COST_IDX]
    scale = np.maximum(Xc.max(axis=0), 1e-12)  # columns span 1e0..1e10: scale before the solver
    model = LinearRegression(positive=True).fit(Xc / scale, y)
    return model, scale


def _predict_linear(fitted: Any, X: np.ndarray) -> np.ndarray:
    model, scale = fitted
    return np.maximum(model.predict(X[:, _COST_IDX] / scale), _FLOOR)


@dataclass
class CostModel:
    """One fitted regressor; ``predict`` gives (mean, std), both positive, in the target's unit."""

    kind: str
    seed: int = 0
    rel_std: float = 0.1  # log-space spread for kinds without their own uncertainty (set by fit)
    _state: dict[str, Any] = field(default_factory=dict, repr=False)

    def fit(self, X: np.ndarray, y: np.ndarray) -> "CostModel":
        if self.kind not in KINDS:
            raise LtsError(f"unknown surrogate kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if len(y) < 3:
            raise LtsError(f"a surrogate needs at least 3 measured architectures, got {len(y)}")
        if np.any(y <= 0):
            raise LtsError("costs to fit must be positive")
        logy = np.log(y)
        if self.kind == "linear":
            self._state["linear"] = _fit_linear(X, y)
        elif self.kind == "gbm":
            from sklearn.ensemble import HistGradientBoostingRegressor

            self._state["gbm"] = HistGradientBoostingRegressor(
                max_iter=150, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=max(3, len(y) // 40),
                l2_regularization=1e-3, random_state=self.seed).fit(log1p_matrix(X), logy)
        else:
            from sklearn.gaussian_process import GaussianProcessRegressor
            from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
            from sklearn.preprocessing import StandardScaler

            lin = _fit_linear(X, y)
            resid = logy - np.log(_predict_linear(lin, X))
            # the GP sees the cost terms only: one length scale each keeps the fit well under a second
            Z = log1p_matrix(X[:, _COST_IDX])
            scaler = StandardScaler().fit(Z)
            kernel = (ConstantKernel(0.01, (1e-5, 10.0)) * RBF(np.full(Z.shape[1], 3.0), (1e-1, 1e3))
                      + WhiteKernel(1e-3, (1e-6, 1.0)))
            with warnings.catch_warnings():  # bounds reached on tiny training sets: the fit is still usable
                warnings.simplefilter("ignore")
                gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=0,
                                              random_state=self.seed).fit(scaler.transform(Z), resid)
            self._state.update(linear=lin, gp=gp, scaler=scaler)
        return self

    def _log_mean_std(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.kind == "linear":
            return np.log(_predict_linear(self._state["linear"], X)), np.full(len(X), self.rel_std)
        if self.kind == "gbm":
            return self._state["gbm"].predict(log1p_matrix(X)), np.full(len(X), self.rel_std)
        base = np.log(_predict_linear(self._state["linear"], X))
        Z = self._state["scaler"].transform(log1p_matrix(X[:, _COST_IDX]))
        corr, std = self._state["gp"].predict(Z, return_std=True)
        return base + corr, np.maximum(std, 1e-4)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (positive) and standard deviation (same unit) of the cost of each row of ``X``."""
        log_mean, log_std = self._log_mean_std(X)
        mean = np.exp(log_mean)
        return mean, mean * log_std  # a relative (log-space) spread, expressed in the target's unit

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "seed": self.seed, "rel_std": self.rel_std}
        if "linear" in self._state:
            model, scale = self._state["linear"]
            out["linear_terms"] = {n: float(c / s) for n, c, s in zip(COST_TERMS, model.coef_, scale)}
            out["linear_intercept"] = float(model.intercept_)
        if "gp" in self._state:
            out["gp_kernel"] = str(self._state["gp"].kernel_)
        return out


def cross_validated(kind: str, X: np.ndarray, y: np.ndarray, seed: int, folds: int = 5) -> np.ndarray:
    """Out-of-fold predictions of ``kind`` on the training set (for model choice and ``rel_std``)."""
    from sklearn.model_selection import KFold

    pred = np.empty(len(y))
    k = min(folds, len(y))
    for train, test in KFold(k, shuffle=True, random_state=seed).split(X):
        pred[test] = CostModel(kind, seed).fit(X[train], y[train]).predict(X[test])[0]
    return pred


def fit_best(X: np.ndarray, y: np.ndarray, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> tuple[CostModel, dict[str, float]]:
    """The kind with the lowest cross-validated mean absolute percentage error, refitted on all of ``X``.

    Returns the model and each kind's cross-validated MAPE (%).
    """
    scores: dict[str, float] = {}
    spreads: dict[str, float] = {}
    for kind in kinds:
        oof = cross_validated(kind, X, y, seed)
        scores[kind] = float(np.mean(np.abs(oof - y) / y) * 100)
        spreads[kind] = float(np.std(np.log(y) - np.log(oof)))
    best = min(kinds, key=lambda k: (scores[k], kinds.index(k)))
    model = CostModel(best, seed, rel_std=max(spreads[best], 1e-3)).fit(X, y)
    return model, scores
