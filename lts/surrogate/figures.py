"""Error figures of a cost predictor on held-out architectures, and of the plain proxies as predictors."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from lts.surrogate.features import FEATURES

WITHIN = 0.10


def figures(pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """MAPE (%), share within +-10% (%), Kendall tau, worst error (%), n."""
    if len(y) == 0:
        return {"n": 0, "mape": None, "within_10": None, "kendall": None, "max_error": None}
    err = np.abs(pred - y) / y
    tau = stats.kendalltau(pred, y).statistic if len(y) > 1 else float("nan")
    return {"n": int(len(y)), "mape": round(float(err.mean() * 100), 3),
            "within_10": round(float(np.mean(err <= WITHIN) * 100), 2),
            "kendall": None if not np.isfinite(tau) else round(float(tau), 4),
            "max_error": round(float(err.max() * 100), 2)}


def power_law_baseline(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """``y = a * x^b`` fitted in log-log space: how far a single proxy (params, FLOPs) gets alone."""
    b, a = np.polyfit(np.log(x_train), np.log(y_train), 1)
    return np.exp(a + b * np.log(x_test))


def proxy_baselines(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    out = {}
    for name in ("decoder_params", "flops_per_token"):
        j = FEATURES.index(name)
        out[name] = figures(power_law_baseline(X_train[:, j], y_train, X_test[:, j]), y_test)
    return out


def held_out_points(arch_ids: list[str], y: np.ndarray, pred: np.ndarray, std: np.ndarray) -> list[list[Any]]:
    """[arch_id, measured, predicted, std] per held-out architecture: the panel plots these without refitting."""
    return [[a, round(float(m), 5), round(float(p), 5), round(float(s), 5)] for a, m, p, s in zip(arch_ids, y, pred, std)]
