"""Read-side queries for the dashboard's surrogate panel (predicted against measured, drift)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lts.store.db import Store
from lts.surrogate.data import measured
from lts.surrogate.fit import from_row, report_rows

__all__ = ["report_rows", "surrogate_choices", "heldout_points", "run_predictions", "drift_checks", "assisted_runs"]


def surrogate_choices(store: Store) -> pd.DataFrame:
    return pd.DataFrame(report_rows(store), columns=[
        "device", "protocol", "objective", "version", "model", "train_n", "test_n", "mape", "within_10", "kendall",
        "coverage_1sd", "params_mape", "params_kendall", "flops_mape", "flops_kendall", "adapted_from", "surrogate_id"])


def heldout_points(store: Store, surrogate_id: str) -> pd.DataFrame:
    """The architectures held out when the surrogate was fitted, with its prediction (mean and standard
    deviation) and relative error; stored at fit time, or (older rows) recomputed by refitting."""
    row = store.query("SELECT * FROM surrogates WHERE surrogate_id = ?", (surrogate_id,))[0]
    cols = ["arch_id", "measured", "predicted", "std", "error_pct"]
    stored = json.loads(row["figures_json"]).get("points")
    if stored is not None:
        df = pd.DataFrame(stored, columns=cols[:4])
        df["error_pct"] = (df["predicted"] - df["measured"]) / df["measured"] * 100
        return df
    sur = from_row(store, row)
    data = measured(store, row["device_id"], row["protocol"], row["objective"])
    train = set(json.loads(row["train_ids_json"]))
    keep = [i for i, a in enumerate(data.arch_ids) if a not in train]
    if not keep:
        return pd.DataFrame(columns=cols)
    test = data.subset(keep)
    mean, std = sur.model.predict(test.X)
    return pd.DataFrame({"arch_id": test.arch_ids, "measured": test.y, "predicted": mean, "std": std,
                         "error_pct": (mean - test.y) / test.y * 100})


def assisted_runs(store: Store) -> list[str]:
    """Runs with predictions, the most recently active first."""
    return [r["run_id"] for r in store.query(
        "SELECT run_id, MAX(predicted_at) AS last FROM predictions GROUP BY run_id ORDER BY last DESC, run_id")]


def run_predictions(store: Store, run_id: str) -> pd.DataFrame:
    """A surrogate-assisted run's predictions in order, the measured ones with their error."""
    df = pd.DataFrame(store.query(
        "SELECT arch_id, objective, mean, std, decision, measured, predicted_at FROM predictions WHERE run_id = ?"
        " ORDER BY predicted_at, arch_id", (run_id,)),
        columns=["arch_id", "objective", "mean", "std", "decision", "measured", "predicted_at"])
    df["error_pct"] = np.where(df["measured"].notna(), (df["mean"] - df["measured"]) / df["measured"] * 100, np.nan)
    return df


def drift_checks(store: Store, run_id: str | None = None) -> pd.DataFrame:
    sql = "SELECT run_id, check_index, arch_id, eval_index, latency_ms, ratio, flagged, measured_at FROM drift_checks"
    params: tuple = ()
    if run_id:
        sql += " WHERE run_id = ?"
        params = (run_id,)
    return pd.DataFrame(store.query(sql + " ORDER BY run_id, check_index", params),
                        columns=["run_id", "check_index", "arch_id", "eval_index", "latency_ms", "ratio", "flagged",
                                 "measured_at"])
