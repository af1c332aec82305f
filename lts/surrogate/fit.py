"""Fit, version, store and reload a cost surrogate per (device, protocol, objective).

A surrogate row keeps its training-set architecture ids, feature names, choice of model and figures;
the fitted model is rebuilt from those (scikit-learn fits here are deterministic and take well
under a second), so nothing opaque is pickled into the database and an old version can always be
reproduced from the measurements it names.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from lts.errors import LtsError
from lts.store.db import Store
from lts.surrogate.data import Measured, held_out_split, measured
from lts.surrogate.defaults import DEFAULT_TRAIN  # defined there, light, for the CLI; still importable from here
from lts.surrogate.features import FEATURES
from lts.surrogate.figures import figures, proxy_baselines
from lts.surrogate.model import KINDS, CostModel, fit_best


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


def split(data: Measured, n_train: int, seed: int) -> tuple[Measured, Measured]:
    """A seeded random training subset of at most ``n_train``; the rest is held out."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    n = min(n_train, len(data))
    return data.subset(sorted(order[:n])), data.subset(sorted(order[n:]))


def evaluate(model: CostModel, train: Measured, test: Measured) -> dict[str, Any]:
    """Held-out figures of ``model`` and of decoder params / FLOPs as predictors, side by side."""
    if len(test) == 0:
        return {"held_out": None, "baselines": None, "points": []}
    pred, std = model.predict(test.X)
    out = {"held_out": figures(pred, test.y), "baselines": proxy_baselines(train.X, train.y, test.X, test.y),
           "points": held_out_points(test.arch_ids, test.y, pred, std)}
    z = np.abs(pred - test.y) / np.maximum(std, 1e-12)
    out["held_out"]["coverage_1sd"] = round(float(np.mean(z <= 1.0) * 100), 1)  # ~68% if calibrated
    return out


def held_out_points(arch_ids: list[str], y: np.ndarray, pred: np.ndarray, std: np.ndarray) -> list[list[Any]]:
    """[arch_id, measured, predicted, std] per held-out architecture: the panel plots these without refitting."""
    return [[a, round(float(m), 5), round(float(p), 5), round(float(s), 5)] for a, m, p, s in zip(arch_ids, y, pred, std)]


def fit_surrogate(store: Store, device_id: str, protocol: str, objective: str, n_train: int = DEFAULT_TRAIN,
                  seed: int = 0, kinds: tuple[str, ...] = KINDS) -> Surrogate:
    """Fit on up to ``n_train`` measured architectures, report on the rest, store as a new version."""
    data = measured(store, device_id, protocol, objective)
    if len(data) < 5:
        raise LtsError(f"{len(data)} measured architectures for {objective} on this device and protocol "
                       f"({protocol}); a surrogate needs at least 5 (run a search or lts measure first)")
    train, test = split(data, n_train, seed)
    model, cv = fit_best(train.X, train.y, seed, kinds)
    figs = {"train_n": len(train), "cv_mape": cv, "chosen": model.kind, **evaluate(model, train, test),
            "model": model.describe(), "seconds_per_measurement": float(np.mean(data.seconds)) if len(data) else None}
    return save(store, device_id, protocol, objective, model, train.arch_ids, figs)


def save(store: Store, device_id: str, protocol: str, objective: str, model: CostModel, train_ids: list[str],
         figs: dict[str, Any], source_surrogate_id: str | None = None) -> Surrogate:
    sid = uuid.uuid4().hex[:12]
    with store.write() as conn:
        version = conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM surrogates WHERE device_id = ? AND protocol = ? AND objective = ?",
            (device_id, protocol, objective)).fetchone()[0]
        conn.execute(
            "INSERT INTO surrogates (surrogate_id, device_id, protocol, objective, version, model_kind, features_json,"
            " train_ids_json, figures_json, model_json, source_surrogate_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (sid, device_id, protocol, objective, version, model.kind, json.dumps(list(FEATURES)),
             json.dumps(train_ids), json.dumps(figs, sort_keys=True),
             json.dumps({"kind": model.kind, "seed": model.seed, "rel_std": model.rel_std}),
             source_surrogate_id, time.time()))
    return Surrogate(sid, device_id, protocol, objective, version, model, train_ids, figs, source_surrogate_id)


