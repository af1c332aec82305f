"""Read-side queries for exploring results: the dashboard's pages are thin views over these.

Everything returns pandas DataFrames (or plain dicts) built from parameterised SQL, filtered in
the database so a page stays fast with tens of thousands of architectures. Measured points of runs
and devices, and what the deciding views derive from them, live in :mod:`lts.decide`.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

import numpy as np
import pandas as pd

from lts.decide.layers import layer_table
from lts.errors import LtsError
from lts.objectives import objective, objective_names, proxy_objectives
from lts.pareto import pareto_mask
from lts.space.counts import breakdown
from lts.space.config import Config, config_from_json
from lts.store import measurements as store_measurements
from lts.store import reads
from lts.store.db import Store

POINT_COLUMNS = ["source", "device_name", "device_id", "run_id", "arch_id", "family", "decoder_params",
                 "total_params", "latency_ms", "peak_memory_mb", "feasible", "n_layer", "d_model"]


RUN_COLUMNS = ["run_id", "family", "strategy", "device_name", "device_id", "status", "n_evaluated", "budget",
               "frontier_size", "hypervolume", "elapsed", "message", "created_at", "updated_at", "objectives_json",
               "constraints_json", "space"]
_RUN_INTS = ("n_evaluated", "budget", "frontier_size")


def run_list(store: Store) -> list[dict[str, Any]]:
    """Every run as a plain row (newest first) with its effective status ('stopped' for a dead process)."""
    from lts.search.session import effective_status

    rows = store.runs()
    for r in rows:
        r["status"] = effective_status(r)
    return rows


def active_runs(store: Store) -> list[dict[str, Any]]:
    """Runs that are created, running or cancelling now, as plain rows (what the live panel shows)."""
    from lts.search.session import ACTIVE

    return [r for r in run_list(store) if r["status"] in ACTIVE]


def runs_table(store: Store) -> pd.DataFrame:
    """:func:`run_list` as a frame for tables and pickers; go back to rows with ``lts.store.rows.records``."""
    rows = run_list(store)
    df = pd.DataFrame(rows, columns=None if rows else RUN_COLUMNS)
    for col in _RUN_INTS:  # a NULL budget must not turn the counts into floats
        df[col] = df[col].astype("Int64")
    return df


def devices_table(store: Store) -> pd.DataFrame:
    rows = store.devices()
    out = []
    for d in rows:
        rec = json.loads(d["record_json"])
        out.append({"device_id": d["device_id"], "name": d["name"], "kind": d["kind"],
                    "cpu_model": rec.get("cpu_model"), "cores": rec.get("cores"), "ram_gb": rec.get("ram_gb"),
                    "gpu": rec.get("gpu"), "threads": rec.get("threads"), "torch_version": rec.get("torch_version")})
    return pd.DataFrame(out, columns=["device_id", "name", "kind", "cpu_model", "cores", "ram_gb", "gpu",
                                      "threads", "torch_version"])


def reference_points(set_names: Iterable[str] | None = None) -> pd.DataFrame:
    """LTS's published Pareto models as points, device names like 'LTS paper: Core i7'."""
    from lts.reference import load_reference

    wanted = set(set_names) if set_names is not None else None
    rows = []
    for r in load_reference():
        if r.kind != "pareto" or (wanted is not None and r.set_name not in wanted):
            continue
        rows.append({"source": f"paper {r.set_name}", "device_name": r.device_name, "device_id": None,
                     "run_id": None, "arch_id": r.config.arch_id, "family": r.family,
                     "decoder_params": r.proxies["decoder_params"], "total_params": r.proxies["total_params"],
                     "latency_ms": r.latency_ms, "peak_memory_mb": r.memory_mb, "feasible": 1,
                     "n_layer": r.config.n_layer, "d_model": r.config.d_model, "on_frontier": 1})
    return pd.DataFrame(rows, columns=POINT_COLUMNS + ["on_frontier"])


def reference_sets() -> list[str]:
    from lts.reference import load_reference

    return sorted({r.set_name for r in load_reference() if r.kind == "pareto"})


