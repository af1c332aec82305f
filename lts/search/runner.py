"""Run a search: propose (strategy), evaluate (proxy + measurement), persist (store), resume.

Durability protocol, which makes ``kill -9`` at any instant lose nothing and duplicate nothing:

1. Before evaluating a generation, its proposals and the strategy's state *after* proposing are
   written to ``runs.progress_json`` in one transaction (:func:`lts.store.runs.save_progress`).
2. Each evaluation (architecture row, measurement, proxy scores, membership with its
   ``eval_index``, progress counters, frontier flags) is one transaction
   (:func:`lts.store.runs.record_evaluation`).
3. Resuming reloads the members, evaluates the pending proposals that are not members yet, restores
   the generator state and carries on. A kill before step 1 commits re-proposes the same
   generation from the previous state, so a resumed run follows the path of an uninterrupted one.

Measurements are cached by (architecture, device, protocol) across runs: a candidate measured
before on this device is reused, never measured twice.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.objectives import (GENERATION_OBJECTIVES, MEASURED, Constraints, hv_reference, objective,
                            objective_matrix, proxy_objectives)
from lts.pareto import hypervolume, pareto_mask
from lts.search.scoring import ProxyScorer, default_proxy_settings
from lts.search.strategies import STRATEGIES, EvolutionSettings, make_strategy
from lts.space.config import Config, config_from_json
from lts.space.counts import decoder_params, proxy_values
from lts.space.ranges import SearchSpace
from lts.store import jobs, runs
from lts.store.db import GENERATION_COLUMNS, Store
from lts.surrogate.assist import Screen, SurrogateSettings
from lts.surrogate.drift import DriftMonitor, DriftSettings

MeasureFn = Callable[[Config], Mapping[str, Any]]
# what a member row takes from its measurement (the columns Store.run_rows joins in)
MEMBER_MEASUREMENT = ("latency_ms", "peak_memory_mb", "infeasible", *GENERATION_COLUMNS)


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
    proxy_settings: Mapping[str, Any] | None = None  # how proxy objectives are computed (None: the defaults)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise LtsError(f"unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        if self.surrogate is not None and self.surrogate.inner_generations and self.strategy != "evolution":
            # the inner generations are evolution's children of predicted parents
            raise LtsError(f"surrogate inner generations need --strategy evolution, not {self.strategy}")
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
    def proxies(self) -> tuple[str, ...]:
        """The registered proxies among the objectives (computed for every candidate)."""
        return proxy_objectives(self.objectives)

    @property
    def proxy_settings_used(self) -> dict[str, Any]:
        """How the proxy objectives are computed: the given settings, else lts's defaults."""
        return dict(self.proxy_settings or default_proxy_settings())

    @property
    def proxy_key(self) -> str:
        from lts.search.scoring import settings_key

        return settings_key(self.proxy_settings_used) if self.proxies else ""

    @property
    def needs_measurement(self) -> bool:
        c = self.constraints
        return any(o in MEASURED for o in self.objectives) or c.max_latency_ms is not None or c.max_memory_mb is not None


def max_decoder_params(space: SearchSpace) -> int:
    """Decoder parameters of the largest architecture in ``space`` (the proxy's scale); O(1) in the
    size of the ranges: the dashboard computes it for every run it shows."""
    return space.decoder_param_range()[1]


def memory_limit_of(run: Mapping[str, Any] | runs.RunRow) -> float | None:
    """The memory limit a run's measurer applies: its ``memory_limit_mb`` or its ``max_memory_mb``
    constraint, whichever is lower (a candidate over either is not worth timing)."""
    row = run if isinstance(run, runs.RunRow) else runs.RunRow.from_row(run)
    limits = [float(v) for v in (row.settings.get("memory_limit_mb"), row.constraints.get("max_memory_mb")) if v]
    return min(limits) if limits else None


