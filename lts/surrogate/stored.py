"""A stored surrogate and how it is rebuilt: fitted from scratch (:mod:`.fit`) or adapted from another
device's (:mod:`.transfer`). Both modules build on this one, so neither imports the other.

A surrogate row keeps its training-set architecture ids, feature names, choice of model and figures;
the fitted model is rebuilt from those, so nothing opaque is pickled into the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from lts.errors import LtsError
from lts.store import surrogates as store_surrogates
from lts.store.db import Store
from lts.store.surrogates import SurrogateRecord
from lts.surrogate.data import measured
from lts.surrogate.features import FEATURES
from lts.surrogate.model import CostModel


@dataclass
class Surrogate:
    surrogate_id: str
    device_id: str
    protocol: str
    objective: str
    version: int
    model: CostModel
    train_ids: list[str]
    figures: dict[str, Any]
    source_surrogate_id: str | None = None

    def predict_configs(self, configs: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        from lts.surrogate.features import Shape, matrix

        if not configs:
            return np.zeros(0), np.zeros(0)
        return self.model.predict(matrix(list(configs), Shape.from_protocol(self.protocol)))


@dataclass
class AdaptedModel:
    """``log y_new = a + b * log(source(x))``: another device's model calibrated on a few new measurements."""

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


def save(store: Store, device_id: str, protocol: str, objective: str, model: Any, train_ids: list[str],
         figs: dict[str, Any], source_surrogate_id: str | None = None) -> Surrogate:
    """Store a fitted (or adapted) model as the next version of its (device, protocol, objective)."""
    sid = uuid.uuid4().hex[:12]
    version = store_surrogates.insert_next_version(
        store, sid, device_id, protocol, objective, model.kind, FEATURES, train_ids, figs,
        {"kind": model.kind, "seed": model.seed, "rel_std": model.rel_std}, source_surrogate_id)
    return Surrogate(sid, device_id, protocol, objective, version, model, train_ids, figs, source_surrogate_id)


def load(store: Store, device_id: str, protocol: str, objective: str, version: int | None = None) -> Surrogate:
    """The latest (or a given) version, refitted from the measurements it names."""
    record = store_surrogates.latest(store, device_id, protocol, objective, version)
    if record is None:
        raise LtsError(f"no {objective} surrogate for device {device_id} and protocol {protocol}; "
                       "fit one with lts surrogate fit")
    return from_record(store, record)


def from_record(store: Store, record: SurrogateRecord) -> Surrogate:
    """Rebuild a stored surrogate: refit its model on the measurements it names (an adapted one on top of
    its source, rebuilt first)."""
    if record.features != list(FEATURES):
        raise LtsError(f"surrogate {record.surrogate_id} was fitted on other features; fit a new version")
    data = measured(store, record.device_id, record.protocol, record.objective, record.train_ids)
    if record.source_surrogate_id:
        source_record = store_surrogates.get(store, record.source_surrogate_id)
        if source_record is None:
            raise LtsError(f"surrogate {record.surrogate_id} was adapted from {record.source_surrogate_id}, "
                           "which is gone")
        source = from_record(store, source_record)
        model: Any = AdaptedModel(source.model).fit(data.X, data.y)
    else:
        if len(data) != len(record.train_ids):
            raise LtsError(f"surrogate {record.surrogate_id}: {len(record.train_ids) - len(data)} of its training "
                           "measurements are gone from the database")
        spec = record.model
        model = CostModel(spec["kind"], spec["seed"], spec["rel_std"]).fit(data.X, data.y)
    return Surrogate(record.surrogate_id, record.device_id, record.protocol, record.objective, record.version, model,
                     record.train_ids, record.figures, record.source_surrogate_id)
