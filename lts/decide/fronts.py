"""Fronts under constraints: which architectures are worth shipping when a device sets limits.

The objectives are LTS's: decoder parameters (maximised; they rank perplexity almost like
training), latency and peak memory (minimised). Pareto membership comes from pymoo
(:mod:`lts.pareto`); this module decides *which* points enter it:

* ``front_mask_2d``: the front drawn on a 2-D chart (decoder params against one cost);
* ``front_mask_nd``: the front over every objective. A member of it can look dominated on a 2-D
  chart, because it wins on the cost that is not drawn -- which is why the views mark both.

:func:`pick` applies limits (max latency, max memory, min decoder params) and returns the
feasible 2-D front, the N-objective members, the *knee* and the *best-proxy* point, each with a
one-line reason. Fronts are recomputed on every call: pymoo takes ~10 ms for a 2-D front and
~50 ms for a 3-objective one over 50,000 points here, less than caching them would save.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lts.errors import LtsError
from lts.objectives import OBJECTIVES
from lts.pareto import pareto_mask

COSTS = {"latency_ms": "latency", "peak_memory_mb": "memory"}
UNITS = {"latency_ms": "ms", "peak_memory_mb": "MB"}
DEFAULT_OBJECTIVES = ("proxy", "latency", "memory")


@dataclass(frozen=True)
class Limits:
    """What a device allows; ``None`` means no limit."""

    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    min_params: int | None = None

    def describe(self) -> str:
        parts = []
        if self.max_latency_ms is not None:
            parts.append(f"latency <= {self.max_latency_ms:g} ms")
        if self.max_memory_mb is not None:
            parts.append(f"memory <= {self.max_memory_mb:g} MB")
        if self.min_params is not None:
            parts.append(f"decoder params >= {self.min_params:,}")
        return ", ".join(parts) or "no limits"


def objective_array(df: pd.DataFrame, objectives: Sequence[str]) -> np.ndarray:
    """Rows x objectives in minimisation form (maximised objectives negated)."""
    cols = []
    for name in objectives:
        if name not in OBJECTIVES:
            raise LtsError(f"unknown objective {name!r}; choose from {', '.join(OBJECTIVES)}")
        col, sign = OBJECTIVES[name]
        cols.append(sign * df[col].to_numpy(float))
    return np.column_stack(cols) if cols else np.empty((len(df), 0))


def within(df: pd.DataFrame, limits: Limits) -> np.ndarray:
    """Feasible rows (measured without failure) that meet every limit."""
    keep = df["feasible"].fillna(0).astype(bool).to_numpy(copy=True)
    if limits.max_latency_ms is not None:
        keep &= (df["latency_ms"] <= limits.max_latency_ms).to_numpy()
    if limits.max_memory_mb is not None:
        keep &= (df["peak_memory_mb"] <= limits.max_memory_mb).to_numpy()
    if limits.min_params is not None:
        keep &= (df["decoder_params"] >= limits.min_params).to_numpy()
    return keep


def _front_of(df: pd.DataFrame, objectives: Sequence[str]) -> np.ndarray:
    F = objective_array(df, objectives)
    ok = np.isfinite(F).all(axis=1) & df["feasible"].fillna(0).astype(bool).to_numpy()
    mask = np.zeros(len(df), dtype=bool)
    mask[np.flatnonzero(ok)] = pareto_mask(F[ok])
    return mask


def front_mask_2d(df: pd.DataFrame, cost: str) -> np.ndarray:
    """Feasible rows that no other feasible row beats on both decoder params and ``cost``."""
    return _front_of(df, ("proxy", COSTS[cost]))


def front_mask_nd(df: pd.DataFrame, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> np.ndarray:
    """Feasible rows on the front over every objective (what a search keeps)."""
    return _front_of(df, objectives)


def knee_position(front: pd.DataFrame, cost: str) -> int | None:
    """Index (0-based, in cost order) of the front's knee, or None for fewer than 3 points.

    The knee is the point farthest above the straight line joining the front's two ends, with
    both axes on a log scale normalised to [0, 1] (the charts' view): where decoder parameters stop
    growing faster than the cost. On log axes the choice does not depend on the units.
    """
    if len(front) < 3:
        return None
    x = np.log(front[cost].to_numpy(float))
    y = np.log(front["decoder_params"].to_numpy(float))
    span_x, span_y = np.ptp(x), np.ptp(y)
    if span_x == 0 or span_y == 0:
        return None
    x, y = (x - x.min()) / span_x, (y - y.min()) / span_y
    # height above the chord from the cheapest to the largest point (both ends have 0)
    chord = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0]) if x[-1] != x[0] else np.full_like(y, y[0])
    gap = y - chord
    best = int(np.argmax(gap))
    return best if gap[best] > 0 else None


@dataclass
class Pick:
    """The result of picking under limits on one device."""

    limits: Limits
    cost: str
    n_total: int
    n_within: int
    front: pd.DataFrame  # feasible 2-D front, cost ascending; columns on_front_2d / on_front_nd
    nd_members: pd.DataFrame  # every N-objective front member within the limits
    knee: dict[str, Any] | None
    best: dict[str, Any] | None
    reasons: dict[str, str] = field(default_factory=dict)
    within_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def _fmt(row: dict[str, Any], cost: str) -> str:
    n = row["decoder_params"]
    count = f"{n / 1e6:.2f} M" if n >= 1e6 else f"{int(n):,}"
    return f"{count} decoder params at {row[cost]:.3g} {UNITS[cost]}"


def _elasticity(a: dict[str, Any], b: dict[str, Any], cost: str) -> float:
    """Relative growth of decoder params per relative growth of cost between two front points."""
    dc = math.log(b[cost] / a[cost]) if a[cost] > 0 and b[cost] > 0 else 0.0
    return math.log(b["decoder_params"] / a["decoder_params"]) / dc if dc else float("inf")


def pick(df: pd.DataFrame, cost: str, limits: Limits, objectives: Sequence[str] = DEFAULT_OBJECTIVES) -> Pick:
    """The feasible front under ``limits``, its knee and its best-proxy point, with reasons."""
    if cost not in COSTS:
        raise LtsError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    inside_mask = within(df, limits)
    inside = df[inside_mask]
    on2 = front_mask_2d(inside, cost)
    objectives = [o for o in objectives if o == "proxy" or OBJECTIVES[o][0] in df.columns]
    ond = front_mask_nd(inside, objectives)
    flagged = inside.assign(on_front_2d=on2, on_front_nd=ond)
    front = flagged[on2].sort_values([cost, "decoder_params"], ascending=[True, False])
    nd_members = flagged[ond]
    reasons: dict[str, str] = {}
    knee = best = None
    if len(front):
        best = front.sort_values(["decoder_params", cost], ascending=[False, True]).iloc[0].to_dict()
        budget = {"latency_ms": limits.max_latency_ms, "peak_memory_mb": limits.max_memory_mb}[cost]
        use = f"; it uses {100 * best[cost] / budget:.0f}% of the {COSTS[cost]} limit" if budget else ""
        reasons["best"] = (f"Best proxy: {_fmt(best, cost)} and {best['peak_memory_mb']:.3g} MB -- the most "
                           f"decoder parameters (LTS's perplexity surrogate) that meets {limits.describe()}{use}.")
        k = knee_position(front, cost)
        if k is None:
            reasons["knee"] = "No knee: the front has fewer than 3 points or no bend."
        else:
            rows = front.to_dict("records")
            knee = rows[k]
            before = _elasticity(rows[0], knee, cost)
            after = _elasticity(knee, rows[-1], cost)
            reasons["knee"] = (f"Knee: {_fmt(knee, cost)}. Up to it, 1% more {COSTS[cost]} buys {before:.2f}% more "
                               f"decoder params; beyond it only {after:.2f}% -- the point past which a larger model "
                               "costs disproportionately more.")
    else:
        reasons["best"] = f"Nothing meets {limits.describe()}."
    return Pick(limits, cost, len(df), int(inside_mask.sum()), front, nd_members, knee, best, reasons, inside_mask)
