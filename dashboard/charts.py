"""Plotly figures shared by the pages: point clouds with their 2-D Pareto fronts drawn as staircases.

What reaches the browser is bounded whatever the database holds: fronts, selected and marked points
go exactly; the rest of each cloud is a seeded sample of ``BACKGROUND`` points per chart, shared
between its sources. A trace of more than ``GL_ABOVE`` points is drawn with WebGL (``Scattergl``),
smaller ones with SVG: measured in headless Chromium here (software rendering, no GPU), starting a
WebGL context costs ~0.2-0.4 s per page, more than SVG needs for a couple of thousand points
(a page with 1,500 background points: 0.89 s SVG, 1.10 s WebGL; 5,000 WebGL: 1.20 s; fronts only 0.68 s).
"""

from __future__ import annotations

import hashlib
from typing import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from lts.decide.fronts import UNITS, Limits, Pick
from lts.decide.points import bounded_sample
from lts.explore import front_2d

AXIS = {"latency_ms": "latency (ms)", "peak_memory_mb": "peak memory (MB)", "decoder_params": "decoder parameters"}
COLOURS = qualitative.Plotly + qualitative.Dark24
BACKGROUND = 1000  # sampled background points per chart, shared between its sources
GL_ABOVE = 2500  # traces with more points than this use WebGL
SELECTED = {"size": 17, "symbol": "circle-open", "color": "black", "line": {"width": 2.5}}


def _home(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big") % len(COLOURS)


def colours(names: Iterable[str]) -> dict[str, str]:
    """One colour per source name, the same on every page: each name's own slot of the palette (a hash
    of the name, not its position in this chart). Two names of one chart that hash to the same slot:
    the one first in sorted order keeps it, the other takes the next free slot."""
    taken: set[int] = set()
    out: dict[str, str] = {}
    for n in sorted(set(map(str, names))):
        i = _home(n)
        while i in taken and len(taken) < len(COLOURS):
            i = (i + 1) % len(COLOURS)
        taken.add(i)
        out[n] = COLOURS[i]
    return out


def _hover(name: str, cost: str, y: str = "decoder_params") -> str:
    shown = "%{y:,} params" if y == "decoder_params" else "%{y:.4g} " + y
    return ("%{customdata[0]}<br>" + shown + "<br>%{x:,.2f} " + UNITS.get(cost, "") + "<extra>" + str(name) + "</extra>")


SELECTING = ("Click a point to select it, or pick many with the toolbar's box or lasso select; drag zooms and a "
             "double-click resets. The selection is highlighted on every deciding page.")


def log_axis(counts: bool = False) -> dict:
    """A log axis labelled in full at 1, 2 and 5 of every decade (plotly's default writes only the leading
    digit between decades: "2 3 4"). Counts read 20M; costs read 0.5, 20, 1000."""
    return {"type": "log", "dtick": "D2", "tickformat": "~s" if counts else "~g"}


def axis(log: bool, counts: bool = False) -> dict:
    return log_axis(counts) if log else {"type": "linear"}


def _layout(fig: go.Figure, cost: str, log_x: bool, log_y: bool, height: int = 520,
            y: str = "decoder_params") -> go.Figure:
    """Every selecting chart drags the same way (see SELECTING): Streamlit's default, because a select
    drag mode turns Streamlit's click-selection off."""
    fig.update_layout(xaxis_title=AXIS[cost], yaxis_title=AXIS.get(y, y), height=height,
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 30, "l": 10, "r": 10},
                      uirevision="keep")
    fig.update_xaxes(**axis(log_x))
    fig.update_yaxes(**axis(log_y, counts=y.endswith("params")))
    return fig


def _scatter(n: int) -> type:
    return go.Scattergl if n > GL_ABOVE else go.Scatter


def _background(fig: go.Figure, g: pd.DataFrame, cost: str, name: str, colour: str, opacity: float = 0.3,
                legend: bool = True, group: str | None = None, y: str = "decoder_params") -> None:
    fig.add_trace(_scatter(len(g))(
        x=g[cost], y=g[y], mode="markers", name=name, legendgroup=group or name, showlegend=False,
        marker={"color": colour, "size": 5, "opacity": opacity}, customdata=g[["arch_id"]].to_numpy(),
        hovertemplate=_hover(name, cost, y)))
    if legend:
        _legend_entry(fig, name, colour, group or name)


