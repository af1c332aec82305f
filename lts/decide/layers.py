"""Architectures as layer x setting matrices, and what differs between two or three of them.

Heterogeneous architectures have one ``n_head`` and ``d_inner`` per layer (``darts``: one
operation per feature split); a flat table of ``n_head_0 .. n_head_15, d_inner_0 ..`` columns hides
the structure. Here a config becomes a matrix (rows = layers, columns = settings), and a diff
lines several up layer by layer, marking every cell that is not the same in all of them (a layer
that only some have counts as different).
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from lts.space.config import Config

GLOBAL_FIELDS = ("family", "n_layer", "d_model", "d_embed", "div_val", "vocab_size", "cutoffs", "tgt_len", "mem_len",
                 "n_split", "ffn_mult", "conv_heads")


def layer_table(cfg: Config) -> pd.DataFrame:
    """One row per layer: n_head, d_head, d_inner (``darts``: the operation of every split)."""
    if cfg.family == "darts":  # one operation per feature split instead of heads and FFN widths
        return pd.DataFrame({"layer": range(cfg.n_layer),
                             **{f"split {k} ({cfg.split_width})": [ops[k] for ops in cfg.ops]
                                for k in range(cfg.n_split)}})
    return pd.DataFrame({
        "layer": range(cfg.n_layer),
        "n_head": cfg.n_head,
        "d_head": [cfg.d_model // h if cfg.family == "gpt2" or cfg.d_head == -1 else cfg.d_head for h in cfg.n_head],
        "d_inner": cfg.d_inner,
    })


def global_settings(cfg: Config) -> dict[str, Any]:
    """Settings shared by every layer (those the config has)."""
    out = {}
    for name in GLOBAL_FIELDS:
        value = cfg.family if name == "family" else getattr(cfg, name, None)
        if value is not None:
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def layer_diff(cfgs: Sequence[Config], names: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(side-by-side layer table, same-shaped boolean frame: True where the cell differs).

    Columns are (setting, architecture) pairs so that the same setting of every architecture sits
    together; rows are layers up to the deepest architecture (a missing layer is empty).
    """
    names = list(names or [c.arch_id for c in cfgs])
    tables = {n: layer_table(c).set_index("layer") for n, c in zip(names, cfgs)}
    depth = max(len(t) for t in tables.values())
    settings = list(dict.fromkeys(col for t in tables.values() for col in t.columns))
    data, differs = {}, {}
    for setting in settings:
        cols = {n: (t[setting] if setting in t else pd.Series(dtype=object)).reindex(range(depth)) for n, t in tables.items()}
        frame = pd.DataFrame(cols).astype(object)
        same = frame.apply(lambda row: row.notna().all() and row.nunique(dropna=False) == 1, axis=1)
        for n in names:
            data[(setting, n)] = frame[n]
            differs[(setting, n)] = ~same
    index = pd.RangeIndex(depth, name="layer")
    values = pd.DataFrame(data, index=index)
    values.columns = pd.MultiIndex.from_tuples(values.columns, names=["setting", "arch"])
    mask = pd.DataFrame(differs, index=index)
    mask.columns = values.columns
    return values, mask


def settings_diff(cfgs: Sequence[Config], names: Sequence[str] | None = None) -> pd.DataFrame:
    """Global settings side by side (one column per architecture) with a ``differs`` column."""
    names = list(names or [c.arch_id for c in cfgs])
    table = pd.DataFrame({n: pd.Series(global_settings(c), dtype=object) for n, c in zip(names, cfgs)})
    table["differs"] = table.apply(lambda row: len({str(v) for v in row}) > 1, axis=1)
    return table
