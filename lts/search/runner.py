"""Run a search: propose (strategy), evaluate (proxy + measurement), persist (store), resume.

Durability protocol, which makes ``kill -9`` at any instant lose nothing and duplicate nothing:

1. Before evaluating a generation, its proposals and the generator state *after* proposing are
   written to ``runs.state_json`` in one transaction.
2. Each evaluation (architecture row, measurement, membership with its ``eval_index``, progress
   counters, frontier flags) is one transaction.
3. Resuming reloads the members, evaluates the pending proposals that are not members yet, restores
   the generator state and carries on. A kill before step 1 commits re-proposes the same
   generation from the previous state, so a resumed run follows the path of an uninterrupted one.

Measurements are cached by (architecture, device, protocol) across runs: a candidate measured
before on this device is reused, never measured twice.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from lts.errors import LtsError
from lts.proxies.params import decoder_params, proxy_values
from lts.search.objectives import MEASURED, Constraints, hv_reference, objective_matrix
from lts.search.pareto import hypervolume, pareto_mask
from lts.search.strategies import STRATEGIES, EvolutionSettings, propose
from lts.space.config import Config, config_from_json
from lts.space.ranges import SearchSpace
from lts.store.db import Store
from lts.surrogate.assist import Screen, SurrogateSettings
from lts.surrogate.drift import DriftMonitor, DriftSettings

MeasureFn = Callable[[Config], Mapping[str, Any]]


@dataclass(frozen=True)
class SearchSettings:
    space: SearchSpace
    objectives: tuple[str, ...] = ("proxy", "latency", "memory")
    constraints: Constraints = Constraints()
    strategy: str = "evolution"
    seed: int = 0
    budget: int | None = 100
    time_budget: float | None = None
    evolution: EvolutionSettings = field(default_factory=EvolutionSettings)
    surrogate: SurrogateSettings | None = None  # screen children by predicted cost (lts.surrogate.assist)
    drift: DriftSettings = field(default_factory=DriftSettings)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise LtsError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        if self.budget is None and self.time_budget is None:
            raise LtsError("give a budget (evaluations) or a time budget (seconds)")
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, int)
                                        or self.budget < 1):
            raise LtsError(f"budget must be an integer >= 1, got {self.budget!r}")
        tb = self.time_budget  # NaN passes `<= 0`: test for a positive finite number instead
        if tb is not None and (isinstance(tb, bool) or not isinstance(tb, (int, float)) or not 0 < tb < float("inf")):
            raise LtsError(f"time budget must be a positive finite number of seconds, got {tb!r}")
        lo, hi = self.constraints.params_window
        if lo is not None or hi is not None:  # refuse a bound no architecture meets, before any row exists
            fewest, most = self.space.decoder_param_range()
            spans = f"(the space spans {fewest:,} - {most:,})"
            if lo is not None and lo > most:
                raise LtsError(f"no architecture of this space has >= {lo:,} decoder parameters {spans}")
            if hi is not None and hi < fewest:
                raise LtsError(f"no architecture of this space has <= {hi:,} decoder parameters {spans}")
            if not self.space.can_reach(lo, hi):
                raise LtsError(f"no architecture of this space has {self.constraints.params_text()} "
                               f"decoder parameters {spans}")

    @property
    def needs_measurement(self) -> bool:
        c = self.constraints
        return any(o in MEASURED for o in self.objectives) or c.max_latency_ms is not None or c.max_memory_mb is not None


def max_decoder_params(space: SearchSpace) -> int:
    """Decoder parameters of the largest architecture in ``space`` (the proxy's scale).

    O(1) in the size of the ranges (each dimension's max, never a listing of its choices): the
    dashboard computes it for every run it shows."""
    d_model, n_layer, d_embed = space.dims["d_model"].max, space.dims["n_layer"].max, space.dims["d_embed"].max
    cfg = space.make(
        n_layer=n_layer, d_model=d_model, d_embed=d_embed, div_val=space._div_vals_for(d_embed)[0],
        n_head=[max(space._heads_for(d_model))] * n_layer, d_inner=[space.dims["d_inner"].max] * n_layer,
    )
    return decoder_params(cfg)


def memory_limit_of(run: Mapping[str, Any]) -> float | None:
    """The memory limit a run's measurer applies: its ``memory_limit_mb`` or its ``max_memory_mb``
    constraint, whichever is lower (a candidate over either is not worth timing)."""
    state = json.loads(run["state_json"] or "{}")
    constraint = json.loads(run["constraints_json"] or "{}").get("max_memory_mb")
    limits = [float(v) for v in (state.get("memory_limit_mb"), constraint) if v]
    return min(limits) if limits else None


def create_run(store: Store, settings: SearchSettings, device: Mapping[str, Any] | None, protocol: str | None,
               state: Mapping[str, Any] | None = None,
               admit: Callable[[sqlite3.Connection], None] | None = None) -> str:
    """Register a run (status 'created'); returns its id.

    ``state`` adds entries to the run's state (its measurement protocol, ...), written with the row.
    ``admit(conn)`` runs inside the inserting transaction and may raise to refuse the run: a limit
    on concurrent runs checked there cannot be passed by two launches at once (the IMMEDIATE
    transaction makes the second wait until the first's row is in).
    """
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    with store.write() as conn:
        if admit is not None:
            admit(conn)
        if device is not None:
            store.upsert_device(conn, dict(device))
        conn.execute(
            "INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed,"
            " budget, time_budget, device_id, protocol, status, state_json, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, settings.space.family, json.dumps(settings.space.to_dict(), sort_keys=True),
             settings.strategy, json.dumps(list(settings.objectives)),
             json.dumps(settings.constraints.to_dict(), sort_keys=True), settings.seed, settings.budget,
             settings.time_budget, device["device_id"] if device else None, protocol, "created",
             json.dumps({**_settings_state(settings), **(state or {})}), now, now),
        )
    return run_id


def _settings_state(settings: SearchSettings) -> dict[str, Any]:
    state: dict[str, Any] = {"evolution": settings.evolution.__dict__, "drift": settings.drift.to_dict()}
    if settings.surrogate is not None:
        state["surrogate"] = settings.surrogate.to_dict()
    return state


def settings_of(run: Mapping[str, Any]) -> SearchSettings:
    state = json.loads(run["state_json"] or "{}")
    return SearchSettings(
        space=SearchSpace.from_dict(json.loads(run["space_json"])),
        objectives=tuple(json.loads(run["objectives_json"])),
        constraints=Constraints.from_dict(json.loads(run["constraints_json"])),
        strategy=run["strategy"],
        seed=run["seed"],
        budget=run["budget"],
        time_budget=run["time_budget"],
        evolution=EvolutionSettings(**state.get("evolution", {})),
        surrogate=SurrogateSettings(**state["surrogate"]) if state.get("surrogate") else None,
        drift=DriftSettings(**state.get("drift", {})),
    )


def _rng_to_json(rng: random.Random) -> list:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def _rng_from_json(data: list) -> random.Random:
    rng = random.Random()
    rng.setstate((data[0], tuple(data[1]), data[2]))
    return rng


@dataclass
class Progress:
    n_evaluated: int
    frontier_size: int
    hypervolume: float | None
    elapsed: float


class SearchRunner:
    """Drives one run to completion (or until cancelled); safe to construct again to resume."""

    def __init__(
        self,
        store: Store,
        run_id: str,
        measure: MeasureFn | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.run = store.run(run_id)
        self.settings = settings_of(self.run)
        self.measure = measure
        self.on_progress = on_progress
        if self.settings.needs_measurement and measure is None:
            raise LtsError("this search measures latency/memory: a measure function is required")
        self.state = json.loads(self.run["state_json"] or "{}")
        self.memory_limit = memory_limit_of(self.run)
        self.members: list[dict[str, Any]] = self._load_members()
        self.member_ids = {m["arch_id"] for m in self.members}
        s, run = self.settings, self.run
        on_device = bool(run["device_id"] and run["protocol"] and s.needs_measurement)
        self.screen = (Screen(store, run_id, run["device_id"], run["protocol"], s.objectives, s.constraints,
                              s.surrogate, s.seed) if s.surrogate is not None and on_device else None)
        self.drift = (DriftMonitor(store, run_id, run["device_id"], run["protocol"], s.space, s.drift, measure)
                      if s.drift.every > 0 and on_device and measure is not None else None)

    # -- loading --------------------------------------------------------------------------
    def _load_members(self) -> list[dict[str, Any]]:
        return self.store.run_rows(self.run_id)

    def _scales(self) -> dict[str, float] | None:
        """Hypervolume scales, fixed once per run so that its hypervolume curve is comparable."""
        if "hv_scales" in self.state:
            return self.state["hv_scales"]
        feasible = [m for m in self.members if m["feasible"]]
        if not feasible or len(self.members) < min(self.settings.evolution.population, self.settings.budget or 10**9):
            return None
        c = self.settings.constraints
        scales = {"proxy": float(max_decoder_params(self.settings.space))}
        for name, col, limit in (("latency", "latency_ms", c.max_latency_ms), ("memory", "peak_memory_mb", c.max_memory_mb)):
            if name in self.settings.objectives:
                scales[name] = float(limit) if limit else 1.5 * max(float(m[col]) for m in feasible)
        self.state["hv_scales"] = scales
        return scales

    # -- one evaluation -------------------------------------------------------------------
    def _evaluate(self, cfg: Config) -> tuple[dict[str, Any] | None, bool]:
        """(measurement row or None, measured-now?) for ``cfg`` on this run's device."""
        if not self.settings.needs_measurement:
            return None, False
        cached = self.store.measurement(cfg.arch_id, self.run["device_id"], self.run["protocol"])
        if cached is not None and not self._measure_again(cfg, cached):
            return cached, False
        m = dict(self.measure(cfg))  # type: ignore[misc]
        m.update(arch_id=cfg.arch_id, device_id=self.run["device_id"], protocol=self.run["protocol"])
        m["_replaces"] = cached is not None
        return m, True

    def _measure_again(self, cfg: Config, cached: Mapping[str, Any]) -> bool:
        """Whether a cached measurement refused by a memory limit does not hold under this run's limit."""
        from lts.cost.measure import refused_by_limit, weights_mb

        if not refused_by_limit(cached.get("infeasible")):
            return False
        limit = self.memory_limit
        if limit is None:
            return True
        need = cached.get("peak_memory_mb")
        return (need if need is not None else weights_mb(cfg)) <= limit

    def _frontier(self) -> tuple[set[str], float | None]:
        feasible = [m for m in self.members if m["feasible"]]
        if not feasible:
            return set(), None
        F = objective_matrix(feasible, self.settings.objectives)
        mask = pareto_mask(F)
        front = {m["arch_id"] for m, keep in zip(feasible, mask) if keep}
        scales = self._scales()
        hv = None
        if scales is not None:
            div, ref = hv_reference(self.settings.objectives, scales)
            hv = hypervolume(F[mask] / div, ref)
        return front, hv

    def _record(self, cfg: Config, measurement: dict[str, Any] | None, measured_now: bool, generation: int, elapsed: float) -> None:
        row: dict[str, Any] = {"arch_id": cfg.arch_id, "config_json": cfg.canonical_json(),
                               "eval_index": len(self.members), "generation": generation, **proxy_values(cfg)}
        if measurement is not None:
            row.update(latency_ms=measurement.get("latency_ms"), peak_memory_mb=measurement.get("peak_memory_mb"),
                       infeasible=measurement.get("infeasible"))
        reason = row.get("infeasible") or self.settings.constraints.violation(row)
        row["feasible"] = int(reason is None)
        self.members.append(row)
        self.member_ids.add(cfg.arch_id)
        front, hv = self._frontier()
        if measured_now and measurement is not None:
            self.state["device_seconds"] = self.state.get("device_seconds", 0.0) + float(measurement.get("seconds") or 0.0)
        with self.store.write() as conn:
            self.store.upsert_architecture(conn, cfg)
            if measured_now and measurement is not None:
                self.store.insert_measurement(conn, measurement, replace=bool(measurement.get("_replaces")))
                if self.screen is not None:
                    self.screen.record(conn, cfg.arch_id, measurement)
            conn.execute(
                "INSERT INTO run_members (run_id, arch_id, eval_index, generation, feasible, on_frontier)"
                " VALUES (?,?,?,?,?,0)",
                (self.run_id, cfg.arch_id, row["eval_index"], generation, row["feasible"]),
            )
            conn.execute("UPDATE run_members SET on_frontier = 0 WHERE run_id = ? AND on_frontier = 1", (self.run_id,))
            conn.executemany(
                "UPDATE run_members SET on_frontier = 1 WHERE run_id = ? AND arch_id = ?",
                [(self.run_id, a) for a in front],
            )
            conn.execute(
                "UPDATE runs SET n_evaluated = ?, frontier_size = ?, hypervolume = ?, elapsed = ?, updated_at = ?,"
                " state_json = ? WHERE run_id = ?",
                (len(self.members), len(front), hv, elapsed, time.time(), json.dumps(self.state), self.run_id),
            )
        for m in self.members:
            m["on_frontier"] = int(m["arch_id"] in front)
        if self.on_progress:
            self.on_progress(Progress(len(self.members), len(front), hv, elapsed))

    # -- the loop -------------------------------------------------------------------------
    def _set_status(self, status: str, message: str | None = None, elapsed: float | None = None) -> None:
        with self.store.write() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, message = ?, pid = ?, host = ?, updated_at = ?,"
                " elapsed = COALESCE(?, elapsed) WHERE run_id = ?",
                (status, message, os.getpid(), socket.gethostname(), time.time(), elapsed, self.run_id),
            )

    def _cancel_requested(self) -> bool:
        return self.store.run(self.run_id)["status"] == "cancelling"

    def _propose_generation(self, rng: random.Random, n: int) -> list[Config]:
        s = self.settings
        seen = set(self.member_ids)
        out: list[Config] = []
        attempts = 0
        while len(out) < n and attempts < 200 * n:
            attempts += 1
            cfg = propose(s.strategy, s.space, self.members, s.objectives, rng, s.evolution,
                          params=s.constraints.params_window)  # built inside the bounds, not rejected
            if cfg.arch_id in seen or not s.constraints.params_ok(decoder_params(cfg)):
                continue
            seen.add(cfg.arch_id)
            out.append(cfg)
        self._proposal_attempts = attempts
        return out

    def _nothing_new(self) -> str:
        """Why a generation found no new candidate, truthfully: the space is used up only if it holds
        no more architectures than this run evaluated."""
        s = self.settings
        if s.space.size() <= len(self.member_ids):
            return "the space has no unevaluated architecture left"
        tried = getattr(self, "_proposal_attempts", 0)
        if s.constraints.params_window != (None, None):
            return (f"found no unevaluated architecture with {s.constraints.params_text()} decoder parameters "
                    f"in {tried} proposals (few or none may be left within those bounds)")
        return f"found no unevaluated architecture in {tried} proposals"

    def _screened(self, rng: random.Random, first: list[Config], room: int) -> list[Config]:
        """``first`` plus more children up to the pool size, screened down to at most ``room``."""
        assert self.screen is not None and self.settings.surrogate is not None
        extra = self.settings.surrogate.pool_factor * room - len(first)
        if extra > 0:
            taken = self.member_ids | {c.arch_id for c in first}
            more = [c for c in self._propose_generation(rng, extra) if c.arch_id not in taken]
            first = first + more
        chosen = self.screen.select(first, self.members, room, self._scales())
        self.state["idle_generations"] = 0 if chosen else self.state.get("idle_generations", 0) + 1
        self.state["screened"] = self.state.get("screened", 0) + len(first)
        return chosen

    def _budget_left(self, elapsed: float) -> bool:
        s = self.settings
        if s.budget is not None and len(self.members) >= s.budget:
            return False
        return s.time_budget is None or elapsed < s.time_budget

    def run_to_end(self) -> dict[str, Any]:
        """Run (or resume) until the budget is spent; returns the final run row."""
        s = self.settings
        start_elapsed = float(self.run["elapsed"] or 0.0)
        t0 = time.perf_counter()
        elapsed = lambda: start_elapsed + time.perf_counter() - t0  # noqa: E731
        rng = _rng_from_json(self.state["rng"]) if "rng" in self.state else random.Random(s.seed)
        generation = int(self.state.get("generation", 0))
        self._set_status("running")
        try:
            while self._budget_left(elapsed()):
                pending = [config_from_json(c) for c in self.state.get("pending", [])]
                pending = [c for c in pending if c.arch_id not in self.member_ids]
                if not pending:
                    room = s.evolution.generation if len(self.members) >= s.evolution.population else s.evolution.population - len(self.members)
                    if s.budget is not None:
                        room = min(room, s.budget - len(self.members))
                    pending = self._propose_generation(rng, max(room, 1))
                    if not pending:
                        self._set_status("finished", self._nothing_new())
                        return self.store.run(self.run_id)
                    if self.screen is not None:
                        pending = self._screened(rng, pending, max(room, 1))
                    generation += 1
                    self.state.update(generation=generation, pending=[c.canonical_json() for c in pending],
                                      rng=_rng_to_json(rng))
                    with self.store.write() as conn:
                        conn.execute("UPDATE runs SET state_json = ?, updated_at = ? WHERE run_id = ?",
                                     (json.dumps(self.state), time.time(), self.run_id))
                for cfg in pending:
                    if not self._budget_left(elapsed()):
                        break
                    if self._cancel_requested():
                        self._set_status("cancelled", f"cancelled after {len(self.members)} evaluations", elapsed())
                        return self.store.run(self.run_id)
                    if self.drift is not None and self.drift.due(len(self.members)):
                        check = self.drift.check(len(self.members))
                        self.state["device_seconds"] = self.state.get("device_seconds", 0.0) + check["seconds"]
                        self.state["drift_flags"] = self.state.get("drift_flags", 0) + check["flagged"]
                    measurement, measured_now = self._evaluate(cfg)
                    self._record(cfg, measurement, measured_now, generation, elapsed())
                self.state["pending"] = []
                if self.screen is not None and self.state.get("idle_generations", 0) >= self.settings.surrogate.max_idle_generations:  # type: ignore[union-attr]
                    self._set_status("finished", f"the surrogate found nothing worth measuring in "
                                                 f"{self.state['idle_generations']} generations in a row", elapsed())
                    return self.store.run(self.run_id)
        except KeyboardInterrupt:
            self._set_status("interrupted", "stopped by the user; resume with lts search --resume", elapsed())
            raise
        except Exception as exc:
            self._set_status("failed", f"{type(exc).__name__}: {exc}".splitlines()[0], elapsed())
            raise
        self._set_status("finished", elapsed=elapsed())
        return self.store.run(self.run_id)


def frontier_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    return store.run_rows(run_id, frontier_only=True)


def run_hypervolume(rows: Sequence[Mapping[str, Any]], objectives: Sequence[str], scales: Mapping[str, float]) -> float:
    """Normalised hypervolume of the feasible rows, for comparing runs under one reference."""
    feasible = [r for r in rows if r["feasible"]]
    if not feasible:
        return 0.0
    div, ref = hv_reference(objectives, scales)
    F = objective_matrix(feasible, objectives) / div
    return hypervolume(F[pareto_mask(F)], ref)


def common_scales(runs_rows: Sequence[Sequence[Mapping[str, Any]]], objectives: Sequence[str], space: SearchSpace) -> dict[str, float]:
    """One hypervolume reference for several runs: 1.1 x the worst feasible cost seen in any of them."""
    scales = {"proxy": float(max_decoder_params(space))}
    for name, col in (("latency", "latency_ms"), ("memory", "peak_memory_mb")):
        if name in objectives:
            vals = [float(r[col]) for rows in runs_rows for r in rows if r["feasible"]]
            scales[name] = 1.1 * max(vals) if vals else 1.0
    return scales


__all__ = [
    "SearchSettings", "SearchRunner", "create_run", "settings_of", "frontier_rows", "run_hypervolume",
    "common_scales", "max_decoder_params", "Progress", "memory_limit_of",
]
