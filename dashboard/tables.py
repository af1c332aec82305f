"""Every table on the dashboard goes through :func:`data_table`, so one figure reads the same on every page:
parameters as 31.5M, latencies in ms, memory in MB, CVs as percentages, Unix epochs as local date-times,
headers in words. A page passes its frame as it is; the format follows from the column's name.

Streamlit's column configs carry the formats (they take precedence over a Styler's), so a page may still
shade rows with a Styler."""

from __future__ import annotations

import re
from datetime import datetime

import pandas as pd
import streamlit as st

# Column names as the library writes them -> (header, NumberColumn format). Names not listed here fall
# to the suffix rules in _number_format.
# Parameter counts are shown in millions (31541250 -> 31.5 M): Streamlit's "compact" rounds to two
# digits (32M), too coarse to tell architectures apart. The exact count is in the downloads.
PARAMS = "%.3g M"
MS = "%.2f ms"
MB = "%.1f MB"
SECONDS = "%.2f s"
CORRELATION = "%.3f"
NAMED: dict[str, tuple[str, str | None]] = {
    "arch_id": ("architecture", None),
    "decoder_params": ("decoder params", PARAMS),
    "total_params": ("total params", PARAMS),
    "params": ("params", PARAMS),
    "parameters": ("parameters", PARAMS),
    "embedding_params": ("embedding params", PARAMS),
    "flops": ("FLOPs", PARAMS),
    "latency_ms": ("latency", MS),
    "latency_sd_ms": ("latency SD", MS),
    "latency_cv": ("latency CV", "percent"),
    "peak_memory_mb": ("peak memory", MB),
    "weights_mb": ("weights", MB),
    "prefill_ms": ("prefill", MS),
    "decode_ms_per_token": ("decode / token", MS),
    "decode_p90_ms": ("decode p90", MS),
    "tokens_per_s": ("tokens / s", "%.1f"),
    "hypervolume": ("hypervolume", "%.4f"),
    "spearman": ("Spearman", CORRELATION),
    "kendall": ("Kendall", CORRELATION),
    "spearman_lo": ("Spearman low", CORRELATION),
    "spearman_hi": ("Spearman high", CORRELATION),
    "kendall_lo": ("Kendall low", CORRELATION),
    "kendall_hi": ("Kendall high", CORRELATION),
    "top10_overlap": ("top-10% overlap", "percent"),
    "seconds_per_arch": ("time / arch", "%.2g s"),
    "perplexity": ("perplexity", "%.1f"),
    "valid_ppl": ("validation perplexity", "%.1f"),
    "test_ppl": ("test perplexity", "%.1f"),
    "ram_gb": ("RAM", "%.0f GB"),
    "device_name": ("device", None),
    "n_evaluated": ("evaluated", "localized"),
    "frontier_size": ("front size", "localized"),
    "front_size": ("front size", "localized"),
    "n_done": ("done", "localized"),
    "n_archs": ("architectures", "localized"),
    "n_previous": ("earlier measurements", "localized"),
    "elapsed_s": ("elapsed", SECONDS),
    "elapsed": ("duration", "compact"),
    "wall_seconds": ("training time", SECONDS),
    "tokens_per_second": ("tokens / s", "%.0f"),
    "train_loss": ("training loss", "%.3f"),
    "on_front_2d": ("on 2-D front", None),
    "on_front_nd": ("on N-D front", None),
    "eval_index": ("evaluation #", "%d"),
    "cpu_model": ("CPU", None),
    "gpu": ("GPU", None),
    "seconds": ("measuring time", SECONDS),
}
# Unix-epoch columns the store writes; shown as local date-times.
EPOCHS = {"created_at", "measured_at", "started_at", "finished_at", "updated_at", "imported_at", "predicted_at",
          "replaced_at", "exported_at", "saved_at", "computed_at", "asked_at", "at"}
# Seconds that read better as a clock (00:12:34) than as a number.
DURATIONS = {"elapsed", "duration_s"}
# 0/1 integers the store keeps for flags; shown as check boxes.
FLAGS = {"feasible", "on_frontier", "on_front", "on_front_2d", "on_front_nd", "high_variance", "differs"}
# The config's own names, as in the downloaded JSON and the CLI: kept as they are.
HYPERPARAMETERS = {"n_layer", "d_model", "n_head", "d_head", "d_inner", "d_embed", "div_val", "tgt_len", "mem_len",
                   "vocab_size", "n_token"}
