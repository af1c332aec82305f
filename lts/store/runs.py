"""Search runs: every statement on ``runs``, ``run_members`` and ``proxy_scores``.

A run's row has three owners, each writing its own columns (so no write can lose another's):

* creation (:func:`create`): what defines the search -- space, objectives, constraints, strategy,
  seed, budgets, device, protocol, and ``settings_json`` (evolution, surrogate, drift, protocol,
  memory limit, remote device, proxy settings), never rewritten afterwards;
* the runner (:func:`save_progress`, :func:`record_evaluation`): ``progress_json``, a versioned
  record of where the search is (:data:`PROGRESS_KEYS`), and the counters;
* the lifecycle (:mod:`lts.store.jobs`): status, message, pid, host.

Relations between runs are columns (``reproduces``), not keys in a JSON text.

Results bundles keep the one ``state_json`` object of earlier releases (so bundles travel between
releases both ways): :func:`merged_state` writes it, :func:`split_state` reads it.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from lts.errors import LtsError
from lts.store.db import Store

PROGRESS_VERSION = 1
# The keys of a run's state that only the runner writes; everything else is a setting.
PROGRESS_KEYS = ("generation", "pending", "rng", "strategy", "hv_scales", "device_seconds", "drift_flags",
                 "idle_generations", "screened")


@dataclass(frozen=True)
class RunRow:
    """A run as the search reads it: decoded columns, not JSON texts."""

    run_id: str
    family: str
    space: dict[str, Any]
    strategy: str
    objectives: tuple[str, ...]
    constraints: dict[str, Any]
    seed: int
    budget: int | None
    time_budget: float | None
    device_id: str | None
    protocol: str | None
    status: str
    message: str | None
    n_evaluated: int
    elapsed: float
    settings: dict[str, Any]
    progress: dict[str, Any]
    reproduces: str | None
    pid: int | None
    host: str | None

    @classmethod
    def from_row(cls, r: Mapping[str, Any]) -> "RunRow":
        return cls(
            run_id=r["run_id"], family=r["family"], space=json.loads(r["space_json"]), strategy=r["strategy"],
            objectives=tuple(json.loads(r["objectives_json"])), constraints=json.loads(r["constraints_json"] or "{}"),
            seed=int(r["seed"]), budget=r["budget"], time_budget=r["time_budget"], device_id=r["device_id"],
            protocol=r["protocol"], status=r["status"], message=r.get("message"),
            n_evaluated=int(r.get("n_evaluated") or 0), elapsed=float(r.get("elapsed") or 0.0),
            settings=settings_of_row(r), progress=progress_of_row(r), reproduces=r.get("reproduces"),
            pid=r.get("pid"), host=r.get("host"),
        )


def settings_of_row(r: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(r.get("settings_json") or "{}")


def progress_of_row(r: Mapping[str, Any]) -> dict[str, Any]:
    progress = json.loads(r.get("progress_json") or "{}")
    version = progress.pop("version", PROGRESS_VERSION)
    if version > PROGRESS_VERSION:
        raise LtsError(f"run {r['run_id']}: its progress record is v{version}, newer than this lts (v{PROGRESS_VERSION})")
    return progress


def split_state(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(settings, progress, reproduces) of a ``state_json`` object (bundles, databases before v6)."""
    settings = {k: v for k, v in state.items() if k not in PROGRESS_KEYS and k != "reproduces"}
    progress = {k: v for k, v in state.items() if k in PROGRESS_KEYS}
    reproduces = state.get("reproduces")
    return settings, progress, reproduces if isinstance(reproduces, str) else None


def merged_state(r: Mapping[str, Any]) -> dict[str, Any]:
    """The one ``state_json`` object of a run's row, as bundles carry it."""
    if r.get("settings_json") is None and r.get("progress_json") is None:
        return json.loads(r.get("state_json") or "{}")
    out = {**settings_of_row(r), **progress_of_row(r)}
    if r.get("reproduces"):
        out["reproduces"] = r["reproduces"]
    return out


def _dumps(d: Mapping[str, Any]) -> str:
    return json.dumps(dict(d), sort_keys=True)


