"""Measured points as DataFrames: per device (all its measurements) or per run (its evaluations).

Rows come from one query each (:mod:`lts.store.reads`), read into a DataFrame straight from the
connection: with 150,000 measurements (50,000 architectures on 3 devices) that is several times
faster than building a dict per row. A device can hold measurements under several protocols (batch
sizes, threads); comparing across protocols would mix different questions, so a device's points
use one protocol: the one given, else the one it has most measurements under.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from lts.store import reads
from lts.store.db import Store

POINT_COLUMNS = ["source", "device_id", "device_name", "protocol", "run_id", "arch_id", "family", "decoder_params",
                 "n_layer", "d_model", "latency_ms", "latency_cv", "repeats", "peak_memory_mb", "feasible",
                 "measured_at"]


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.reindex(columns=POINT_COLUMNS + [c for c in df.columns if c not in POINT_COLUMNS])


def device_protocols(store: Store) -> pd.DataFrame:
    """Per device and protocol: the number of measurements (most first within a device)."""
    return reads.device_protocols_frame(store)


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
        parts.append(_frame(reads.device_points_frame(store, device_id, protocols[device_id])))
    if not parts:
        return pd.DataFrame(columns=POINT_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def device_spaces(store: Store, device_id: str) -> dict[str, set[str]]:
    """The search spaces whose runs measured on this device, each with the architectures they evaluated:
    a device-level view restricted to one space leaves out other spaces' runs (the demo's tiny models
    among a GPT-2 search's) and measurements taken outside any run."""
    return {name: set(ids) for name, ids in sorted(reads.device_space_members(store, device_id).items())}


def in_space(points: pd.DataFrame, members: set[str] | None) -> pd.DataFrame:
    """``points`` restricted to ``members`` (an entry of :func:`device_spaces`); all of them for None."""
    return points if members is None else points[points["arch_id"].isin(members)].reset_index(drop=True)


def run_points(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """Evaluations of the given runs with their measurement on the run's device; ``source`` names the run.

    ``feasible`` is the run's verdict (its constraints included), ``eval_index`` the evaluation order.
    """
    if not run_ids:
        return pd.DataFrame(columns=POINT_COLUMNS + ["eval_index", "on_frontier", "strategy"])
    return with_proxy_objectives(store, _frame(reads.run_points_frame(store, run_ids)))


def with_proxy_objectives(store: Store, df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (run points) with a column per proxy objective of its runs (``zerolm``, ...): the
    value each run computed, under its proxy settings; empty for runs without that objective."""
    from lts.search.runner import settings_of
    from lts.store.runs import cached_scores

    for run_id in df["run_id"].dropna().unique() if len(df) else ():
        settings = settings_of(store.run(run_id))
        if not settings.proxies:
            continue
        rows = df["run_id"] == run_id
        scores = cached_scores(store, list(df.loc[rows, "arch_id"]), settings.proxies, settings.proxy_key)
        for name in settings.proxies:
            if name not in df:
                df[name] = float("nan")
            df.loc[rows, name] = [scores.get((a, name)) for a in df.loc[rows, "arch_id"]]
    return df


def data_version(store: Store) -> tuple:
    """Changes whenever a measurement, an evaluation or a run changes: a cache key for derived views."""
    return reads.data_version(store)


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
