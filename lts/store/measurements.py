"""Measurements, their history and the re-measure jobs: every statement on those tables.

``measurements`` is the cache every reader joins on, one row per (architecture, device,
protocol); :func:`replace` moves the current row to ``measurement_history`` and writes the new
one in one transaction. ``remeasure_jobs`` rows are created here; their lifecycle columns
(status, message, pid, host) change only through :mod:`lts.store.jobs` (kind ``REMEASURE``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from lts.errors import LtsError
from lts.store.db import MEASUREMENT_FIELDS, Store
Key = tuple[str, str, str]  # (arch_id, device_id, protocol)


def _ph(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


# -- devices and measurements ---------------------------------------------------------------------
def save_device(store: Store, record: Mapping[str, Any]) -> None:
    """Store a device record (kept as it is when its id is known already), in its own transaction."""
    with store.write() as conn:
        store.upsert_device(conn, dict(record))


def replace(store: Store, new: Mapping[str, Any], job_id: str | None = None) -> None:
    """Keep the current row for (arch, device, protocol) in the history and store ``new`` in its place,
    in one transaction; ``job_id`` names the re-measure job that replaced it."""
    key = (new["arch_id"], new["device_id"], new["protocol"])
    fields = ",".join(MEASUREMENT_FIELDS)
    with store.write() as conn:
        conn.execute(
            f"""INSERT OR IGNORE INTO measurement_history ({fields}, replaced_at, job_id)
                SELECT {fields}, ?, ? FROM measurements
                WHERE arch_id = ? AND device_id = ? AND protocol = ?""", (time.time(), job_id, *key))
        conn.execute("DELETE FROM measurements WHERE arch_id = ? AND device_id = ? AND protocol = ?", key)
        store.insert_measurement(conn, {**new, "measured_at": new.get("measured_at") or time.time()})


def latest_protocols(store: Store, device_name: str, arch_ids: Sequence[str]) -> dict[str, str]:
    """Per architecture, the protocol of its latest measurement on a device of that name (absent: none)."""
    if not arch_ids:
        return {}
    rows = store.query(
        f"""SELECT x.arch_id, x.protocol FROM measurements x JOIN devices d USING (device_id)
            WHERE d.name = ? AND x.arch_id IN ({_ph(arch_ids)}) ORDER BY x.measured_at""",
        [device_name, *arch_ids])
    return {r["arch_id"]: r["protocol"] for r in rows}


def last_replaced(store: Store, arch_id: str, device_id: str, protocol: str) -> dict[str, Any] | None:
    """The latest earlier measurement kept in the history for one key, or None."""
    rows = store.query(
        "SELECT * FROM measurement_history WHERE arch_id = ? AND device_id = ? AND protocol = ?"
        " ORDER BY measured_at DESC LIMIT 1", (arch_id, device_id, protocol))
    return rows[0] if rows else None


def measured_since(store: Store, device_name: str, since: float, arch_ids: Sequence[str]) -> list[Key]:
    """Keys of ``arch_ids`` measured on a device of that name at or after ``since``, oldest first."""
    if not arch_ids:
        return []
    rows = store.query(
        f"""SELECT x.arch_id, x.device_id, x.protocol FROM measurements x JOIN devices d USING (device_id)
            WHERE d.name = ? AND x.measured_at >= ? AND x.arch_id IN ({_ph(arch_ids)})
            ORDER BY x.measured_at""", [device_name, since, *arch_ids])
    return [(r["arch_id"], r["device_id"], r["protocol"]) for r in rows]


def of_architecture(store: Store, arch_id: str) -> list[dict[str, Any]]:
    """Every current measurement of one architecture with its device's name, by device name."""
    return store.query(
        """SELECT d.name AS device, x.protocol, x.latency_ms, x.latency_cv, x.repeats, x.peak_memory_mb,
                  x.infeasible, x.measured_at FROM measurements x JOIN devices d USING (device_id)
           WHERE x.arch_id = ? ORDER BY d.name""", (arch_id,))


def training_rows(store: Store, device_id: str, protocol: str, column: str) -> list[dict[str, Any]]:
    """(arch_id, config_json, y, seconds) of the feasible, not drift-marked measurements of one device and
    protocol with ``column`` (``latency_ms`` or ``peak_memory_mb``) as ``y``, ordered by arch id."""
    if column not in ("latency_ms", "peak_memory_mb"):
        raise ValueError(f"not a measured column: {column!r}")
    return store.query(
        f"""SELECT a.arch_id, a.config_json, m.{column} AS y, m.seconds FROM measurements m
            JOIN architectures a USING (arch_id)
            WHERE m.device_id = ? AND m.protocol = ? AND m.infeasible IS NULL AND m.{column} > 0
              AND m.drift_flag IS NULL AND a.family IN ('gpt2', 'transxl')
            ORDER BY a.arch_id""", (device_id, protocol))


