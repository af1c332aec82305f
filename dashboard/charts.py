"""Plotly figures shared by the pages: point clouds with their 2-D Pareto fronts drawn as staircases."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from lts.explore import front_2d

AXIS = {"latency_ms": "latency (ms)", "peak_memory_mb": "peak memory (MB)", "decoder_params": "decoder parameters"}


def front_figure(df: pd.DataFrame, cost: str, log_x: bool = False, log_y: bool = False,
                 highlight: set[str] | None = None, group: str = "source") -> go.Figure:
    """Scatter of decoder params against ``cost``, one colour per group, its front as a staircase.

    Every point carries its arch_id in ``customdata`` so a selection maps back to architectures.
    Large clouds use WebGL markers (50,000 points stay responsive); small ones SVG, which renders
    without a GPU and gives crisp points.
    """
    fig = go.Figure()
    fronts = front_2d(df, cost, group=group)
    colours = qualitative.Plotly + qualitative.Dark24
    for i, (name, g) in enumerate(df.dropna(subset=[cost]).groupby(group, sort=False)):
        colour = colours[i % len(colours)]
        trace = go.Scattergl if len(g) > 5000 else go.Scatter
        fig.add_trace(trace(
            x=g[cost], y=g["decoder_params"], mode="markers", name=str(name),
            marker={"color": colour, "size": 7, "opacity": [1.0 if f else 0.35 for f in g["feasible"]]},
            customdata=g[["arch_id"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>%{y:,} params<br>%{x:.2f}<extra>" + str(name) + "</extra>",
        ))
        f = fronts[fronts[group] == name]
        if len(f):
            fig.add_trace(go.Scatter(x=f[cost], y=f["decoder_params"], mode="lines", line_shape="hv",
                                     line={"color": colour, "width": 2}, name=f"{name} front",
                                     hoverinfo="skip", showlegend=False))
    if highlight:
        h = df[df["arch_id"].isin(highlight)].dropna(subset=[cost])
        fig.add_trace(go.Scatter(x=h[cost], y=h["decoder_params"], mode="markers", name="selected",
                                 marker={"size": 16, "symbol": "circle-open", "color": "black", "line": {"width": 2}},
                                 customdata=h[["arch_id"]].to_numpy(), hoverinfo="skip"))
    fig.update_layout(xaxis_title=AXIS[cost], yaxis_title=AXIS["decoder_params"], height=520,
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 30, "l": 10, "r": 10},
                      dragmode="select")
    fig.update_xaxes(type="log" if log_x else "linear")
    fig.update_yaxes(type="log" if log_y else "linear")
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