def _legend_entry(fig: go.Figure, name: str, colour: str, group: str, symbol: str = "circle") -> None:
    """A legend item drawn at full strength (plotly draws a trace's item with the trace's own opacity: the
    faint cloud's 30% dot) that toggles its whole group."""
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name, legendgroup=group, showlegend=True,
                             marker={"color": colour, "size": 9, "symbol": symbol}, hoverinfo="skip"))


def _front(fig: go.Figure, f: pd.DataFrame, cost: str, name: str, colour: str, symbol: str = "circle",
           legend: bool = False, y: str = "decoder_params") -> None:
    fig.add_trace(go.Scatter(
        x=f[cost], y=f[y], mode="lines+markers", line_shape="hv", name=f"{name} front",
        legendgroup=name, showlegend=legend, line={"color": colour, "width": 2},
        marker={"color": colour, "size": 8, "symbol": symbol, "line": {"width": 1, "color": "white"}},
        customdata=f[["arch_id"]].to_numpy(), hovertemplate=_hover(f"{name} front", cost, y)))


def _selected(fig: go.Figure, df: pd.DataFrame, cost: str, highlight: set[str] | None, link: bool,
              y: str = "decoder_params") -> None:
    if not highlight:
        return
    h = df[df["arch_id"].isin(highlight)].dropna(subset=[cost])
    if h.empty:
        return
    if link:  # the same architecture on several sources: a dotted line joins its points
        xs, ys = [], []
        for _, g in h.groupby("arch_id", sort=False):
            if len(g) > 1:
                g = g.sort_values(cost)
                xs += list(g[cost]) + [None]
                ys += list(g[y]) + [None]
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="same architecture", hoverinfo="skip",
                                     line={"color": "black", "width": 1, "dash": "dot"}))
    fig.add_trace(go.Scatter(x=h[cost], y=h[y], mode="markers", name="selected", marker=SELECTED,
                             customdata=h[["arch_id", "source"]].to_numpy(),
                             hovertemplate="%{customdata[0]} on %{customdata[1]}<extra>selected</extra>"))


