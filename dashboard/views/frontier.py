"""Frontier explorer: fronts of runs (and the LTS paper's) on shared axes, filtered by constraints."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from charts import SELECTING, front_figure, selected_ids
from common import cached_run_points, run_label, set_linked, store
from lts.store import reads
from lts.store.rows import records
from lts.reference import PAPER_CAVEAT
from lts.explore import apply_constraints, quality_axes, reference_points, reference_sets, runs_table
from lts.export import hf_zip, selection_json
from lts.search.session import ACTIVE
from tables import data_table

s = store()
st.title("Frontier explorer")
runs = runs_table(s)

labels = {r["run_id"]: run_label(r) for r in records(runs)}
c1, c2 = st.columns([2, 1])
# cancelled and failed runs are one click away, not in the first view
useful = [r["run_id"] for r in records(runs) if r["status"] in ("finished", *ACTIVE)]
# the Search page's runs table links here with ?run=<id>
linked_run = st.query_params.get("run")
chosen = c1.multiselect("Runs", list(labels), default=[linked_run] if linked_run in labels else useful[:3],
                        format_func=labels.get)
paper = c2.multiselect("LTS paper frontiers", reference_sets(), help="published Pareto models (trained on LM1B)")

if not chosen and not paper:
    st.info("Pick runs (or the LTS paper's frontiers) to plot. No runs yet? Start one on the Search page.")
    st.stop()

df = pd.concat([cached_run_points(s, chosen), reference_points(paper)], ignore_index=True) if paper else cached_run_points(s, chosen)
if paper:
    st.warning(PAPER_CAVEAT)

c0, c1, c2, c3, c4 = st.columns([1.2, 1.2, 0.7, 0.7, 0.7])
qualities = quality_axes(df)
quality = c0.selectbox("Quality axis", qualities, format_func=lambda q: "decoder params" if q == "decoder_params" else q,
                       help="decoder parameters (LTS's proxy), or a proxy a run searched on (e.g. zerolm)",
                       disabled=len(qualities) == 1)
cost = c1.radio("Cost axis", ["latency_ms", "peak_memory_mb"], format_func={"latency_ms": "latency", "peak_memory_mb": "memory"}.get, horizontal=True)
log_x = c2.toggle("log x", value=True)
log_y = c3.toggle("log y", value=True)
only_front = c4.toggle("front only", value=False)

with st.expander("Constraints", expanded=False):
    c1, c2, c3 = st.columns(3)
    max_lat = c1.number_input("max latency (ms, 0 = none)", 0.0, value=0.0)
    max_mem = c2.number_input("max memory (MB, 0 = none)", 0.0, value=0.0)
    min_params = c3.number_input("min decoder params (0 = none)", 0, value=0)
view = apply_constraints(df, max_lat or None, max_mem or None, min_params or None)
if only_front:
    view = view[view["on_frontier"].astype(bool)]

st.caption(f"{len(view):,} of {len(df):,} architectures shown · the line is each source's 2-D front "
           "(the best quality for the cost), drawn in full with a sample of the other points. " + SELECTING)
if view.empty:
    st.warning("No architecture satisfies these constraints.")
    st.stop()

event = st.plotly_chart(front_figure(view, cost, log_x, log_y, quality=quality), on_select="rerun",
                        selection_mode=("points", "box"), key="front_chart")
picked = selected_ids(event)
if picked:
    set_linked(picked)  # no redraw here: the selection stays on this chart while it is inspected
    st.subheader(f"Selected ({len(picked)})")
    sel = view[view["arch_id"].isin(picked)].drop_duplicates("arch_id")
    data_table(sel[["arch_id", "source", "decoder_params", *qualities[1:], "latency_ms", "peak_memory_mb", "n_layer",
                      "d_model"]])
    c1, c2, c3 = st.columns(3)
    mine = reads.known_architectures(s, picked)
    if mine:
        c1.download_button("Download selection (JSON)", selection_json(s, mine),
                           file_name="architectures.json", mime="application/json", key="dl_selection",
                           help="lts proxy, lts measure and lts export read this file")
        c2.download_button("Download as Hugging Face folders (zip)", lambda: hf_zip(s, mine),  # built when clicked
                           file_name="architectures.hf.zip", mime="application/zip", key="dl_selection_hf")
        target = c3.selectbox("Open", mine, key="open_arch")
        if c3.button("Open architecture", key="open_btn"):
            st.session_state["arch_input"] = target
            st.switch_page("views/architecture.py")
