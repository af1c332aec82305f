"""Compare devices (or runs): linked fronts on shared axes, and what changes from one device to another."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from charts import BACKGROUND, SELECTING, front_figure, selected_ids
from common import (cached_device_points, cached_run_points, follow_selection, linked_controls,
                    run_label, space_filter, space_members, store, version)
from lts.decide.points import in_space
from lts.store.rows import records
from lts.decide.rankshift import rank_shift, with_fronts
from lts.decide.repro import reproductions
from lts.reference import PAPER_CAVEAT
from lts.explore import devices_table, reference_points, reference_sets, runs_table
from tables import data_table, highlighted

s = store()
st.title("Compare devices")
devices = devices_table(s)
runs = runs_table(s)


@st.cache_resource(show_spinner=False, max_entries=4)
def shifts(path: str, key: tuple, device_ids: tuple[str, ...], space: str | None
           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    points = in_space(cached_device_points(s, list(device_ids)), space_members(s, list(device_ids), space))
    table, pairs = rank_shift(points)
    return table, pairs, with_fronts(points, group="source")


mode = st.radio("Compare", ["Devices", "Runs"], horizontal=True, key="compare_mode",
                help="Devices: every measurement of each device. Runs: each run's evaluations, e.g. a run and its "
                     "re-run on another machine from a reproducibility bundle (my front vs yours).")
if mode == "Devices":
    if len(devices) < 2:
        st.info("Comparing needs results from two or more devices. Run a search on another machine and import "
                "its bundle on the Data page (`lts export-run RUN_ID -o bundle.json` there).")
        if len(devices):
            data_table(devices)
        st.stop()
    names = dict(zip(devices["device_id"], devices["name"]))
    chosen = st.multiselect("Devices", list(names), default=list(names)[:4],
                            format_func=lambda d: f"{names[d]} ({d[:8]})", key="compare_devices")
    if len(chosen) < 2:
        st.warning("Pick at least two devices.")
        st.stop()
    space, members = space_filter(s, chosen, "compare_space")
    points = in_space(cached_device_points(s, chosen), members)
else:
    if runs.empty:
        st.info("No runs yet. Start one on the Search page, or import a bundle on the Data page.")
        st.stop()
    space = None
    labels = {r["run_id"]: run_label(r) for r in records(runs)}
    pairs = reproductions(s)
    default = list(dict.fromkeys(pairs.iloc[0][["reproduces", "run_id"]])) if len(pairs) else list(labels)[:2]
    chosen = st.multiselect("Runs", list(labels), default=[r for r in default if r in labels],
                            format_func=labels.get, key="compare_runs")
    if not chosen:
        st.warning("Pick at least one run.")
        st.stop()
    points = cached_run_points(s, chosen)
    if len(pairs):
        st.caption("Re-runs here: " + ", ".join(f"`{r}` reproduces `{o}`" for r, o in pairs.to_numpy()))

c1, c2, c3, c4, c5 = st.columns([2, 2, 1, 1, 1])
paper = c1.multiselect("LTS paper fronts", reference_sets(), key="compare_paper",
                       help="published Pareto models, for 'my front vs the paper's'")
cost = c2.radio("Cost axis", ["latency_ms", "peak_memory_mb"], horizontal=True, key="compare_cost",
                format_func={"latency_ms": "latency", "peak_memory_mb": "memory"}.get)
log_x = c3.toggle("log x", value=True, key="compare_logx")
log_y = c4.toggle("log y", value=True, key="compare_logy")
background = c5.number_input("background points", 0, 200_000, BACKGROUND, step=1000, key="compare_bg",
                             help="sampled non-front points sent to the browser (fronts always go in full); "
                                  "above 2,500 per source they are drawn with WebGL")
shown = pd.concat([points, reference_points(paper)], ignore_index=True) if paper else points
if paper:
    st.warning(PAPER_CAVEAT)

sel = linked_controls("compare")
st.caption(f"{len(points):,} measured points; each source's 2-D front is drawn in full with a sample of "
           f"{background:,} of the rest. The same selected architecture is ringed on every device's front and "
           "joined by a dotted line. " + SELECTING)
event = st.plotly_chart(front_figure(shown, cost, log_x, log_y, highlight=sel, background=background), on_select="rerun",
                        selection_mode=("points", "box"), key="linked_chart")
follow_selection(selected_ids(event))

if sel:
    flagged = (shifts(str(s.path), version(s), tuple(chosen), space)[2] if mode == "Devices"
               else with_fronts(points, group="source"))
    rows = flagged[flagged["arch_id"].isin(sel)]
    st.subheader(f"Selected architectures on each {'device' if mode == 'Devices' else 'run'}")
    data_table(rows[["arch_id", "source", "decoder_params", "latency_ms", "peak_memory_mb", "feasible", "on_front"]]
                 .rename(columns={"on_front": "on N-objective front"}).sort_values(["arch_id", "source"]))

if mode == "Devices":
    table, pairs, _ = shifts(str(s.path), version(s), tuple(chosen), space)
    st.subheader("Does the device change the ranking?")
    for p in records(pairs):
        with st.container(border=True):
            st.markdown(f"**{p['device_b']}** relative to **{p['device_a']}**")
            c1, c2, c3, c4 = st.columns(4)
            c1.metric("shared architectures", p["shared"])
            # too few shared architectures (none, in a space one device never searched) leave these undefined
            ratio, rho = p["median_latency_ratio"], p["spearman_latency"]
            c2.metric("median latency ratio", "-" if pd.isna(ratio) else f"{ratio:.2f}x")
            c3.metric("latency rank Spearman", "-" if pd.isna(rho) else f"{rho:.3f}")
            c4.metric("front here, dominated there", f"{p['optimal_a_dominated_b']} / {p['optimal_b_dominated_a']}",
                      help=f"on {p['device_a']}'s front and dominated on {p['device_b']}'s / the other way round")
    st.subheader(f"Optimal on one device, dominated on another ({len(table):,})")
    st.caption("Fronts over decoder params, latency and memory, each computed over all of a device's measurements. "
               "Ratios are dominated device / optimal device; ranks are latency ranks (1 = fastest) among the "
               "architectures the two share. Selected architectures are shaded.")
    if table.empty:
        st.caption("None: every architecture on one device's front is on the other's too (the devices rescale "
                   "costs without reordering).")
    else:
        first = table.assign(_sel=table["arch_id"].isin(sel)).sort_values("_sel", ascending=False, kind="stable")
        data_table(first.drop(columns="_sel").head(2000), styled=highlighted(sel))