def create_run(store: Store, settings: SearchSettings, device: Mapping[str, Any] | None, protocol: str | None,
               state: Mapping[str, Any] | None = None,
               admit: Callable[[sqlite3.Connection], None] | None = None, reproduces: str | None = None) -> str:
    """Register a run (status 'created'); returns its id.

    ``state`` adds settings of the run (its measurement protocol, memory limit, remote device),
    written with the row and never rewritten. ``reproduces``: the run this one re-runs.
    ``admit(conn)`` runs inside the inserting transaction and may raise to refuse the run (see
    :func:`lts.store.runs.create`).
    """
    extra = dict(state or {})
    reproduces = extra.pop("reproduces", None) or reproduces
    return runs.create(
        store, family=settings.space.family, space=settings.space.to_dict(), strategy=settings.strategy,
        objectives=settings.objectives, constraints=settings.constraints.to_dict(), seed=settings.seed,
        budget=settings.budget, time_budget=settings.time_budget, device=device, protocol=protocol,
        settings={**_settings_state(settings), **extra}, reproduces=reproduces, admit=admit)


def _settings_state(settings: SearchSettings) -> dict[str, Any]:
    state: dict[str, Any] = {"evolution": settings.evolution.__dict__, "drift": settings.drift.to_dict()}
    if settings.surrogate is not None:
        state["surrogate"] = settings.surrogate.to_dict()
    if settings.proxies:
        state["proxy_settings"] = settings.proxy_settings_used
    return state


