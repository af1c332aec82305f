"""Surrogate-assisted search: screen offspring by predicted cost, measure only the promising ones.

Each generation the strategy proposes ``pool_factor`` times more children than it has room for.
A child is measured only if its *optimistic* cost (mean - z * std for every measured objective;
the proxy is exact) is not dominated by the run's measured front and does not break a cost
constraint: within its uncertainty it may land on the front. Among those, children are taken one
by one by the hypervolume their optimistic costs would add to the measured front (the chosen
child's predicted point joining the front before the next pick), and only while that gain is
positive: a generation may measure fewer children than it has room for, or none.

What stays true: the front, the constraints and every stored measurement come from real
measurements only. Predictions go to their own table with the decision taken, and the later
measurement beside them, so the surrogate's error is tracked while the search runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from lts.errors import LtsError
from lts.space.counts import decoder_params
from lts.space.config import Config
from lts.store import surrogates as store_surrogates
from lts.store.db import Store
from lts.store.surrogates import Prediction
from lts.surrogate.data import OBJECTIVES as COST_COLUMNS
from lts.surrogate.data import measured
from lts.surrogate.defaults import POOL_FACTOR, Z
from lts.surrogate.features import Shape, matrix
from lts.surrogate.model import KINDS, CostModel, fit_best
from lts.objectives import Constraints, hv_reference, objective_matrix
from lts.pareto import crowding, hypervolume, nd_ranks

MEASURED = tuple(COST_COLUMNS)  # the costs a surrogate predicts: latency, memory


@dataclass(frozen=True)
class SurrogateSettings:
    # pool_factor, min_train and z were chosen on a simulated device (costs from a surrogate fitted to
    # this machine, 2% noise), then checked on real measurements with other seeds (README)
    pool_factor: int = POOL_FACTOR  # children proposed per child measured
    z: float = Z  # optimism, in predicted standard deviations
    min_train: int = 10  # measured architectures on this device before screening starts
    refit_every: int = 1  # generations between refits (the model kind is chosen at the first fit)
    max_idle_generations: int = 30  # generations in a row with nothing worth measuring end the run
    # the model: "linear" fits in milliseconds and is within a point of the best here (README figures);
    # "auto" picks by cross-validation at the first fit (seconds per objective), or name a kind
    kind: str = "linear"
    # "device": every measurement of this device and protocol in the database (the point of keeping
    # them); "run": this run's own only (a cold start, as a benchmark against plain search needs)
    train_on: str = "device"
    # generations of evolution run on the predictions alone before a generation is measured: the
    # children of the predicted front join the pool the screen picks from
    inner_generations: int = 0

    def __post_init__(self) -> None:
        if self.train_on not in ("device", "run"):
            raise LtsError(f"surrogate train_on must be device or run, got {self.train_on!r}")
        if self.kind != "auto" and self.kind not in KINDS:
            raise LtsError(f"surrogate kind must be auto or one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.pool_factor < 1:
            raise LtsError(f"surrogate pool factor must be >= 1, got {self.pool_factor}")
        if not 0 <= self.z <= 100:  # also refuses NaN, which compares False with every bound
            raise LtsError(f"surrogate z must be between 0 and 100, got {self.z}")
        if isinstance(self.inner_generations, bool) or not isinstance(self.inner_generations, int) \
                or not 0 <= self.inner_generations <= 20:
            raise LtsError(f"surrogate inner_generations must be an integer in 0..20, got {self.inner_generations!r}")
        if self.min_train < 5:
            raise LtsError(f"surrogate min_train must be >= 5, got {self.min_train}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def greedy_hypervolume(F_front: np.ndarray, F_opt: np.ndarray, F_mean: np.ndarray, room: int,
                       scales: Mapping[str, float], objectives: Sequence[str], labels: Sequence[int]) -> list[int]:
    """Up to ``room`` of ``labels``, picked one by one by the hypervolume their optimistic point adds."""
    div, ref = hv_reference(objectives, scales)
    front = F_front / div
    opt, mean = F_opt / div, F_mean / div
    base = hypervolume(front, ref)
    free = list(range(len(labels)))
    picked: list[int] = []
    while free and len(picked) < room:
        gains = [hypervolume(np.vstack([front, opt[j]]), ref) - base for j in free]
        best = int(np.argmax(gains))
        if gains[best] <= 1e-12:
            break
        j = free.pop(best)
        picked.append(labels[j])
        front = np.vstack([front, mean[j]])
        base = hypervolume(front, ref)
    return picked


def dominated_by(F_front: np.ndarray, f: np.ndarray) -> bool:
    """Is ``f`` weakly dominated by some row of ``F_front`` (minimisation)?"""
    if len(F_front) == 0:
        return False
    return bool(np.any(np.all(F_front <= f, axis=1)))


class Screen:
    """The screening of one run; refits on the database's measurements of its device and protocol."""

    def __init__(self, store: Store, run_id: str, device_id: str, protocol: str, objectives: Sequence[str],
                 constraints: Constraints, settings: SurrogateSettings, seed: int = 0,
                 cheap: Callable[[Config], Mapping[str, float | None]] | None = None) -> None:
        """``cheap(cfg)``: the values of the run's proxy objectives beyond the parameter count, by
        member-row column (None where a proxy failed: that child is not measured)."""
        self.cheap = cheap
        self.store, self.run_id = store, run_id
        self.device_id, self.protocol = device_id, protocol
        self.objectives = tuple(objectives)
        self.measured_objectives = tuple(o for o in self.objectives if o in MEASURED)
        # a cost constraint needs its cost predicted even when it is not an objective
        wanted = set(self.measured_objectives)
        if constraints.max_latency_ms is not None:
            wanted.add("latency")
        if constraints.max_memory_mb is not None:
            wanted.add("memory")
        self.predicted = tuple(o for o in MEASURED if o in wanted)
        self.constraints = constraints
        self.settings = settings
        self.seed = seed
        self.models: dict[str, CostModel] = {}
        self.kinds: dict[str, str] = {}
        self.spreads: dict[str, float] = {}
        self._since_fit = 0
        self.shape = Shape.from_protocol(protocol)
        # arch_id -> (cheap proxies, {objective: (mean, std)}) under the current models: with inner
        # generations a child is first a predicted parent, then a screening candidate
        self._scores: dict[str, tuple[dict[str, Any], dict[str, tuple[float, float]]]] = {}

    # -- fitting --------------------------------------------------------------------------
    def refit(self, members: Sequence[Mapping[str, Any]] = ()) -> bool:
        """Fit every predicted objective; False while there are too few measurements."""
        models = {}
        ids = [m["arch_id"] for m in members] if self.settings.train_on == "run" else None
        for obj in self.predicted:
            data = measured(self.store, self.device_id, self.protocol, obj, ids)
            if len(data) < self.settings.min_train:
                return False
            if obj in self.kinds:  # the kind and its cross-validated spread are chosen once
                model = CostModel(self.kinds[obj], self.seed, self.spreads[obj]).fit(data.X, data.y)
            else:
                kinds = KINDS if self.settings.kind == "auto" else (self.settings.kind,)
                model, _ = fit_best(data.X, data.y, self.seed, kinds)
                self.kinds[obj], self.spreads[obj] = model.kind, model.rel_std
            models[obj] = model
        self.models = models
        self._scores = {}
        return True

    @property
    def ready(self) -> bool:
        return bool(self.models) or not self.predicted

    # -- screening ------------------------------------------------------------------------
    def refit_if_due(self, members: Sequence[Mapping[str, Any]]) -> None:
        """Refit once per generation (every ``refit_every``), or while there is no model yet."""
        if self._since_fit % self.settings.refit_every == 0 or not self.models:
            self.refit(members)
        self._since_fit += 1

    def _scored(self, pool: Sequence[Config]) -> tuple[list[Config], list[dict[str, Any]], list[dict[str, tuple[float, float]]]]:
        """The children of ``pool`` whose proxies all ran, their cheap proxies and predicted
        (mean, std) per objective; each child is scored once per fitted model."""
        new = [cfg for cfg in pool if cfg.arch_id not in self._scores]
        if new:
            cheap = [dict(self.cheap(cfg)) if self.cheap else {} for cfg in new]
            X = matrix(list(new), self.shape)
            preds = {obj: self.models[obj].predict(X) for obj in self.predicted}
            for i, cfg in enumerate(new):
                self._scores[cfg.arch_id] = (cheap[i], {obj: (float(preds[obj][0][i]), float(preds[obj][1][i]))
                                                        for obj in self.predicted})
        kept = [cfg for cfg in pool if None not in self._scores[cfg.arch_id][0].values()]
        return kept, [self._scores[c.arch_id][0] for c in kept], [self._scores[c.arch_id][1] for c in kept]

    def predicted_members(self, pool: Sequence[Config], first_index: int) -> list[dict[str, Any]]:
        """Member-like rows of ``pool`` with predicted mean costs, for evolution on the predictions
        (children whose proxy failed are left out, as :meth:`select` leaves them out)."""
        if not self.models or not pool:
            return []
        index = {cfg.arch_id: i for i, cfg in enumerate(pool)}
        out = []
        for cfg, cheap, preds in zip(*self._scored(pool)):
            row: dict[str, Any] = {"arch_id": cfg.arch_id, "config_json": cfg.canonical_json(),
                                   "eval_index": first_index + index[cfg.arch_id],
                                   "decoder_params": decoder_params(cfg), **cheap}
            row.update({COST_COLUMNS[obj]: preds[obj][0] for obj in self.predicted})
            row["feasible"] = not self.constraints.violation(
                {k: row[k] for k in ("latency_ms", "peak_memory_mb") if k in row})
            out.append(row)
        return out

    def select(self, pool: Sequence[Config], members: Sequence[Mapping[str, Any]], room: int,
               scales: Mapping[str, float] | None = None, fitted: bool = False) -> list[Config]:
        """The children of ``pool`` to measure (at most ``room``); every prediction is recorded.

        With the run's hypervolume ``scales``, children are taken greedily by the hypervolume their
        optimistic costs would add to the measured front (each pick's predicted mean joins the front
        before the next is chosen, so picks complement each other) and only while that gain is
        positive; without, by predicted non-dominated rank and crowding.
        """
        if not fitted:
            self.refit_if_due(members)
        if not pool:
            return []
        if not self.models:
            return list(pool[:room])
        pool, cheap, preds = self._scored(pool)
        if not pool:
            return []
        z = self.settings.z
        # minimisation form: exact proxy, optimistic costs
        rows_opt = []
        rows_mean = []
        for i, cfg in enumerate(pool):
            base = {"decoder_params": decoder_params(cfg), **cheap[i]}
            opt = dict(base)
            mean = dict(base)
            for obj in self.predicted:
                col = COST_COLUMNS[obj]
                m, s = preds[i][obj]
                opt[col], mean[col] = max(m - z * s, 0.0), m
            rows_opt.append(opt)
            rows_mean.append(mean)
        feasible = [m for m in members if m.get("feasible")]
        F_front = objective_matrix([m for m in feasible if m.get("on_frontier")] or feasible, self.objectives)
        F_opt = objective_matrix(rows_opt, self.objectives)
        keep = []
        for i in range(len(pool)):
            if self.constraints.violation({k: rows_opt[i][k] for k in ("latency_ms", "peak_memory_mb") if k in rows_opt[i]}):
                continue  # even optimistically over a cost limit
            if not dominated_by(F_front, F_opt[i]):
                keep.append(i)
        if scales is not None:
            keep = greedy_hypervolume(F_front, F_opt[keep], objective_matrix([rows_mean[i] for i in keep], self.objectives),
                                      room, scales, self.objectives, keep)
        elif len(keep) > room:
            F_mean = objective_matrix([rows_mean[i] for i in keep], self.objectives)
            ranks, crowd = nd_ranks(F_mean), crowding(F_mean)
            order = sorted(range(len(keep)), key=lambda j: (ranks[j], -crowd[j], j))
            keep = [keep[j] for j in order[:room]]
        chosen = set(keep)
        store_surrogates.record_predictions(
            self.store, self.run_id, pool,
            [Prediction(cfg.arch_id, obj, *preds[i][obj], "measure" if i in chosen else "skip")
             for i, cfg in enumerate(pool) for obj in self.predicted], time.time())
        return [pool[i] for i in sorted(chosen)]

    def record(self, conn: Any, arch_id: str, measurement: Mapping[str, Any]) -> None:
        """Put the real measurement beside its prediction (inside the caller's transaction)."""
        for obj in self.predicted:
            value = measurement.get(COST_COLUMNS[obj])
            if value is not None:
                store_surrogates.set_measured(conn, self.run_id, arch_id, obj, float(value))


def prediction_error(store: Store, run_id: str, last: int | None = None) -> dict[str, Any]:
    """MAPE (%) and share within +-10% of the run's predictions that were measured since, per objective."""
    out: dict[str, Any] = {}
    for obj in MEASURED:
        rows = store_surrogates.measured_predictions(store, run_id, obj)
        if last:
            rows = rows[-last:]
        if rows:
            err = np.array([abs(r["mean"] - r["measured"]) / r["measured"] for r in rows])
            out[obj] = {"n": len(rows), "mape": round(float(err.mean() * 100), 2),
                        "within_10": round(float(np.mean(err <= 0.1) * 100), 1)}
    return out
