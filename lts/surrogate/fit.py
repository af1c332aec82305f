"""Fit, version and report a cost surrogate per (device, protocol, objective).

A surrogate row keeps its training-set architecture ids, feature names, choice of model and figures;
the fitted model is rebuilt from those (scikit-learn fits here are deterministic and take well
under a second), so nothing opaque is pickled into the database and an old version can always be
reproduced from the measurements it names (:mod:`lts.surrogate.stored`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lts.errors import LtsError
from lts.store import surrogates as store_surrogates
from lts.store.db import Store
from lts.surrogate.data import Measured, held_out_split, measured
from lts.surrogate.defaults import DEFAULT_TRAIN, HOLD_OUT  # defined there, light, for the CLI; still importable from here
from lts.surrogate.figures import figures, held_out_points, proxy_baselines
from lts.surrogate.model import KINDS, CostModel, fit_best
from lts.surrogate.stored import Surrogate, from_record, load, save  # importable from here, as before

__all__ = ["DEFAULT_TRAIN", "Surrogate", "evaluate", "fit_surrogate", "from_record", "held_out_points",
           "learning_curve", "load", "report_rows", "save", "split"]


def split(data: Measured, n_train: int, seed: int, hold_out: float = HOLD_OUT) -> tuple[Measured, Measured]:
    """A seeded random training subset of at most ``n_train``, leaving at least ``hold_out`` of the data
    (and 2 architectures) held out; the rest is held out."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    held = max(2, int(np.ceil(hold_out * len(data)))) if hold_out > 0 else 0
    n = max(min(3, len(data)), min(n_train, len(data) - held))
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


def fit_surrogate(store: Store, device_id: str, protocol: str, objective: str, n_train: int = DEFAULT_TRAIN,
                  seed: int = 0, kinds: tuple[str, ...] = KINDS, hold_out: float = HOLD_OUT) -> Surrogate:
    """Fit on up to ``n_train`` measured architectures (at least ``hold_out`` of them kept back), report on
    the rest, store as a new version."""
    data = measured(store, device_id, protocol, objective)
    if len(data) < 5:
        raise LtsError(f"{len(data)} measured architectures for {objective} on this device and protocol "
                       f"({protocol}); a surrogate needs at least 5 (run a search or lts measure first)")
    train, test = split(data, n_train, seed, hold_out)
    model, cv = fit_best(train.X, train.y, seed, kinds)
    figs = {"train_n": len(train), "cv_mape": cv, "chosen": model.kind, **evaluate(model, train, test),
            "model": model.describe(), "seconds_per_measurement": float(np.mean(data.seconds)) if len(data) else None}
    return save(store, device_id, protocol, objective, model, train.arch_ids, figs)


def report_rows(store: Store) -> list[dict[str, Any]]:
    """The latest version per (device, protocol, objective), flattened for a table."""
    rows = store_surrogates.latest_per_key(store)
    out = []
    for r in rows:
        f = r.figures
        h = f.get("held_out") or {}
        b = f.get("baselines") or {}
        out.append({
            "device": r.device_name, "protocol": r.protocol, "objective": r.objective, "version": r.version,
            "model": r.model_kind, "train_n": f.get("train_n"), "test_n": h.get("n"), "mape": h.get("mape"),
            "within_10": h.get("within_10"), "kendall": h.get("kendall"), "coverage_1sd": h.get("coverage_1sd"),
            "params_mape": (b.get("decoder_params") or {}).get("mape"),
            "params_kendall": (b.get("decoder_params") or {}).get("kendall"),
            "flops_mape": (b.get("flops_per_token") or {}).get("mape"),
            "flops_kendall": (b.get("flops_per_token") or {}).get("kendall"),
            "adapted_from": r.source_surrogate_id, "surrogate_id": r.surrogate_id,
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