def settings_of(run: Mapping[str, Any] | runs.RunRow) -> SearchSettings:
    """The settings a run was created with, from its stored row (typed or as the store reads it)."""
    row = run if isinstance(run, runs.RunRow) else runs.RunRow.from_row(run)
    state = row.settings
    return SearchSettings(
        space=SearchSpace.from_dict(row.space),
        objectives=row.objectives,
        constraints=Constraints.from_dict(row.constraints),
        strategy=row.strategy,
        seed=row.seed,
        budget=row.budget,
        time_budget=row.time_budget,
        evolution=EvolutionSettings(**state.get("evolution", {})),
        surrogate=SurrogateSettings(**state["surrogate"]) if state.get("surrogate") else None,
        drift=DriftSettings(**state.get("drift", {})),
        proxy_settings=state.get("proxy_settings"),
    )




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
        self.row = runs.get(store, run_id)  # typed: the runner reads no JSON text itself
        self.settings = settings_of(self.row)
        self.measure = measure
        self.on_progress = on_progress
        if self.settings.needs_measurement and measure is None:
            raise LtsError("this search measures latency/memory: a measure function is required")
        self.state = dict(self.row.progress)  # the runner's own record: progress_json
        self.memory_limit = memory_limit_of(self.row)
        # (the default proxy settings come from lts.proxies.compute, which loads torch: only when scored)
        self.scorer = ProxyScorer(self.settings.proxies,
                                  self.settings.proxy_settings_used if self.settings.proxies else {})
        self.strategy = make_strategy(self.settings.strategy, self.settings.space, self.settings.objectives,
                                      self.settings.evolution, self.settings.seed)
        self.members: list[dict[str, Any]] = self._load_members()
        self.member_ids = {m["arch_id"] for m in self.members}
        s, row = self.settings, self.row
        on_device = bool(row.device_id and row.protocol and s.needs_measurement)
        self._pool_scores: dict[str, dict[str, Any]] = {}  # proxy scores of screened children, recorded if measured
        self.screen = (Screen(store, run_id, row.device_id, row.protocol, s.objectives, s.constraints,
                              s.surrogate, s.seed, cheap=self._cheap_values if s.proxies else None)
                       if s.surrogate is not None and on_device else None)
        self.drift = (DriftMonitor(store, run_id, row.device_id, row.protocol, s.space, s.drift, measure)
                      if s.drift.every > 0 and on_device and measure is not None else None)

    # -- loading --------------------------------------------------------------------------
    def _load_members(self) -> list[dict[str, Any]]:
        return runs.members(self.store, self.run_id, self.settings.proxies, self.settings.proxy_key)

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
        for name in GENERATION_OBJECTIVES:
            if name in self.settings.objectives:
                col = objective(name).column
                scales[name] = 1.5 * max((float(m[col]) for m in feasible if m.get(col) is not None), default=1.0)
        for name in self.settings.proxies:  # 1.5 x the largest |value| so far (only positive values count, see hv_reference)
            col = objective(name).column
            scales[name] = 1.5 * max(abs(float(m[col])) for m in feasible) or 1.0
        self.state["hv_scales"] = scales
        return scales

    # -- one evaluation -------------------------------------------------------------------
    def _evaluate(self, cfg: Config) -> tuple[dict[str, Any] | None, bool]:
        """(measurement row or None, measured-now?) for ``cfg`` on this run's device."""
        if not self.settings.needs_measurement:
            return None, False
        cached = self.store.measurement(cfg.arch_id, self.row.device_id, self.row.protocol)
        if cached is not None and not self._measure_again(cfg, cached):
            return cached, False
        m = dict(self.measure(cfg))  # type: ignore[misc]
        m.update(arch_id=cfg.arch_id, device_id=self.row.device_id, protocol=self.row.protocol)
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
            row.update({k: measurement.get(k) for k in MEMBER_MEASUREMENT})
        scores, new_scores = self._scores(cfg)
        for name, value in scores.items():
            row[objective(name).column] = value
        failed = next((f"proxy {n} failed: {new_scores[n][1]}" for n, v in scores.items()
                       if v is None and n in new_scores), None)
        if failed is None and any(v is None for v in scores.values()):
            failed = "a proxy objective has no value"
        reason = row.get("infeasible") or failed or self.settings.constraints.violation(row)
        row["feasible"] = int(reason is None)
        self.members.append(row)
        self.member_ids.add(cfg.arch_id)
        front, hv = self._frontier()
        if measured_now and measurement is not None:
            self.state["device_seconds"] = self.state.get("device_seconds", 0.0) + float(measurement.get("seconds") or 0.0)
        new_measurement = measurement if measured_now and measurement is not None else None
        also = None
        if new_measurement is not None and self.screen is not None:
            also = lambda conn: self.screen.record(conn, cfg.arch_id, new_measurement)  # noqa: E731
        ev = runs.Evaluation(
            config=cfg, eval_index=row["eval_index"], generation=generation, feasible=bool(row["feasible"]),
            measurement={k: v for k, v in new_measurement.items() if not k.startswith("_")} if new_measurement else None,
            replace_measurement=bool(new_measurement and new_measurement.get("_replaces")),
            scores=new_scores, proxy_settings=self.settings.proxy_key)
        runs.record_evaluation(self.store, self.run_id, ev, front, hv, elapsed, self.state, also=also)
        for m in self.members:
            m["on_frontier"] = int(m["arch_id"] in front)
        if self.on_progress:
            self.on_progress(Progress(len(self.members), len(front), hv, elapsed))

    def _scores(self, cfg: Config) -> tuple[dict[str, float | None], dict[str, Any]]:
        """(value of every proxy objective, the ones computed now with their error and seconds):
        cached values are reused, like measurements."""
        names = self.settings.proxies
        if not names:
            return {}, {}
        cached = runs.cached_scores(self.store, [cfg.arch_id], names, self.settings.proxy_key)
        values = {n: cached[(cfg.arch_id, n)] for n in names if (cfg.arch_id, n) in cached}
        missing = [n for n in names if n not in values]
        new: dict[str, Any] = {}
        if missing:
            known = self._pool_scores.pop(cfg.arch_id, None) or {}
            if not all(n in known for n in missing):
                known = {**known, **self.scorer.score(cfg)}
            new = {n: v for n, v in known.items() if n in missing}
            values.update({n: v[0] for n, v in new.items()})
        return {n: values.get(n) for n in names}, new

    def _cheap_values(self, cfg: Config) -> dict[str, float | None]:
        """The proxy objectives of a child being screened, kept until it is measured (or not)."""
        values, new = self._scores(cfg)
        if new:
            self._pool_scores[cfg.arch_id] = new
        return {objective(n).column: v for n, v in values.items()}

    # -- the loop -------------------------------------------------------------------------
    def _set_status(self, status: str, message: str | None = None, elapsed: float | None = None) -> None:
        fields: dict[str, Any] = {"message": message}
        if elapsed is not None:
            fields["elapsed"] = elapsed
        if status == lifecycle.RUNNING:
            jobs.claim(self.store, jobs.SEARCH, self.run_id)
            jobs.update(self.store, jobs.SEARCH, self.run_id, **fields)
        else:
            jobs.transition(self.store, jobs.SEARCH, self.run_id, status, **fields)

    def _cancel_requested(self) -> bool:
        return runs.status(self.store, self.run_id) == lifecycle.CANCELLING

    def _propose_generation(self, n: int, parents: list[dict[str, Any]] | None = None,
                            exclude: frozenset[str] | set[str] = frozenset()) -> list[Config]:
        s = self.settings
        seen = set(self.member_ids) | exclude
        out: list[Config] = []
        attempts = 0
        while len(out) < n and attempts < 200 * n:
            attempts += 1
            cfg = self.strategy.propose(self.members if parents is None else parents, s.constraints.params_window)  # built inside the bounds, not rejected
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

    def _screened(self, first: list[Config], room: int) -> list[Config]:
        """``first`` plus more children up to the pool size, screened down to at most ``room``."""
        assert self.screen is not None and self.settings.surrogate is not None
        settings = self.settings.surrogate
        extra = settings.pool_factor * room - len(first)
        if extra > 0:
            taken = self.member_ids | {c.arch_id for c in first}
            more = [c for c in self._propose_generation(extra) if c.arch_id not in taken]
            first = first + more
        inner = settings.inner_generations if len(self.members) >= self.settings.evolution.population else 0
        if inner:
            self.screen.refit_if_due(self.members)
            # the parents: the measured members and the pool at its predicted costs (each child predicted once)
            predicted: list[dict[str, Any]] = []
            done = 0
            for _ in range(inner if self.screen.models else 0):
                predicted += self.screen.predicted_members(first[done:], len(self.members) + done)
                done = len(first)
                first = first + self._propose_generation(settings.pool_factor * room, self.members + predicted,
                                                         {c.arch_id for c in first})
        chosen = self.screen.select(first, self.members, room, self._scales(), fitted=bool(inner))
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
        start_elapsed = self.row.elapsed
        t0 = time.perf_counter()
        elapsed = lambda: start_elapsed + time.perf_counter() - t0  # noqa: E731
        self.strategy.restore(self.state)
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
                    pending = self._propose_generation(max(room, 1))
                    if not pending:
                        self._set_status("finished", self._nothing_new())
                        return self.store.run(self.run_id)
                    if self.screen is not None:
                        pending = self._screened(pending, max(room, 1))
                    generation += 1
                    self.state.update(generation=generation, pending=[c.canonical_json() for c in pending],
                                      **self.strategy.state())
                    runs.save_progress(self.store, self.run_id, self.state)
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
            self._set_status(lifecycle.CANCELLED, "interrupted by the user; resume with lts search --resume", elapsed())
            raise
        except Exception as exc:
            self._set_status("failed", f"{type(exc).__name__}: {exc}".splitlines()[0], elapsed())
            raise
        self._set_status("finished", elapsed=elapsed())
        return self.store.run(self.run_id)


def frontier_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    """A run's frontier members, with the value of each proxy objective as column ``proxy:<name>``."""
    return member_rows(store, run_id, frontier_only=True)


def member_rows(store: Store, run_id: str, frontier_only: bool = False) -> list[dict[str, Any]]:
    """A run's members (:meth:`Store.run_rows`) with its proxy objectives' values."""
    run = store.run(run_id)
    if run["strategy"] not in STRATEGIES:  # a strategy this lts does not know: its members, no proxy columns
        return store.run_rows(run_id, frontier_only=frontier_only)
    s = settings_of(run)
    return runs.members(store, run_id, s.proxies, s.proxy_key, frontier_only=frontier_only)


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
    for name in proxy_objectives(objectives):
        col = objective(name).column
        vals = [abs(float(r[col])) for rows in runs_rows for r in rows if r["feasible"] and r.get(col) is not None]
        scales[name] = 1.1 * max(vals) if vals and max(vals) > 0 else 1.0
    return scales


__all__ = [
    "SearchSettings", "SearchRunner", "create_run", "settings_of", "frontier_rows", "run_hypervolume",
    "common_scales", "max_decoder_params", "Progress", "memory_limit_of",
]