def apply_constraints(df: pd.DataFrame, max_latency_ms: float | None = None, max_memory_mb: float | None = None,
                      min_params: int | None = None) -> pd.DataFrame:
    keep = df["feasible"].astype(bool)
    if max_latency_ms is not None:
        keep &= df["latency_ms"].notna() & (df["latency_ms"] <= max_latency_ms)
    if max_memory_mb is not None:
        keep &= df["peak_memory_mb"].notna() & (df["peak_memory_mb"] <= max_memory_mb)
    if min_params is not None:
        keep &= df["decoder_params"] >= min_params
    return df[keep]


def quality_axes(df: pd.DataFrame) -> list[str]:
    """What a front can maximise: decoder parameters, and every proxy objective ``df``'s runs scored."""
    scored = set(proxy_objectives(objective_names())) - {"decoder_params"}  # a column of every point already
    return ["decoder_params"] + [c for c in df.columns if c in scored and df[c].notna().any()]


def front_2d(df: pd.DataFrame, cost: str, group: str = "source", quality: str = "decoder_params") -> pd.DataFrame:
    """Per group, the 2-D Pareto front of (maximise ``quality``, minimise ``cost``), sorted by cost.
    ``quality``: decoder_params, or the column of a proxy objective (see :func:`quality_axes`).

    The rows come back with ``front_2d`` set, ready to draw as a staircase line.
    """
    sign = -1.0 if quality == "decoder_params" else float(objective(quality).sign)
    parts = []
    for _, g in df.dropna(subset=[cost, quality]).groupby(group, sort=False):
        g = g[g["feasible"].astype(bool)]
        if g.empty:
            continue
        F = np.column_stack([sign * g[quality].to_numpy(float), g[cost].to_numpy(float)])
        parts.append(g[pareto_mask(F)].sort_values(cost))
    if not parts:
        return df.iloc[0:0]
    return pd.concat(parts)


def architecture_detail(store: Store, arch_id: str) -> dict[str, Any]:
    a = reads.architecture(store, arch_id)
    if a is None:
        raise LtsError(f"no architecture {arch_id!r} in {store.path}")
    cfg = config_from_json(a["config_json"])
    layers = layer_table(cfg)  # darts configs: one operation per feature split (see lts.decide.layers)
    measurements = pd.DataFrame(
        store_measurements.of_architecture(store, arch_id),
        columns=["device", "protocol", "latency_ms", "latency_cv", "repeats", "peak_memory_mb", "infeasible", "measured_at"])
    runs = pd.DataFrame(reads.memberships(store, arch_id),
                        columns=["run_id", "eval_index", "generation", "feasible", "on_frontier"])
    return {"row": a, "config": cfg, "layers": layers, "breakdown": breakdown(cfg),
            "measurements": measurements, "runs": runs, "validation": validation_of(store, arch_id)}


def config_summary(cfg: Config) -> str:
    """The fields a per-layer table does not show, as one line."""
    if cfg.family == "darts":
        return (f"family darts · {cfg.n_split} splits of {cfg.split_width} · vocab {cfg.vocab_size:,} · "
                f"tgt_len {cfg.tgt_len} · ffn_mult {cfg.ffn_mult} · conv_heads {cfg.conv_heads}")
    text = (f"family {cfg.family} · d_embed {cfg.d_embed} · div_val {cfg.div_val} · vocab {cfg.vocab_size:,} · "
            f"cutoffs {list(cfg.cutoffs)} · tgt_len {cfg.tgt_len}")
    return text + (f" · mem_len {cfg.mem_len}" if cfg.family == "transxl" else "")


def validation_of(store: Store, arch_id: str) -> pd.DataFrame:
    """Validation perplexities of an architecture, when the validation tables exist."""
    return pd.DataFrame(reads.validation_ppls(store, arch_id), columns=["validation_id", "valid_ppl"])


def architecture_json(store: Store, arch_id: str) -> bytes:
    """One architecture's config, in the format ``lts proxy`` and ``lts measure`` read."""
    return (architecture_detail(store, arch_id)["config"].canonical_json() + "\n").encode()


