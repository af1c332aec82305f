"""Cost surrogates, their predictions during a search, and drift checks: every statement on those tables."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from lts.store.db import Store


@dataclass(frozen=True)
class SurrogateRecord:
    """One stored surrogate version (JSON columns decoded); ``device_name`` where the read joins devices."""

    surrogate_id: str
    device_id: str
    protocol: str
    objective: str
    version: int
    model_kind: str
    features: list[str]
    train_ids: list[str]
    figures: dict[str, Any]
    model: dict[str, Any]  # {"kind", "seed", "rel_std"}: what refits it
    source_surrogate_id: str | None
    created_at: float
    device_name: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "SurrogateRecord":
        return cls(row["surrogate_id"], row["device_id"], row["protocol"], row["objective"], int(row["version"]),
                   row["model_kind"], json.loads(row["features_json"]), json.loads(row["train_ids_json"]),
                   json.loads(row["figures_json"]), json.loads(row["model_json"]), row["source_surrogate_id"],
                   float(row["created_at"]), row.get("device_name"))


# -- surrogates ---------------------------------------------------------------------------------
def insert_next_version(store: Store, surrogate_id: str, device_id: str, protocol: str, objective: str,
                        model_kind: str, features: Sequence[str], train_ids: Sequence[str], figures: Mapping[str, Any],
                        model: Mapping[str, Any], source_surrogate_id: str | None = None) -> int:
    """Store a surrogate as the next version of its (device, protocol, objective), in one transaction;
    returns the version."""
    with store.write() as conn:
        version = conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM surrogates WHERE device_id = ? AND protocol = ? AND objective = ?",
            (device_id, protocol, objective)).fetchone()[0]
        conn.execute(
            "INSERT INTO surrogates (surrogate_id, device_id, protocol, objective, version, model_kind, features_json,"
            " train_ids_json, figures_json, model_json, source_surrogate_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (surrogate_id, device_id, protocol, objective, version, model_kind, json.dumps(list(features)),
             json.dumps(list(train_ids)), json.dumps(dict(figures), sort_keys=True), json.dumps(dict(model)),
             source_surrogate_id, time.time()))
    return int(version)


def latest(store: Store, device_id: str, protocol: str, objective: str,
           version: int | None = None) -> SurrogateRecord | None:
    """The latest (or the given) version for (device, protocol, objective), or None."""
    sql = "SELECT * FROM surrogates WHERE device_id = ? AND protocol = ? AND objective = ?"
    params: list[Any] = [device_id, protocol, objective]
    if version is not None:
        sql += " AND version = ?"
        params.append(version)
    rows = store.query(sql + " ORDER BY version DESC LIMIT 1", params)
    return SurrogateRecord.from_row(rows[0]) if rows else None


def get(store: Store, surrogate_id: str) -> SurrogateRecord | None:
    rows = store.query("SELECT * FROM surrogates WHERE surrogate_id = ?", (surrogate_id,))
    return SurrogateRecord.from_row(rows[0]) if rows else None


def latest_per_key(store: Store) -> list[SurrogateRecord]:
    """The latest version per (device, protocol, objective), with the device name, by name/protocol/objective."""
    rows = store.query(
        """SELECT s.*, d.name AS device_name FROM surrogates s JOIN devices d USING (device_id)
           WHERE s.version = (SELECT MAX(version) FROM surrogates t WHERE t.device_id = s.device_id
                              AND t.protocol = s.protocol AND t.objective = s.objective)
           ORDER BY d.name, s.protocol, s.objective""")
    return [SurrogateRecord.from_row(r) for r in rows]


# -- predictions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Prediction:
    arch_id: str
    objective: str
    mean: float
    std: float | None
    decision: str  # "measure" or "skip"


def record_predictions(store: Store, run_id: str, configs: Iterable[Any], predictions: Iterable[Prediction],
                       at: float | None = None) -> None:
    """Store the screened architectures (``configs``) and a run's predictions for them, in one transaction
    (a prediction made again replaces the earlier one and clears its measurement)."""
    at = time.time() if at is None else at
    with store.write() as conn:
        for cfg in configs:
            store.upsert_architecture(conn, cfg)
        for p in predictions:
            conn.execute(
                "INSERT OR REPLACE INTO predictions (run_id, arch_id, objective, surrogate_id, mean, std, decision,"
                " measured, predicted_at) VALUES (?,?,?,?,?,?,?,NULL,?)",
                (run_id, p.arch_id, p.objective, None, float(p.mean), None if p.std is None else float(p.std),
                 p.decision, at))


def set_measured(conn: Any, run_id: str, arch_id: str, objective: str, value: float) -> None:
    """Put the real measurement beside its prediction, inside the caller's transaction (``conn`` from
    :meth:`Store.write`, so that it lands with the evaluation it belongs to)."""
    conn.execute("UPDATE predictions SET measured = ? WHERE run_id = ? AND arch_id = ? AND objective = ?",
                 (float(value), run_id, arch_id, objective))


def measured_predictions(store: Store, run_id: str, objective: str) -> list[dict[str, Any]]:
    """(mean, measured) of a run's predictions of ``objective`` that were measured since, oldest first."""
    return store.query("SELECT mean, measured FROM predictions WHERE run_id = ? AND objective = ?"
                       " AND measured IS NOT NULL ORDER BY predicted_at", (run_id, objective))


def assisted_runs(store: Store) -> list[str]:
    """Runs with predictions, the most recently active first."""
    return [r["run_id"] for r in store.query(
        "SELECT run_id, MAX(predicted_at) AS last FROM predictions GROUP BY run_id ORDER BY last DESC, run_id")]


def run_predictions(store: Store, run_id: str) -> list[dict[str, Any]]:
    """A run's predictions (arch_id, objective, mean, std, decision, measured, predicted_at) in order."""
    return store.query(
        "SELECT arch_id, objective, mean, std, decision, measured, predicted_at FROM predictions WHERE run_id = ?"
        " ORDER BY predicted_at, arch_id", (run_id,))


# -- drift checks -----------------------------------------------------------------------------------
DRIFT_COLUMNS = ("run_id", "check_index", "arch_id", "eval_index", "latency_ms", "ratio", "flagged", "measured_at")


def drift_checks(store: Store, run_id: str | None = None) -> list[dict[str, Any]]:
    """Drift checks of one run (all runs when None), by run and check index."""
    sql = f"SELECT {', '.join(DRIFT_COLUMNS)} FROM drift_checks"
    params: tuple = ()
    if run_id:
        sql += " WHERE run_id = ?"
        params = (run_id,)
    return store.query(sql + " ORDER BY run_id, check_index", params)


def record_drift_check(store: Store, reference: Any, check: Mapping[str, Any], device_id: str, protocol: str,
                       mark_since: float | None = None, mark: Mapping[str, Any] | None = None) -> None:
    """Store a drift check of the ``reference`` architecture and, with ``mark_since``, mark the device's
    measurements taken after it up to the check (``drift_flag`` = ``mark`` as JSON), in one transaction."""
    with store.write() as conn:
        store.upsert_architecture(conn, reference)
        conn.execute(f"INSERT INTO drift_checks ({', '.join(DRIFT_COLUMNS)}) VALUES (?,?,?,?,?,?,?,?)",
                     tuple(check[k] for k in DRIFT_COLUMNS))
        if mark_since is not None:
            conn.execute("UPDATE measurements SET drift_flag = ? WHERE device_id = ? AND protocol = ?"
                         " AND measured_at > ? AND measured_at <= ?",
                         (json.dumps(dict(mark or {})), device_id, protocol, mark_since, check["measured_at"]))
