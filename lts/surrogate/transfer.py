"""A surrogate for a new device from another device's, with a handful of measurements on the new one.

Across CPUs (or thread counts, batch sizes) the *ranking* of architectures by cost moves little and
the scale moves a lot, so the new device's cost is modelled as a power of the source prediction,
``log y_new = a + b * log(source(x))``: two numbers, fitted by least squares on the k new
measurements (HELP, Lee et al. 2021, adapts a meta-learned predictor from 10 samples; this is the
plain calibration it improves on, and often enough).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from lts.errors import LtsError
from lts.store.db import Store
from lts.surrogate.data import held_out_split, measured
from lts.surrogate.figures import figures
from lts.surrogate.fit import Surrogate, from_row, held_out_points, save
from lts.surrogate.model import CostModel


@dataclass
class AdaptedModel:
    source: Any  # CostModel or another AdaptedModel
    a: float = 0.0
    b: float = 1.0
    rel_std: float = 0.1
    kind: str = "adapted"
    seed: int = 0

    def fit(self, X: np.ndarray, y: np.ndarray) -> "AdaptedModel":
        if len(y) < 2:
            raise LtsError(f"adapting a surrogate needs at least 2 measurements on the new device, got {len(y)}")
        base = np.log(self.source.predict(X)[0])
        logy = np.log(y)
        if len(y) >= 4 and np.ptp(base) > 0:
            self.b, self.a = (float(v) for v in np.polyfit(base, logy, 1))
        else:  # too few points for a slope: keep the source's ranking exactly, fit the scale
            self.b, self.a = 1.0, float(np.mean(logy - base))
        resid = logy - (self.a + self.b * base)
        dof = max(1, len(y) - (2 if len(y) >= 4 else 1))
        # the source's own spread is a floor: k points cannot show that the new device is more regular
        self.rel_std = float(max(np.sqrt(np.sum(resid**2) / dof), getattr(self.source, "rel_std", 0.0)))
        return self

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.exp(self.a + self.b * np.log(self.source.predict(X)[0]))
        return mean, mean * self.rel_std

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "a": self.a, "b": self.b, "rel_std": self.rel_std}


def adapt(store: Store, source: Surrogate, device_id: str, protocol: str, k: int | None = None,
          seed: int = 0) -> Surrogate:
    """Adapt ``source`` to (device, protocol) from ``k`` of its measurements (all when None); stored."""
    data = measured(store, device_id, protocol, source.objective)
    if len(data) < 2:
        raise LtsError(f"{len(data)} {source.objective} measurements on the new device; adapting needs at least 2")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    n = len(data) if k is None else min(k, len(data))
    train, test = data.subset(sorted(order[:n])), data.subset(sorted(order[n:]))
    model = AdaptedModel(source.model).fit(train.X, train.y)
    figs: dict[str, Any] = {"train_n": n, "chosen": "adapted", "source": source.surrogate_id, "model": model.describe()}
    if len(test):
        pred, std = model.predict(test.X)
        figs["held_out"] = figures(pred, test.y)
        figs["points"] = held_out_points(test.arch_ids, test.y, pred, std)
    return save(store, device_id, protocol, source.objective, model, train.arch_ids,  # type: ignore[arg-type]
                figs, source_surrogate_id=source.surrogate_id)


def load_adapted(store: Store, row: dict[str, Any]) -> Surrogate:
    src_rows = store.query("SELECT * FROM surrogates WHERE surrogate_id = ?", (row["source_surrogate_id"],))
    if not src_rows:
        raise LtsError(f"surrogate {row['surrogate_id']} was adapted from {row['source_surrogate_id']}, which is gone")
    source = from_row(store, src_rows[0])
    train_ids = json.loads(row["train_ids_json"])
    data = measured(store, row["device_id"], row["protocol"], row["objective"], train_ids)
    model = AdaptedModel(source.model).fit(data.X, data.y)
    return Surrogate(row["surrogate_id"], row["device_id"], row["protocol"], row["objective"], row["version"],
                     model, train_ids, json.loads(row["figures_json"]), row["source_surrogate_id"])  # type: ignore[arg-type]


def transfer_curve(store: Store, source: Surrogate, device_id: str, protocol: str, ks: tuple[int, ...] = (5, 10, 20),
                   n_test: int = 100, draws: int = 10, seed: int = 0) -> list[dict[str, Any]]:
    """Held-out figures on the new device against k, averaged over ``draws`` random choices of the k;
    beside them, a linear surrogate fitted from scratch on the same k (is the source worth having?)."""
    data = measured(store, device_id, protocol, source.objective)
    source_ids = set(source.train_ids)
    test, pool = held_out_split(data, n_test, max(ks), seed)
    rows = []
    for k in ks:
        adapted, scratch = [], []
        for d in range(draws):
            pick = np.random.default_rng(seed + 1000 * k + d).choice(pool, size=k, replace=False)
            train = data.subset(sorted(pick))
            adapted.append(figures(AdaptedModel(source.model).fit(train.X, train.y).predict(test.X)[0], test.y))
            if k >= 5:
                scratch.append(figures(CostModel("linear").fit(train.X, train.y).predict(test.X)[0], test.y))

        def mean_of(rows_: list[dict[str, Any]], key: str) -> float | None:
            vals = [r[key] for r in rows_ if r[key] is not None]
            return round(float(np.mean(vals)), 3) if vals else None

        rows.append({"k": k, "draws": draws, "test_n": len(test),
                     "source_overlap": len(source_ids & set(test.arch_ids)),
                     **{f"adapted_{m}": mean_of(adapted, m) for m in ("mape", "within_10", "kendall")},
                     **{f"scratch_{m}": mean_of(scratch, m) for m in ("mape", "within_10", "kendall")}})
    return rows