def progress_json(progress: Mapping[str, Any]) -> str:
    unknown = set(progress) - set(PROGRESS_KEYS)
    if unknown:  # a setting written as progress would be rewritten on every evaluation
        raise ValueError(f"not progress keys: {sorted(unknown)}")
    return json.dumps({"version": PROGRESS_VERSION, **progress})


# -- reads ---------------------------------------------------------------------------------------
def get(store: Store, run_id: str) -> RunRow:
    return RunRow.from_row(store.run(run_id))


def status(store: Store, run_id: str) -> str:
    rows = store.query("SELECT status FROM runs WHERE run_id = ?", (run_id,))
    if not rows:
        raise LtsError(f"no run {run_id!r} in {store.path}")
    return rows[0]["status"]


def device_record(store: Store, device_id: str) -> dict[str, Any]:
    rows = store.query("SELECT record_json FROM devices WHERE device_id = ?", (device_id,))
    if not rows:
        raise LtsError(f"no device {device_id!r} in {store.path}")
    return json.loads(rows[0]["record_json"])


def members(store: Store, run_id: str, proxies: Sequence[str] = (), proxy_settings: str = "",
            frontier_only: bool = False) -> list[dict[str, Any]]:
    """A run's members (:meth:`Store.run_rows`), each with the cached value of every proxy in
    ``proxies`` under ``proxy_settings`` as column ``proxy:<name>`` (None when not computed)."""
    rows = store.run_rows(run_id, frontier_only=frontier_only)
    if proxies and rows:
        scores = cached_scores(store, [r["arch_id"] for r in rows], proxies, proxy_settings)
        for r in rows:
            for p in proxies:
                r[f"proxy:{p}"] = scores.get((r["arch_id"], p))
    return rows


def cached_scores(store: Store, arch_ids: Sequence[str], proxies: Sequence[str],
                  settings: str) -> dict[tuple[str, str], float | None]:
    """Cached proxy values by (arch_id, proxy)."""
    if not arch_ids or not proxies or not store.db["proxy_scores"].exists():
        return {}
    out: dict[tuple[str, str], float | None] = {}
    ph = ",".join("?" * len(proxies))
    for i in range(0, len(arch_ids), 500):  # SQLite's bound-parameter limit
        chunk = list(arch_ids[i:i + 500])
        rows = store.query(
            f"SELECT arch_id, proxy, value FROM proxy_scores WHERE settings = ? AND proxy IN ({ph})"
            f" AND arch_id IN ({','.join('?' * len(chunk))})", (settings, *proxies, *chunk))
        out.update({(r["arch_id"], r["proxy"]): r["value"] for r in rows})
    return out


def reproductions(store: Store) -> list[tuple[str, str]]:
    """(run_id, reproduces) for every run that reproduces another."""
    return [(r["run_id"], r["reproduces"]) for r in store.query(
        "SELECT run_id, reproduces FROM runs WHERE reproduces IS NOT NULL ORDER BY created_at")]


# -- writes --------------------------------------------------------------------------------------
def create(store: Store, *, family: str, space: Mapping[str, Any], strategy: str, objectives: Sequence[str],
           constraints: Mapping[str, Any], seed: int, budget: int | None, time_budget: float | None,
           device: Mapping[str, Any] | None, protocol: str | None, settings: Mapping[str, Any],
           reproduces: str | None = None,
           admit: Callable[[sqlite3.Connection], None] | None = None) -> str:
    """Register a run (status 'created'); returns its id.

    ``admit(conn)`` runs inside the inserting transaction and may raise to refuse the run: a limit
    on concurrent runs checked there cannot be passed by two launches at once (the IMMEDIATE
    transaction makes the second wait until the first's row is in).
    """
    if set(settings) & set(PROGRESS_KEYS):
        raise ValueError(f"progress keys given as settings: {sorted(set(settings) & set(PROGRESS_KEYS))}")
    run_id = uuid.uuid4().hex[:12]
    now = time.time()
    with store.write() as conn:
        if admit is not None:
            admit(conn)
        if device is not None:
            store.upsert_device(conn, dict(device))
        conn.execute(
            "INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed,"
            " budget, time_budget, device_id, protocol, status, settings_json, progress_json, reproduces,"
            " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, family, _dumps(space), strategy, json.dumps(list(objectives)), _dumps(constraints), seed,
             budget, time_budget, device["device_id"] if device else None, protocol, "created",
             _dumps(settings), progress_json({}), reproduces, now, now),
        )
    return run_id