DATETIME_FORMAT = "YYYY-MM-DD HH:mm:ss"
MISSING = "—"


def _header(name: str) -> str:
    """``latency_ratio`` -> ``latency ratio``; a unit suffix the format already shows is dropped; a
    per-device column ``latency_ms · vm-b4`` keeps its device."""
    if " · " in name:
        base, rest = name.split(" · ", 1)
        return f"{_header(base)} · {rest}"
    if name in NAMED:
        return NAMED[name][0]
    if name in HYPERPARAMETERS:
        return name
    words = re.sub(r"_(ms|mb|s)$", "", name) if name not in EPOCHS else re.sub(r"_at$", "", name)
    return words.replace("_", " ")


def _number_format(name: str, series: pd.Series) -> str | None:
    name = name.split(" · ", 1)[0]
    if name in NAMED:
        return NAMED[name][1]
    if name.endswith("_ms"):
        return MS
    if name.endswith("_mb"):
        return MB
    if name.endswith("_s"):
        return SECONDS
    if name.endswith("_cv"):
        return "percent"
    if name.endswith("_ratio") or name == "ratio":
        return "%.2fx"
    if name.endswith("_params"):
        return PARAMS
    if pd.api.types.is_integer_dtype(series):
        return "localized"  # counts with thousands separators
    if pd.api.types.is_float_dtype(series):
        return "%.3f"  # never 912.468468
    return None


def _local_times(series: pd.Series) -> pd.Series:
    """Unix seconds -> this host's local date-times (the team's clock; the store keeps UTC epochs)."""
    tz = datetime.now().astimezone().tzinfo
    return pd.to_datetime(pd.to_numeric(series, errors="coerce"), unit="s", utc=True).dt.tz_convert(tz)


def prepare(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The frame as it is shown (epochs as date-times, flags as booleans, missing text as a dash) and its
    column configs. Public so tests can check every page's formats without a browser."""
    frame = frame.copy()
    config: dict = {}
    for name in frame.columns:
        col = frame[name]
        key = str(name)
        if key in EPOCHS and (pd.api.types.is_numeric_dtype(col) or col.isna().all()):
            frame[name] = _local_times(col)
            config[name] = st.column_config.DatetimeColumn(_header(key), format=DATETIME_FORMAT)
        elif key in DURATIONS and pd.api.types.is_numeric_dtype(col):
            frame[name] = pd.to_timedelta(col, unit="s")
            config[name] = st.column_config.NumberColumn(_header(key), format="compact")
        elif key in FLAGS and (pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col)):
            frame[name] = col.fillna(0).astype(bool)
            config[name] = st.column_config.CheckboxColumn(_header(key))
        elif pd.api.types.is_bool_dtype(col):
            config[name] = st.column_config.CheckboxColumn(_header(key))
        elif pd.api.types.is_numeric_dtype(col):
            if _number_format(key, col) == PARAMS:
                frame[name] = col / 1e6
            config[name] = st.column_config.NumberColumn(_header(key), format=_number_format(key, col))
        else:
            if col.dtype == object or pd.api.types.is_string_dtype(col):
                frame[name] = col.map(lambda v: MISSING if v is None or (isinstance(v, float) and v != v) else
                                      (v if isinstance(v, str) else str(v)))
            config[name] = st.column_config.Column(_header(key))
    return frame, config


def data_table(data, container=None, *, styled=None, column_config: dict | None = None, **kwargs):
    """``st.dataframe`` with the shared formats. ``styled`` maps the prepared frame to a Styler (row
    shading); ``column_config`` overrides a column's config; other arguments go to ``st.dataframe``."""
    frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
    shown, config = prepare(frame)
    config.update(column_config or {})
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    target = container if container is not None else st
    return target.dataframe(styled(shown) if styled else shown, column_config=config, **kwargs)


def highlighted(ids: set[str]):
    """A ``styled`` for :func:`data_table` that shades the rows of linked architectures."""
    def style(df: pd.DataFrame):
        if not ids or "arch_id" not in df or not df["arch_id"].isin(ids).any():
            return df
        df = df.reset_index(drop=True)
        marked = df["arch_id"].isin(ids).to_numpy()
        return df.style.apply(lambda row: ["background-color: #fff3c4" if marked[row.name] else "" for _ in row],
                              axis=1)
    return style
