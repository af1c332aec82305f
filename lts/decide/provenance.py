"""Measurement provenance: where every latency comes from and how far to trust it.

Each measurement row already carries its timed repeats, CV (standard deviation / mean of the
timed forwards), protocol key and device; this module joins the device record (the fingerprint:
CPU model, cores, RAM, GPU, torch version, threads), decodes the protocol key (backend, kind,
batch, sequence length, threads, clock), derives a standard deviation for error bars, counts
earlier measurements kept by re-measuring, and flags high-variance points.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lts.errors import LtsError
from lts.store import measurements
from lts.store.db import Store

_KEY = re.compile(r"^(?P<backend>[a-z0-9_]+)-(?P<kind>cpu|cuda)-b(?P<batch>\d+)"
                  r"-(?:s(?P<seq>default|\d+)|g(?P<prompt>\d+)\+(?P<new>\d+))"
                  r"-t(?P<threads>\d+)(?:-(?P<clock>wall|cpu))?(?:-(?P<quant>int8))?$")
FINGERPRINT = ["cpu_model", "cores", "ram_gb", "gpu", "torch_version"]
PROVENANCE_COLUMNS = ["arch_id", "device_name", "device_id", "protocol", "backend", "kind", "batch", "seq_len",
                      "threads", "clock", "latency_ms", "latency_sd_ms", "latency_cv", "repeats", "peak_memory_mb",
                      "infeasible", "seconds", "measured_at", "n_previous", "high_variance", "why",
                      "decoder_params", *FINGERPRINT]


@dataclass(frozen=True)
class VarianceRule:
    """When a latency is too uncertain to rank on: CV above ``max_cv`` or fewer than ``min_repeats`` forwards."""

    max_cv: float = 0.05
    min_repeats: int = 3


def parse_protocol_key(key: str) -> dict[str, Any] | None:
    """``torch-cpu-b1-sdefault-t1`` -> backend, kind, batch, seq_len (None = config's), threads, clock;
    a generate key (``torch-cpu-b1-g64+32-t1``) gives workload, prompt_len and new_tokens instead of seq_len."""
    m = _KEY.match(key or "")
    if not m:
        return None
    threads = int(m["threads"])
    clock = m["clock"] or ("cpu" if m["kind"] == "cpu" and threads == 1 else "wall")
    out: dict[str, Any] = {"backend": m["backend"], "kind": m["kind"], "batch": int(m["batch"]),
                           "threads": threads, "clock": clock, "quant": m["quant"] or "none"}
    if m["prompt"] is not None:
        return {**out, "workload": "generate", "prompt_len": int(m["prompt"]), "new_tokens": int(m["new"])}
    return {**out, "seq_len": None if m["seq"] == "default" else int(m["seq"])}


def protocol_from_key(key: str) -> Any:
    """The :class:`lts.cost.Protocol` a key names (its stopping rule is the default one)."""
    from lts.cost.protocol import Protocol

    parts = parse_protocol_key(key)
    if parts is None:
        raise LtsError(f"protocol key {key!r} is not of the form BACKEND-KIND-bBATCH-sSEQ-tTHREADS[-CLOCK] "
                       "(or -gPROMPT+NEW- for generating)")
    return Protocol(**parts)


def flag_variance(df: pd.DataFrame, rule: VarianceRule = VarianceRule()) -> tuple[np.ndarray, list[str]]:
    """(high-variance mask, one reason per row -- empty when fine)."""
    cv = df["latency_cv"].to_numpy(float)
    reps = df["repeats"].fillna(0).to_numpy(float)
    measured = df["latency_ms"].notna().to_numpy()
    noisy = measured & (np.nan_to_num(cv) > rule.max_cv)
    few = measured & (reps < rule.min_repeats)
    why = [("CV %.1f%% > %.0f%%" % (100 * c, 100 * rule.max_cv) if n else "")
           + ("; " if n and f else "") + (f"{int(r)} repeats < {rule.min_repeats}" if f else "")
           for c, r, n, f in zip(cv, reps, noisy, few)]
    return noisy | few, why


def provenance(store: Store, device_ids: Sequence[str] | None = None, arch_ids: Sequence[str] | None = None,
               rule: VarianceRule = VarianceRule()) -> pd.DataFrame:
    """Every measurement of the given devices/architectures (all when None) with its provenance."""
    df = measurements.provenance_frame(store, device_ids, arch_ids)
    records = {rid: json.loads(rid) for rid in df["record_json"].unique()}
    for field in FINGERPRINT:
        df[field] = [records[r].get(field) for r in df["record_json"]]
    keys = {k: parse_protocol_key(k) or {} for k in df["protocol"].unique()}
    for field in ("backend", "kind", "batch", "seq_len", "threads", "clock"):
        df[field] = [keys[k].get(field) for k in df["protocol"]]
    df["latency_sd_ms"] = df["latency_ms"] * df["latency_cv"]
    df["high_variance"], df["why"] = flag_variance(df, rule)
    return df.reindex(columns=PROVENANCE_COLUMNS)


def history(store: Store, arch_ids: Sequence[str], device_id: str | None = None) -> pd.DataFrame:
    """Current and earlier measurements of ``arch_ids``, newest first per (architecture, device, protocol)."""
    if not arch_ids:
        return pd.DataFrame(columns=["arch_id", "device_name", "protocol", "state", "latency_ms", "latency_cv",
                                     "repeats", "peak_memory_mb", "infeasible", "measured_at"])
    return measurements.history_frame(store, arch_ids, device_id)