def save_progress(store: Store, run_id: str, progress: Mapping[str, Any]) -> None:
    """The runner's record of where the search is (before it evaluates a generation)."""
    with store.write() as conn:
        conn.execute("UPDATE runs SET progress_json = ?, updated_at = ? WHERE run_id = ?",
                     (progress_json(progress), time.time(), run_id))


@dataclass(frozen=True)
class Evaluation:
    """One evaluated candidate of a run, written in one transaction by :func:`record_evaluation`."""

    config: Any  # lts.space.config.Config
    eval_index: int
    generation: int
    feasible: bool
    measurement: Mapping[str, Any] | None = None  # measured now: cached for every run on the device
    replace_measurement: bool = False
    scores: Mapping[str, tuple[float | None, str | None, float]] | None = None  # proxy -> (value, error, s)
    proxy_settings: str = ""


def record_evaluation(store: Store, run_id: str, ev: Evaluation, front: Iterable[str], hypervolume: float | None,
                      elapsed: float, progress: Mapping[str, Any],
                      also: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """The architecture, its new measurement and proxy scores, its membership, the frontier flags,
    the run's counters and progress: one transaction, so a kill at any instant loses or
    duplicates nothing. ``also(conn)`` adds another store writer's rows to the same transaction
    (a surrogate's prediction paired with this measurement)."""
    front = list(front)
    now = time.time()
    with store.write() as conn:
        store.upsert_architecture(conn, ev.config)
        if ev.measurement is not None:
            store.insert_measurement(conn, dict(ev.measurement), replace=ev.replace_measurement)
        for proxy, (value, error, seconds) in (ev.scores or {}).items():
            conn.execute(
                "INSERT OR REPLACE INTO proxy_scores (arch_id, proxy, settings, value, error, seconds, computed_at)"
                " VALUES (?,?,?,?,?,?,?)", (ev.config.arch_id, proxy, ev.proxy_settings, value, error, seconds, now))
        if also is not None:
            also(conn)
        conn.execute(
            "INSERT INTO run_members (run_id, arch_id, eval_index, generation, feasible, on_frontier)"
            " VALUES (?,?,?,?,?,0)", (run_id, ev.config.arch_id, ev.eval_index, ev.generation, int(ev.feasible)))
        conn.execute("UPDATE run_members SET on_frontier = 0 WHERE run_id = ? AND on_frontier = 1", (run_id,))
        conn.executemany("UPDATE run_members SET on_frontier = 1 WHERE run_id = ? AND arch_id = ?",
                         [(run_id, a) for a in front])
        conn.execute(
            "UPDATE runs SET n_evaluated = (SELECT COUNT(*) FROM run_members WHERE run_id = ?), frontier_size = ?,"
            " hypervolume = ?, elapsed = ?, updated_at = ?, progress_json = ? WHERE run_id = ?",
            (run_id, len(front), hypervolume, elapsed, now, progress_json(progress), run_id))


def set_queue_message(store: Store, run_id: str, message: str | None, prefix: str) -> None:
    """Show (or clear, with None) a run's place in its device's queue; a clear leaves other messages."""
    with store.write() as conn:
        if message is not None:
            conn.execute("UPDATE runs SET message = ?, updated_at = ? WHERE run_id = ?", (message, time.time(), run_id))
        else:
            conn.execute("UPDATE runs SET message = NULL, updated_at = ? WHERE run_id = ? AND message LIKE ?",
                         (time.time(), run_id, prefix + "%"))


CHILD_TABLES = ("run_members", "predictions", "drift_checks")


def delete(store: Store, run_id: str) -> dict[str, int]:
    """Delete a run with its members, predictions and drift checks; returns the rows removed per table.
    Architectures, measurements and proxy scores stay: they are the cache every run shares."""
    tables = [t for t in CHILD_TABLES if store.db[t].exists()]
    with store.write() as conn:
        removed = {t: conn.execute(f"SELECT COUNT(*) FROM {t} WHERE run_id = ?", (run_id,)).fetchone()[0] for t in tables}
        removed["runs"] = conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount
    return removed
