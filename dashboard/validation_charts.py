"""The validation page's charts and tables: own runs' proxy-vs-perplexity scatters, the FlexiBERT table and scatter.

The data comes from the library (:mod:`lts.validate.page` for own runs, :mod:`lts.flexibert.benchmark`
for the shipped FlexiBERT result); only how it is drawn lives here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from charts import log_axis


def scatter(frame: pd.DataFrame, proxy: str, corr: dict[str, Any] | None = None) -> Any:
    """Proxy (log x) against validation perplexity (log y), one point per trained architecture."""
    import plotly.express as px

    done = frame[frame["status"] == "done"]
    title = proxy
    if corr and corr.get("spearman") is not None:
        title = f"{proxy} · Spearman {corr['spearman']:+.3f} · Kendall {corr['kendall']:+.3f}"
    fig = px.scatter(done, x=proxy, y="valid_ppl", log_x=True, log_y=True, custom_data=["arch_id"],
                     hover_data=["arch_id", "n_layer", "d_model"], title=title, height=360,
                     labels={proxy: proxy, "valid_ppl": "validation perplexity"})
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(**log_axis(counts=True))
    fig.update_yaxes(**log_axis())
    return fig


def curve(frame: pd.DataFrame) -> Any:
    """Spearman of each proxy against held-out perplexity vs training tokens, with its bootstrap band."""
    import plotly.graph_objects as go
    from plotly.colors import qualitative

    fig = go.Figure()
    for i, (proxy, part) in enumerate(frame.groupby("proxy", sort=False)):
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        part = part.sort_values("tokens")
        band = part.dropna(subset=["spearman_lo", "spearman_hi"])
        if not band.empty:  # the interval as a closed shape: upper edge forward, lower edge back
            fig.add_trace(go.Scatter(x=[*band["tokens"], *band["tokens"][::-1]],
                                     y=[*band["spearman_hi"], *band["spearman_lo"][::-1]], fill="toself",
                                     fillcolor=color, opacity=0.18, line={"width": 0}, hoverinfo="skip",
                                     legendgroup=proxy, showlegend=False, name=f"{proxy} 95% CI"))
        fig.add_trace(go.Scatter(x=part["tokens"], y=part["spearman"], mode="lines+markers", name=proxy,
                                 legendgroup=proxy, line={"color": color}, customdata=part[["step", "n"]],
                                 hovertemplate="%{x:,} tokens (step %{customdata[0]}, n %{customdata[1]})"
                                               "<br>Spearman %{y:+.3f}<extra>" + proxy + "</extra>"))
    fig.update_layout(height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10}, yaxis={"range": [-1, 1]},
                      title="Spearman vs training tokens (band: 95% bootstrap interval)",
                      xaxis_title="training tokens per model", yaxis_title="Spearman (+1: proxy ranks as perplexity)")
    return fig


FLEXIBERT_COLUMNS = ["source", "proxy", "n", "spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo",
                     "kendall_hi", "top10_overlap", "seconds_per_arch", "note"]


def flexibert_frame(result: Any) -> pd.DataFrame:
    """The FlexiBERT table's rows, in the page's columns."""
    return pd.DataFrame(result.rows, columns=FLEXIBERT_COLUMNS)


def flexibert_scatter(result: Any, proxy: str) -> Any:
    """``proxy`` (x, log scale when it spans positive decades) against GLUE (y), one point per
    architecture, its id and layers in the hover; Spearman/Kendall in the title. Plotly like every other
    chart of the page (it was Vega-Lite: a second charting library for the browser to fetch and compile
    on a first visit, for one chart)."""
    import plotly.graph_objects as go

    from lts.flexibert.benchmark import scatter_points

    points = scatter_points(result, proxy)
    row = next((r for r in result.rows if r["proxy"] == proxy and r["source"] in ("lts", "published")), None)
    title = proxy
    if row and row.get("spearman") is not None:
        title = f"{proxy} · Spearman {row['spearman']:+.3f} · Kendall {row['kendall']:+.3f} · n {row['n']}"
    values = [p["value"] for p in points]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 100
    fig = go.Figure(go.Scatter(
        x=values, y=[p["glue"] for p in points], mode="markers", marker={"opacity": 0.6}, name=proxy,
        customdata=[[p["id"], p["describe"]] for p in points],
        hovertemplate="architecture %{customdata[0]}: %{customdata[1]}<br>" + proxy + " %{x:,.4g}"
                      "<br>GLUE %{y:.3f}<extra></extra>"))
    fig.update_layout(title=title, height=360, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title=proxy, yaxis_title="GLUE score")
    if log:
        fig.update_xaxes(**log_axis())
    return fig