def front_figure(df: pd.DataFrame, cost: str, log_x: bool = False, log_y: bool = False,
                 highlight: set[str] | None = None, group: str = "source", background: int = BACKGROUND,
                 quality: str = "decoder_params") -> go.Figure:
    """Scatter of ``quality`` (decoder params, or a proxy objective's column) against ``cost``, one
    colour per group, its 2-D front as a staircase.

    Every point carries its arch_id in ``customdata`` so a selection maps back to architectures.
    Infeasible points are drawn fainter; the same architecture on several groups is linked when
    highlighted.
    """
    fig = go.Figure()
    y = quality
    df = df.dropna(subset=[cost, y])
    fronts = front_2d(df, cost, group=group, quality=y)
    palette = colours(df[group].unique())  # unique() first: iterating 150,000 strings costs 0.2 s
    on_front = df.index.isin(fronts.index)
    shown = bounded_sample(df, max(200, background // max(1, df[group].nunique())), keep=on_front, group=group)
    for name, g in shown.groupby(group, sort=False):
        colour = palette[str(name)]
        # one legend item per source, whatever it has: a run whose every point is on its front has one too
        _legend_entry(fig, str(name), colour, str(name))
        feasible = g["feasible"].fillna(0).astype(bool)
        _background(fig, g[feasible & ~g.index.isin(fronts.index)], cost, str(name), colour, legend=False, y=y)
        if (~feasible).any():
            _background(fig, g[~feasible], cost, f"{name} (infeasible)", colour, opacity=0.1, legend=False,
                        group=str(name), y=y)
        f = fronts[fronts[group] == name]
        if len(f):
            _front(fig, f, cost, str(name), colour, y=y)
    _selected(fig, df, cost, highlight, link=True, y=y)
    return _layout(fig, cost, log_x, log_y, y=y)


def pick_figure(p: Pick, points: pd.DataFrame, highlight: set[str] | None = None, log_x: bool = True,
                log_y: bool = True, colour: str = COLOURS[0], background: int = BACKGROUND) -> go.Figure:
    """The device's cloud (in and out of the limits), the feasible 2-D front, N-objective members,
    the knee and the best-proxy point, and the limits as lines."""
    cost = p.cost
    fig = go.Figure()
    pts = points.assign(_in=p.within_mask).dropna(subset=[cost])
    shown = bounded_sample(pts, background, keep=pts.index.isin(p.front.index), group="source")
    _background(fig, shown[shown["_in"]], cost, "within the limits", colour)
    _background(fig, shown[~shown["_in"]], cost, "outside the limits", "#9e9e9e", opacity=0.15)
    nd_only = p.nd_members[~p.nd_members["on_front_2d"]]
    if len(nd_only):
        fig.add_trace(_scatter(len(nd_only))(
            x=nd_only[cost], y=nd_only["decoder_params"], mode="markers", name="N-objective front only",
            marker={"symbol": "diamond-open", "size": 8, "color": "#6a1b9a", "line": {"width": 1.5}},
            customdata=nd_only[["arch_id"]].to_numpy(), hovertemplate=_hover("on the N-objective front only", cost)))
    if len(p.front):
        both = p.front["on_front_nd"]
        fig.add_trace(go.Scatter(
            x=p.front[cost], y=p.front["decoder_params"], mode="lines", line_shape="hv", name="feasible 2-D front",
            line={"color": colour, "width": 2.5}, hoverinfo="skip"))
        for mask, name, symbol in ((both, "2-D and N-objective front", "circle"), (~both, "2-D front only", "square")):
            f = p.front[mask]
            if len(f):
                fig.add_trace(go.Scatter(
                    x=f[cost], y=f["decoder_params"], mode="markers", name=name,
                    marker={"symbol": symbol, "size": 9, "color": colour, "line": {"width": 1, "color": "white"}},
                    customdata=f[["arch_id"]].to_numpy(), hovertemplate=_hover(name, cost)))
    for row, name, symbol, c in ((p.knee, "knee", "star", "#ff6f00"), (p.best, "best proxy", "triangle-up", "#c62828")):
        if row is not None:
            fig.add_trace(go.Scatter(
                x=[row[cost]], y=[row["decoder_params"]], mode="markers+text", name=name, text=[name],
                textposition="top left", marker={"symbol": symbol, "size": 18, "color": c, "line": {"width": 1}},
                customdata=[[row["arch_id"]]], hovertemplate=_hover(name, cost)))
    _limit_lines(fig, p.limits, cost, pts)
    _selected(fig, pts, cost, highlight, link=False)
    return _layout(fig, cost, log_x, log_y)


def _limit_lines(fig: go.Figure, limits: Limits, cost: str, points: pd.DataFrame) -> None:
    """The limits as dashed lines spanning the data, drawn as traces: shapes and their annotations take
    log10 coordinates on log axes, traces take data values on any axis."""
    limit = {"latency_ms": limits.max_latency_ms, "peak_memory_mb": limits.max_memory_mb}[cost]
    line = {"dash": "dash", "color": "#c62828", "width": 1.5}
    if limit is not None and len(points):
        ys = [points["decoder_params"].min(), points["decoder_params"].max()]
        fig.add_trace(go.Scatter(x=[limit, limit], y=ys, mode="lines", line=line, hoverinfo="skip",
                                 name=f"max {limit:g} {UNITS[cost]}"))
    if limits.min_params is not None and len(points):
        xs = [points[cost].min(), points[cost].max()]
        fig.add_trace(go.Scatter(x=xs, y=[limits.min_params] * 2, mode="lines", line=line, hoverinfo="skip",
                                 name=f"min {limits.min_params:,} params"))


def quality_figure(history: pd.DataFrame, x: str, y: str = "hypervolume", log_x: bool = False) -> go.Figure:
    """One line per run: hypervolume (or front size) against evaluations or seconds."""
    fig = go.Figure()
    palette = colours(history["label"].unique())
    for label, g in history.groupby("label", sort=False):
        dash = "solid" if g["strategy"].iloc[0] == "evolution" else "dash"
        fig.add_trace(go.Scatter(x=g[x], y=g[y], mode="lines", name=str(label),
                                 line={"color": palette[str(label)], "dash": dash, "width": 2}))
    titles = {"n_evaluated": "evaluated architectures", "elapsed_s": "wall time (s)",
              "hypervolume": "hypervolume (share of the reference box)", "front_size": "front size"}
    fig.update_layout(xaxis_title=titles[x], yaxis_title=titles[y], height=360, margin={"t": 30, "l": 10, "r": 10},
                      legend={"orientation": "h", "y": -0.25})
    fig.update_xaxes(**axis(log_x))
    return fig


def error_bar_figure(df: pd.DataFrame, highlight: set[str] | None = None) -> go.Figure:
    """Latency +- one standard deviation of the timed forwards, against decoder params; noisy points flagged."""
    fig = go.Figure()
    for flag, name, colour in ((False, "latency +- 1 SD", COLOURS[0]), (True, "high variance", "#c62828")):
        g = df[df["high_variance"] == flag]
        if len(g):
            fig.add_trace(go.Scatter(
                x=g["latency_ms"], y=g["decoder_params"], mode="markers", name=name,
                error_x={"type": "data", "array": g["latency_sd_ms"].fillna(0), "visible": True, "thickness": 1},
                marker={"color": colour, "size": 7, "symbol": "x" if flag else "circle"},
                customdata=np.column_stack([g["arch_id"], g["latency_cv"].fillna(0) * 100, g["repeats"].fillna(0),
                                            g["protocol"], g["why"]]),
                hovertemplate="%{customdata[0]}<br>%{x:,.2f} ms, CV %{customdata[1]:.1f}%, %{customdata[2]} repeats"
                              "<br>%{customdata[3]}<br>%{customdata[4]}<extra></extra>"))
    if highlight:
        _selected(fig, df.assign(source=df["device_name"]), "latency_ms", highlight, link=False)
    return _layout(fig, "latency_ms", True, True, height=460)


def layer_heatmap(values: pd.DataFrame, title: str = "") -> go.Figure:
    """A layer x setting matrix, coloured per setting (each column scaled to its own range), values written in."""
    numeric = values.apply(pd.to_numeric, errors="coerce")
    span = (numeric.max() - numeric.min()).replace(0, 1)
    scaled = (numeric - numeric.min()) / span
    fig = go.Figure(go.Heatmap(
        z=scaled.T.to_numpy(), x=[f"layer {i}" for i in values.index], y=list(values.columns),
        text=values.T.astype(str).to_numpy(), texttemplate="%{text}", colorscale="Blues", showscale=False,
        hovertemplate="%{y} · %{x}: %{text}<extra></extra>"))
    fig.update_layout(height=90 + 40 * len(values.columns), margin={"t": 30 if title else 10, "l": 10, "r": 10, "b": 10},
                      title=title or None)
    return fig


def selected_ids(event) -> list[str]:
    """arch_ids of the points picked in a plotly selection event."""
    if not event:
        return []
    points = event.get("selection", {}).get("points", []) if isinstance(event, dict) else event.selection.points
    out = []
    for p in points:
        cd = p.get("customdata")
        if cd:
            out.append(cd[0] if isinstance(cd, (list, tuple)) else cd)
    return list(dict.fromkeys(out))


WORST = 50  # held-out points with the largest errors, always drawn


def heldout_scatter(pts: pd.DataFrame, objective: str, unit: str,
                    background: int = BACKGROUND) -> tuple[go.Figure, int]:
    """A surrogate's predicted against measured on its held-out architectures, with a ±10% band and
    ±1 predicted SD error bars; returns (figure, points drawn). A surrogate fitted on 200 of 50,000
    measurements holds out 49,800: drawn as SVG with error bars that took 14 s per page view, so the
    worst ``WORST`` go exactly and the rest is a seeded sample."""
    worst = pts["error_pct"].abs().rank(method="first", ascending=False) <= WORST
    shown = bounded_sample(pts.assign(source="held out"), background, keep=worst.to_numpy())
    lo = float(min(pts["measured"].min(), pts["predicted"].min()))
    hi = float(max(pts["measured"].max(), pts["predicted"].max()))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[lo, hi, hi, lo], y=[lo * 1.1, hi * 1.1, hi * 0.9, lo * 0.9], fill="toself",
                             mode="lines", fillcolor="rgba(99,110,250,0.12)", line={"width": 0}, name="±10%",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dash", "color": "grey"}, name="exact"))
    fig.add_trace(go.Scatter(x=shown["measured"], y=shown["predicted"], mode="markers", name="held out",
                             error_y={"type": "data", "array": shown["std"], "thickness": 1, "width": 0},
                             text=shown["arch_id"], hovertemplate=f"%{{text}}<br>measured %{{x:,.2f}} {unit}"
                                                                  f"<br>predicted %{{y:,.2f}} {unit}<extra></extra>"))
    fig.update_layout(xaxis_title=f"measured {objective} ({unit})", yaxis_title=f"predicted {objective} ({unit})",
                      height=480)
    return fig, len(shown)