def load(store: Store, device_id: str, protocol: str, objective: str, version: int | None = None) -> Surrogate:
    """The latest (or a given) version, refitted from the measurements it names."""
    sql = "SELECT * FROM surrogates WHERE device_id = ? AND protocol = ? AND objective = ?"
    params: list[Any] = [device_id, protocol, objective]
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    rows = store.query(sql + " ORDER BY version DESC LIMIT 1", params)
    if not rows:
        raise LtsError(f"no {objective} surrogate for device {device_id} and protocol {protocol}; "
                       "fit one with lts surrogate fit")
    return from_row(store, rows[0])


def from_row(store: Store, row: dict[str, Any]) -> Surrogate:
    if json.loads(row["features_json"]) != list(FEATURES):
        raise LtsError(f"surrogate {row['surrogate_id']} was fitted on other features; fit a new version")
    spec = json.loads(row["model_json"])
    train_ids = json.loads(row["train_ids_json"])
    if row["source_surrogate_id"]:
        from lts.surrogate.transfer import load_adapted

        return load_adapted(store, row)
    data = measured(store, row["device_id"], row["protocol"], row["objective"], train_ids)
    if len(data) != len(train_ids):
        raise LtsError(f"surrogate {row['surrogate_id']}: {len(train_ids) - len(data)} of its training "
                       "measurements are gone from the database")
    model = CostModel(spec["kind"], spec["seed"], spec["rel_std"]).fit(data.X, data.y)
    return Surrogate(row["surrogate_id"], row["device_id"], row["protocol"], row["objective"], row["version"], model,
                     train_ids, json.loads(row["figures_json"]), None)


def report_rows(store: Store) -> list[dict[str, Any]]:
    """The latest version per (device, protocol, objective), flattened for a table."""
    rows = store.query(
        """SELECT s.*, d.name AS device_name FROM surrogates s JOIN devices d USING (device_id)
           WHERE s.version = (SELECT MAX(version) FROM surrogates t WHERE t.device_id = s.device_id
                              AND t.protocol = s.protocol AND t.objective = s.objective)
           ORDER BY d.name, s.protocol, s.objective""")
    out = []
    for r in rows:
        f = json.loads(r["figures_json"])
        h = f.get("held_out") or {}
        b = f.get("baselines") or {}
        out.append({
            "device": r["device_name"], "protocol": r["protocol"], "objective": r["objective"], "version": r["version"],
            "model": r["model_kind"], "train_n": f.get("train_n"), "test_n": h.get("n"), "mape": h.get("mape"),
            "within_10": h.get("within_10"), "kendall": h.get("kendall"), "coverage_1sd": h.get("coverage_1sd"),
            "params_mape": (b.get("decoder_params") or {}).get("mape"),
            "params_kendall": (b.get("decoder_params") or {}).get("kendall"),
            "flops_mape": (b.get("flops_per_token") or {}).get("mape"),
            "flops_kendall": (b.get("flops_per_token") or {}).get("kendall"),
            "adapted_from": r["source_surrogate_id"], "surrogate_id": r["surrogate_id"],
        })
    return out


def learning_curve(store: Store, device_id: str, protocol: str, objective: str, sizes: tuple[int, ...] = (50, 100, 200),
                   n_test: int = 100, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[dict[str, Any]]:
    """Figures against the training-set size, on one fixed held-out set of ``n_test`` architectures."""
    data = measured(store, device_id, protocol, objective)
    test, pool = held_out_split(data, n_test, min(sizes), seed)
    rows = []
    for n in sizes:
        if n > len(pool):
            break
        train = data.subset(sorted(pool[:n]))
        model, cv = fit_best(train.X, train.y, seed, kinds)
        e = evaluate(model, train, test)
        per_kind = {k: figures(CostModel(k, seed).fit(train.X, train.y).predict(test.X)[0], test.y)["mape"]
                    for k in kinds}
        rows.append({"train_n": n, "chosen": model.kind, **e["held_out"], "mape_by_kind": per_kind,
                     "params": e["baselines"]["decoder_params"], "flops": e["baselines"]["flops_per_token"]})
    return rows
