"""Front quality over time: hypervolume and front size per run, against evaluations and wall time, live."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from charts import quality_figure
from common import run_label, store
from lts.store import reads
from lts.store.rows import records
from lts.decide.quality import HistorySettings, quality_history
from lts.errors import LtsError
from lts.explore import runs_table
from lts.search.session import ACTIVE
from tables import data_table

s = store()
st.title("Front quality")
runs = runs_table(s)
if runs.empty:
    st.info("No search runs yet. Start one on the Search page; its hypervolume and front size appear here as it runs.")
    st.stop()

EVERY = "every space"
spaces = sorted(runs["space"].dropna().unique())
c0, c1 = st.columns([1, 4])
space = c0.selectbox("Space", [EVERY, *spaces], key="quality_space", disabled=len(spaces) < 2,
                     help="only the runs that searched this space (a demo run's tiny models next to a GPT-2 "
                          "search compare nothing)")
if space != EVERY:
    runs = runs[runs["space"] == space]
labels = {r["run_id"]: run_label(r) for r in records(runs)}
default = list(labels)[:6]
chosen = c1.multiselect("Runs", list(labels), default=default, format_func=labels.get, key=f"quality_runs_{space}")
c1, c2 = st.columns(2)
common = c1.toggle("One hypervolume reference per device and space", value=True, key="quality_common",
                   help="On: the runs of one device and one space (same objectives) are normalised by the same box "
                        "(the space's largest decoder params, 1.1x the worst feasible cost in any of them), so "
                        "evolution and random search on it compare directly. Off: each run's own reference, as "
                        "the Search page and `lts search` report it.")
log_x = c2.toggle("log x", value=False, key="quality_logx", help="the first evaluations, where fronts move most")
if not chosen:
    st.warning("Pick at least one run.")
    st.stop()
st.caption("Hypervolume reference: " + ("one box per device, space and objectives among the runs shown (a run's "
           "figure equals the Search page's only when no other shown run shares its box)." if common else
           "each run's own, as its search reported it."))


@st.cache_resource(show_spinner=False, max_entries=8)
def history(path: str, key: tuple, run_ids: tuple[str, ...], common_reference: bool) -> pd.DataFrame:
    return quality_history(s, list(run_ids), HistorySettings(common_reference=common_reference))[0]


active = runs[runs["run_id"].isin(chosen) & runs["status"].isin(ACTIVE)]


@st.fragment(run_every=2 if len(active) else None)
def charts() -> None:
    rows = reads.run_progress(s, chosen)
    state = tuple(tuple(r.values()) for r in rows)  # the cache key: redraw only when a run moved on
    try:
        h = history(str(s.path), state, tuple(chosen), common)
    except LtsError as exc:  # a run whose stored settings no longer parse (imported by an older lts)
        st.error(f"Cannot draw these runs: {exc}")
        return
    if h.empty:
        st.caption("Nothing evaluated yet.")
        return
    if len(active):
        st.caption(f"Live: {len(active)} run(s) in progress, redrawn every 2 s.")
    both = {"evolution", "random"} <= set(h["strategy"])
    st.caption("Solid: evolution · dashed: random search" + (" — both on one chart, one reference per device."
                                                             if both else "."))
    c1, c2 = st.columns(2)
    c1.plotly_chart(quality_figure(h, "n_evaluated", log_x=log_x), key="hv_evals")
    c2.plotly_chart(quality_figure(h, "elapsed_s", log_x=log_x), key="hv_time")
    c1.plotly_chart(quality_figure(h, "n_evaluated", "front_size", log_x=log_x), key="size_evals")
    last = h.groupby("label", sort=False).tail(1)[["label", "n_evaluated", "elapsed_s", "hypervolume", "front_size"]]
    data_table(container=c2, data=last)
    c2.caption("Wall time comes from each evaluation's measurement time; evaluations that reused a cached "
               "measurement are interpolated, and a resumed run's pause counts as time.")


charts()
