"""Does the device change the answer? Architectures optimal on one device and dominated on another.

For points measured on several devices (one row per architecture and device, see
:func:`lts.decide.points.device_points`), each device's front is computed over *all* of that
device's feasible measurements; an architecture measured on two devices that is on the front of
one and not of the other is a *rank shift*. Per pair of devices the summary gives the shared
architectures, the median latency and memory ratios, and the Spearman correlation of their latency
(and memory) ranks: close to 1, the device rescales costs; lower, it reorders architectures.
"""

from __future__ import annotations

from itertools import permutations
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lts.decide.fronts import DEFAULT_OBJECTIVES, front_mask_nd

SHIFT_COLUMNS = ["arch_id", "decoder_params", "optimal_on", "dominated_on", "latency_optimal_ms",
                 "latency_dominated_ms", "latency_ratio", "memory_optimal_mb", "memory_dominated_mb", "memory_ratio",
                 "latency_rank_optimal", "latency_rank_dominated"]
PAIR_COLUMNS = ["device_a", "device_b", "shared", "median_latency_ratio", "median_memory_ratio",
                "spearman_latency", "spearman_memory", "optimal_a_dominated_b", "optimal_b_dominated_a"]


def with_fronts(points: pd.DataFrame, objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                group: str = "device_name") -> pd.DataFrame:
    """``points`` plus ``on_front``: membership of its group's front over ``objectives``."""
    out = points.copy()
    out["on_front"] = False
    for _, idx in out.groupby(group, sort=False).groups.items():
        sub = out.loc[idx]
        out.loc[idx, "on_front"] = front_mask_nd(sub, objectives)
    return out


def _spearman(a: pd.Series, b: pd.Series) -> float:
    if len(a) < 3 or a.nunique() < 2 or b.nunique() < 2:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)


def _pair(flagged: pd.DataFrame, a: str, b: str, group: str) -> pd.DataFrame:
    """Architectures feasible on both devices, side by side (suffixes _a, _b)."""
    cols = ["arch_id", "decoder_params", "latency_ms", "peak_memory_mb", "on_front"]
    left = flagged[(flagged[group] == a) & flagged["feasible"].astype(bool)][cols]
    right = flagged[(flagged[group] == b) & flagged["feasible"].astype(bool)][cols].drop(columns="decoder_params")
    return left.merge(right, on="arch_id", suffixes=("_a", "_b"))


def rank_shift(points: pd.DataFrame, objectives: Sequence[str] = DEFAULT_OBJECTIVES,
               group: str = "device_name") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(shift table, pair summary) over every ordered pair of devices in ``points``.

    The shift table has one row per (architecture, device where it is optimal, device where it is
    dominated); ratios are dominated-device / optimal-device, ranks are latency ranks (1 = fastest)
    among the architectures the two devices share.
    """
    flagged = with_fronts(points, objectives, group)
    devices = list(dict.fromkeys(flagged[group]))
    shifts, pairs = [], []
    for a, b in permutations(devices, 2):
        both = _pair(flagged, a, b, group)
        rank_a = both["latency_ms_a"].rank(method="min")
        rank_b = both["latency_ms_b"].rank(method="min")
        hit = both["on_front_a"] & ~both["on_front_b"]
        s = both[hit]
        if hit.any():
            shifts.append(pd.DataFrame({
                "arch_id": s["arch_id"], "decoder_params": s["decoder_params"], "optimal_on": a, "dominated_on": b,
                "latency_optimal_ms": s["latency_ms_a"], "latency_dominated_ms": s["latency_ms_b"],
                "latency_ratio": s["latency_ms_b"] / s["latency_ms_a"],
                "memory_optimal_mb": s["peak_memory_mb_a"], "memory_dominated_mb": s["peak_memory_mb_b"],
                "memory_ratio": s["peak_memory_mb_b"] / s["peak_memory_mb_a"],
                "latency_rank_optimal": rank_a[hit].astype(int), "latency_rank_dominated": rank_b[hit].astype(int),
            }))
        if devices.index(a) < devices.index(b):
            pairs.append({
                "device_a": a, "device_b": b, "shared": len(both),
                "median_latency_ratio": float(np.median(both["latency_ms_b"] / both["latency_ms_a"])) if len(both) else np.nan,
                "median_memory_ratio": float(np.median(both["peak_memory_mb_b"] / both["peak_memory_mb_a"])) if len(both) else np.nan,
                "spearman_latency": _spearman(both["latency_ms_a"], both["latency_ms_b"]),
                "spearman_memory": _spearman(both["peak_memory_mb_a"], both["peak_memory_mb_b"]),
                "optimal_a_dominated_b": int(hit.sum()),
                "optimal_b_dominated_a": int((both["on_front_b"] & ~both["on_front_a"]).sum()),
            })
    table = pd.concat(shifts, ignore_index=True) if shifts else pd.DataFrame(columns=SHIFT_COLUMNS)
    table = table.reindex(columns=SHIFT_COLUMNS).sort_values(["optimal_on", "decoder_params"], ascending=[True, False])
    return table.reset_index(drop=True), pd.DataFrame(pairs, columns=PAIR_COLUMNS)
