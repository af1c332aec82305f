"""Read-side queries for the dashboard's surrogate panel (predicted against measured, drift)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lts.errors import LtsError
from lts.store import surrogates as store_surrogates
from lts.store.db import Store
from lts.surrogate.data import measured
from lts.surrogate.fit import report_rows
from lts.surrogate.stored import from_record

__all__ = ["report_rows", "surrogate_choices", "heldout_points", "run_predictions", "drift_checks", "assisted_runs"]


def surrogate_choices(store: Store) -> pd.DataFrame:
    return pd.DataFrame(report_rows(store), columns=[
        "device", "protocol", "objective", "version", "model", "train_n", "test_n", "mape", "within_10", "kendall",
        "coverage_1sd", "params_mape", "params_kendall", "flops_mape", "flops_kendall", "adapted_from", "surrogate_id"])


def heldout_points(store: Store, surrogate_id: str) -> pd.DataFrame:
    """The architectures held out when the surrogate was fitted, with its prediction (mean and standard
    deviation) and relative error; stored at fit time, or (older rows) recomputed by refitting."""
    record = store_surrogates.get(store, surrogate_id)
    if record is None:
        raise LtsError(f"no surrogate {surrogate_id!r} in {store.path}")
    cols = ["arch_id", "measured", "predicted", "std", "error_pct"]
    stored = record.figures.get("points")
    if stored is not None:
        df = pd.DataFrame(stored, columns=cols[:4])
        df["error_pct"] = (df["predicted"] - df["measured"]) / df["measured"] * 100
        return df
    sur = from_record(store, record)
    data = measured(store, record.device_id, record.protocol, record.objective)
    train = set(record.train_ids)
    keep = [i for i, a in enumerate(data.arch_ids) if a not in train]
    if not keep:
        return pd.DataFrame(columns=cols)
    test = data.subset(keep)
    mean, std = sur.model.predict(test.X)
    return pd.DataFrame({"arch_id": test.arch_ids, "measured": test.y, "predicted": mean, "std": std,
                         "error_pct": (mean - test.y) / test.y * 100})


def assisted_runs(store: Store) -> list[str]:
    """Runs with predictions, the most recently active first."""
    return store_surrogates.assisted_runs(store)


def run_predictions(store: Store, run_id: str) -> pd.DataFrame:
    """A surrogate-assisted run's predictions in order, the measured ones with their error."""
    df = pd.DataFrame(
        store_surrogates.run_predictions(store, run_id),
        columns=["arch_id", "objective", "mean", "std", "decision", "measured", "predicted_at"])
    df["error_pct"] = np.where(df["measured"].notna(), (df["mean"] - df["measured"]) / df["measured"] * 100, np.nan)
    return df


def drift_checks(store: Store, run_id: str | None = None) -> pd.DataFrame:
    return pd.DataFrame(store_surrogates.drift_checks(store, run_id), columns=list(store_surrogates.DRIFT_COLUMNS))
