"""A surrogate for a new device from another device's, with a handful of measurements on the new one.

Across CPUs (or thread counts, batch sizes) the *ranking* of architectures by cost moves little and
the scale moves a lot, so the new device's cost is modelled as a power of the source prediction,
``log y_new = a + b * log(source(x))``: two numbers, fitted by least squares on the k new
measurements (HELP, Lee et al. 2021, adapts a meta-learned predictor from 10 samples; this is the
plain calibration it improves on, and often enough).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lts.errors import LtsError
from lts.store.db import Store
from lts.surrogate.data import held_out_split, measured
from lts.surrogate.figures import figures, held_out_points
from lts.surrogate.model import CostModel
from lts.surrogate.stored import AdaptedModel, Surrogate, save

__all__ = ["AdaptedModel", "adapt", "transfer_curve"]


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