def feasible_counts(store: Store, device_name: str) -> list[dict[str, Any]]:
    """(device_id, protocol, n) of a device name's feasible measurements, most first."""
    return store.query(
        """SELECT d.device_id, m.protocol, COUNT(*) AS n FROM devices d JOIN measurements m USING (device_id)
           WHERE d.name = ? AND m.infeasible IS NULL GROUP BY d.device_id, m.protocol ORDER BY n DESC""",
        (device_name,))


def provenance_frame(store: Store, device_ids: Sequence[str] | None = None,
                     arch_ids: Sequence[str] | None = None) -> Any:
    """Every measurement of the given devices/architectures (all when None) with its device's name and
    record, the architecture's decoder params and the number of earlier measurements (a DataFrame)."""
    import pandas as pd

    where, params = [], []
    if device_ids is not None:
        where.append(f"x.device_id IN ({_ph(device_ids)})")
        params += list(device_ids)
    if arch_ids is not None:
        where.append(f"x.arch_id IN ({_ph(arch_ids)})")
        params += list(arch_ids)
    return pd.read_sql_query(
        f"""SELECT x.arch_id, d.name AS device_name, x.device_id, x.protocol, x.latency_ms, x.latency_cv, x.repeats,
                   x.peak_memory_mb, x.infeasible, x.seconds, x.measured_at, a.decoder_params, d.record_json,
                   (SELECT COUNT(*) FROM measurement_history h WHERE h.arch_id = x.arch_id
                       AND h.device_id = x.device_id AND h.protocol = x.protocol) AS n_previous
            FROM measurements x JOIN devices d USING (device_id) JOIN architectures a USING (arch_id)
            {'WHERE ' + ' AND '.join(where) if where else ''}""",
        store.conn, params=params)


def history_frame(store: Store, arch_ids: Sequence[str], device_id: str | None = None) -> Any:
    """Current and earlier measurements of ``arch_ids`` (``state`` 'current'/'earlier'), newest first per
    (architecture, device, protocol) (a DataFrame; ``arch_ids`` must not be empty)."""
    import pandas as pd

    ph = _ph(arch_ids)
    dev = " AND device_id = ?" if device_id else ""
    extra = [device_id] if device_id else []
    return pd.read_sql_query(
        f"""SELECT arch_id, d.name AS device_name, protocol, state, latency_ms, latency_cv, repeats, peak_memory_mb,
                   infeasible, measured_at FROM (
                SELECT arch_id, device_id, protocol, 'current' AS state, latency_ms, latency_cv, repeats,
                       peak_memory_mb, infeasible, measured_at FROM measurements WHERE arch_id IN ({ph}){dev}
                UNION ALL
                SELECT arch_id, device_id, protocol, 'earlier' AS state, latency_ms, latency_cv, repeats,
                       peak_memory_mb, infeasible, measured_at FROM measurement_history WHERE arch_id IN ({ph}){dev}
            ) JOIN devices d USING (device_id) ORDER BY arch_id, device_name, protocol, measured_at DESC""",
        store.conn, params=[*arch_ids, *extra, *arch_ids, *extra])


# -- re-measure jobs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RemeasureJob:
    """One ``remeasure_jobs`` row (stored status: see :mod:`lts.jobs.lifecycle`)."""

    job_id: str
    device_name: str
    protocol: str | None
    arch_ids: tuple[str, ...]
    status: str
    n_done: int
    message: str | None
    pid: int | None
    host: str | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "RemeasureJob":
        return cls(row["job_id"], row["device_name"], row["protocol"], tuple(json.loads(row["arch_ids_json"])),
                   row["status"], int(row["n_done"] or 0), row["message"], row["pid"], row["host"],
                   float(row["created_at"]), float(row["updated_at"]))


def create_remeasure_job(store: Store, job_id: str, device_name: str, protocol: str | None,
                         arch_ids: Sequence[str], status: str = "queued") -> None:
    """Insert a new re-measure job (its later status changes go through :mod:`lts.store.jobs`)."""
    now = time.time()
    with store.write() as conn:
        conn.execute(
            "INSERT INTO remeasure_jobs (job_id, device_name, protocol, arch_ids_json, status, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?)", (job_id, device_name, protocol, json.dumps(list(arch_ids)), status, now, now))


def remeasure_job(store: Store, job_id: str) -> RemeasureJob:
    rows = store.query("SELECT * FROM remeasure_jobs WHERE job_id = ?", (job_id,))
    if not rows:
        raise LtsError(f"no re-measure job {job_id!r} in {store.path}")
    return RemeasureJob.from_row(rows[0])


def remeasure_job_rows(store: Store) -> list[dict[str, Any]]:
    """Every re-measure job as a stored row, newest first."""
    return store.query("SELECT * FROM remeasure_jobs ORDER BY created_at DESC")
