"""Read-only queries across tables for the explorer, the deciding views and the dashboard.

Tabular reads come back as pandas DataFrames read straight from the connection (with 150,000
measurements that is several times faster than a dict per row); single entities as plain rows.
pandas is imported inside the functions that need it, so the CLI's start stays light.
"""

from __future__ import annotations

from typing import Any, Sequence

from lts.store.db import RUN_SPACE_SQL, Store


def _ph(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _frame(store: Store, sql: str, params: Sequence[object] = ()) -> Any:
    import pandas as pd

    return pd.read_sql_query(sql, store.conn, params=list(params))


def has_table(store: Store, name: str) -> bool:
    """Whether the database holds table ``name`` (an old file may predate a migration's tables)."""
    return bool(store.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)))


# -- architectures -----------------------------------------------------------------------------
def architecture(store: Store, arch_id: str) -> dict[str, Any] | None:
    """The ``architectures`` row of one id, or None."""
    rows = store.query("SELECT * FROM architectures WHERE arch_id = ?", (arch_id,))
    return rows[0] if rows else None


def known_architectures(store: Store, arch_ids: Sequence[str]) -> list[str]:
    """Those of ``arch_ids`` the database holds, in the given order."""
    if not arch_ids:
        return []
    found = {r["arch_id"] for r in store.query(f"SELECT arch_id FROM architectures WHERE arch_id IN ({_ph(arch_ids)})",
                                               list(arch_ids))}
    return [a for a in arch_ids if a in found]


def architecture_configs(store: Store, arch_ids: Sequence[str]) -> dict[str, str]:
    """arch_id -> config JSON of those of ``arch_ids`` the database holds."""
    if not arch_ids:
        return {}
    rows = store.query(f"SELECT arch_id, config_json FROM architectures WHERE arch_id IN ({_ph(arch_ids)})",
                       list(arch_ids))
    return {r["arch_id"]: r["config_json"] for r in rows}


def memberships(store: Store, arch_id: str) -> list[dict[str, Any]]:
    """The runs that evaluated an architecture: run_id, eval_index, generation, feasible, on_frontier."""
    return store.query(
        "SELECT run_id, eval_index, generation, feasible, on_frontier FROM run_members WHERE arch_id = ?", (arch_id,))


def frontier_architectures(store: Store, limit: int = 200) -> list[str]:
    """Ids of architectures on some run's frontier, largest decoder-param count first."""
    return [r["arch_id"] for r in store.query(
        "SELECT arch_id FROM run_members m JOIN architectures a USING (arch_id) WHERE m.on_frontier = 1 "
        "ORDER BY a.decoder_params DESC LIMIT ?", (int(limit),))]


# -- runs ---------------------------------------------------------------------------------------
def run_progress(store: Store, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """(run_id, n_evaluated, updated_at) of the given runs, by run id: what changes as they go on."""
    if not run_ids:
        return []
    return store.query(f"SELECT run_id, n_evaluated, updated_at FROM runs WHERE run_id IN ({_ph(run_ids)})"
                       " ORDER BY run_id", list(run_ids))


def run_evaluations_frame(store: Store, run_id: str, device_id: str | None, protocol: str | None) -> Any:
    """A run's evaluations in order (eval_index, feasible, decoder_params, latency_ms, peak_memory_mb,
    measured_at), each with its measurement on (device_id, protocol)."""
    return _frame(store,
                  """SELECT m.eval_index, m.feasible, a.decoder_params, x.latency_ms, x.peak_memory_mb, x.measured_at
                     FROM run_members m JOIN architectures a USING (arch_id)
                     LEFT JOIN measurements x ON x.arch_id = m.arch_id AND x.device_id = ? AND x.protocol = ?
                     WHERE m.run_id = ? ORDER BY m.eval_index""", [device_id, protocol, run_id])


# -- measured points -------------------------------------------------------------------------------
def device_protocols_frame(store: Store) -> Any:
    """Per device and protocol: device_id, device_name, protocol, n measurements (most first in a device)."""
    return _frame(store,
                  """SELECT d.device_id, d.name AS device_name, x.protocol, COUNT(*) AS n
                     FROM measurements x JOIN devices d USING (device_id)
                     GROUP BY x.device_id, x.protocol ORDER BY d.created_at, n DESC""")


def device_points_frame(store: Store, device_id: str, protocol: str) -> Any:
    """Every measurement of one device under one protocol as points (``source`` is the device name)."""
    return _frame(store, """
        SELECT d.name AS source, x.device_id, d.name AS device_name, x.protocol, NULL AS run_id, a.arch_id,
               a.family, a.decoder_params, a.n_layer, a.d_model, x.latency_ms, x.latency_cv, x.repeats,
               x.peak_memory_mb, CASE WHEN x.infeasible IS NULL THEN 1 ELSE 0 END AS feasible, x.measured_at
        FROM measurements x JOIN architectures a USING (arch_id) JOIN devices d USING (device_id)
        WHERE x.device_id = ? AND x.protocol = ?""", (device_id, protocol))


def device_space_members(store: Store, device_id: str) -> dict[str, list[str]]:
    """{space name: architectures that runs measured on this device evaluated in that space}."""
    rows = store.query(f"""
        SELECT DISTINCT {RUN_SPACE_SQL} AS space, m.arch_id
        FROM runs r JOIN run_members m USING (run_id) WHERE r.device_id = ?""", (device_id,))
    out: dict[str, list[str]] = {}
    for r in rows:
        out.setdefault(r["space"], []).append(r["arch_id"])
    return out


def run_points_frame(store: Store, run_ids: Sequence[str]) -> Any:
    """Evaluations of the given runs (not empty) with their measurement on the run's device."""
    return _frame(store, f"""
        SELECT COALESCE(d.name, 'proxy only') || ' · ' || r.strategy || ' · ' || r.run_id AS source, r.device_id,
               COALESCE(d.name, '(proxy only)') AS device_name, r.protocol, r.run_id, a.arch_id, a.family,
               a.decoder_params, a.n_layer, a.d_model, x.latency_ms, x.latency_cv, x.repeats, x.peak_memory_mb,
               m.feasible, x.measured_at, m.eval_index, m.on_frontier, r.strategy
        FROM run_members m JOIN runs r USING (run_id) JOIN architectures a USING (arch_id)
        LEFT JOIN devices d ON d.device_id = r.device_id
        LEFT JOIN measurements x ON x.arch_id = m.arch_id AND x.device_id = r.device_id AND x.protocol = r.protocol
        WHERE m.run_id IN ({_ph(run_ids)}) ORDER BY m.run_id, m.eval_index""", run_ids)


def data_version(store: Store) -> tuple:
    """Changes whenever a measurement, an evaluation or a run changes: a cache key for derived views."""
    row = store.query(
        """SELECT (SELECT COUNT(*) FROM measurements) AS a, (SELECT MAX(measured_at) FROM measurements) AS b,
                  (SELECT COUNT(*) FROM run_members) AS c, (SELECT MAX(updated_at) FROM runs) AS d,
                  (SELECT COUNT(*) FROM devices) AS e""")[0]
    return tuple(row.values())


# -- validation ------------------------------------------------------------------------------------
def validation_ppls(store: Store, arch_id: str) -> list[dict[str, Any]]:
    """(validation_id, valid_ppl) of an architecture's finished validations; none before the tables exist."""
    if not has_table(store, "validation_results"):
        return []
    return store.query("SELECT validation_id, valid_ppl FROM validation_results WHERE arch_id = ?"
                       " AND valid_ppl IS NOT NULL", (arch_id,))
