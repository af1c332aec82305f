"""Measured points as DataFrames: per device (all its measurements) or per run (its evaluations).

Rows come from one SQL query each, read with ``pandas.read_sql_query`` straight from the
connection: with 150,000 measurements (50,000 architectures on 3 devices) that is several times
faster than building a dict per row. A device can hold measurements under several protocols (batch
sizes, threads); comparing across protocols would mix different questions, so a device's points
use one protocol: the one given, else the one it has most measurements under.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lts.store.db import Store

POINT_COLUMNS = ["source", "device_id", "device_name", "protocol", "run_id", "arch_id", "family", "decoder_params",
                 "n_layer", "d_model", "latency_ms", "latency_cv", "repeats", "peak_memory_mb", "feasible",
                 "measured_at"]


def _ph(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


def _frame(store: Store, sql: str, params: Sequence[object]) -> pd.DataFrame:
    df = pd.read_sql_query(sql, store.conn, params=list(params))
    return df.reindex(columns=POINT_COLUMNS + [c for c in df.columns if c not in POINT_COLUMNS])


def device_protocols(store: Store) -> pd.DataFrame:
    """Per device and protocol: the number of measurements (most first within a device)."""
    return pd.read_sql_query(
        """SELECT d.device_id, d.name AS device_name, x.protocol, COUNT(*) AS n
           FROM measurements x JOIN devices d USING (device_id)
           GROUP BY x.device_id, x.protocol ORDER BY d.created_at, n DESC""", store.conn)


def main_protocols(store: Store, device_ids: Iterable[str]) -> dict[str, str]:
    """The protocol each device has most measurements under."""
    wanted = set(device_ids)
    table = device_protocols(store)
    table = table[table["device_id"].isin(wanted)]
    return {d: g["protocol"].iloc[0] for d, g in table.groupby("device_id", sort=False)}


def device_points(store: Store, device_ids: Sequence[str], protocols: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Every measurement of the given devices under one protocol each; ``source`` is the device name.

    Infeasible measurements (out of memory, timed out) come back with ``feasible`` 0 and no cost.
    """
    protocols = dict(protocols or {})
    missing = [d for d in device_ids if d not in protocols]
    protocols.update(main_protocols(store, missing))
    parts = []
    for device_id in device_ids:
        if device_id not in protocols:
            continue
        parts.append(_frame(store, """
            SELECT d.name AS source, x.device_id, d.name AS device_name, x.protocol, NULL AS run_id, a.arch_id,
                   a.family, a.decoder_params, a.n_layer, a.d_model, x.latency_ms, x.latency_cv, x.repeats,
                   x.peak_memory_mb, CASE WHEN x.infeasible IS NULL THEN 1 ELSE 0 END AS feasible, x.measured_at
            FROM measurements x JOIN architectures a USING (arch_id) JOIN devices d USING (device_id)
            WHERE x.device_id = ? AND x.protocol = ?""", (device_id, protocols[device_id])))
    if not parts:
        return pd.DataFrame(columns=POINT_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def run_points(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Evaluations of the given runs with their measurement on the run's device; ``source`` names the run.

    ``feasible`` is the run's verdict (its constraints included), ``eval_index`` the evaluation order.
    """
    if not run_ids:
        return pd.DataFrame(columns=POINT_COLUMNS + ["eval_index", "on_frontier", "strategy"])
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
    row = store.conn.execute(
        """SELECT (SELECT COUNT(*) FROM measurements), (SELECT MAX(measured_at) FROM measurements),
                  (SELECT COUNT(*) FROM run_members), (SELECT MAX(updated_at) FROM runs),
                  (SELECT COUNT(*) FROM devices)""").fetchone()
    return tuple(row)


def bounded_sample(df: pd.DataFrame, n: int, seed: int = 0, keep: pd.Series | np.ndarray | None = None,
                   group: str = "source") -> pd.DataFrame:
    """At most ``n`` rows per group, drawn with a fixed seed, plus every row flagged in ``keep``.

    What a browser receives must stay bounded whatever the database holds: fronts and selected
    points are kept exactly, the background cloud is a uniform sample of the rest.
    """
    keep_mask = np.zeros(len(df), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    rng = np.random.default_rng(seed)
    chosen = keep_mask.copy()
    codes = pd.factorize(df[group])[0] if len(df) else np.empty(0, dtype=int)
    for code in np.unique(codes):
        rest = np.flatnonzero((codes == code) & ~keep_mask)
        if len(rest) > n:
            rest = rng.choice(rest, size=n, replace=False)
        chosen[rest] = True
    return df[chosen]
