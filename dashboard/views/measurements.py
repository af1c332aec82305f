"""Measurement provenance: repeats, CV, protocol, threads and device fingerprint of every latency; re-measure."""

from __future__ import annotations

import socket

import pandas as pd
import streamlit as st

from charts import SELECTING, error_bar_figure, selected_ids
from common import (db_path, device_names, follow_selection, linked, linked_controls, space_filter,
                    store, version)
from lts.store.rows import records
from lts.decide.fronts import front_mask_2d
from lts.decide.points import bounded_sample, in_space
from lts.decide.provenance import VarianceRule, history, provenance
from lts.decide.remeasure import RemeasureRequest, job_keys, jobs, side_by_side, this_host_devices
from lts.errors import LtsError
from lts.explore import devices_table
from lts.search.session import device_holder, queue_position
from lts.team import guarded
from team_page import can, current_user, limits, viewer_note
from tables import data_table, highlighted

s = store()
st.title("Measurements")
names = device_names(s, "No measurements yet. Every latency a search takes appears here with its repeats, "
                     "spread, protocol and device; noisy ones are flagged and can be measured again on this host.")
devices = devices_table(s)
c1, c2, c3 = st.columns([3, 1, 1])
device = c1.selectbox("Device", list(names), format_func=lambda d: f"{names[d]} ({d[:8]})", key="prov_device")
_, members = space_filter(s, [device], "prov_space", c2)
max_cv = c3.number_input("Flag CV above (%)", 0.1, 100.0, 5.0, step=0.5, key="prov_cv") / 100


@st.cache_resource(show_spinner=False, max_entries=8)
def table(path: str, key: tuple, device_id: str, cv: float) -> pd.DataFrame:
    return provenance(s, [device_id], rule=VarianceRule(max_cv=cv))


prov = in_space(table(str(s.path), version(s), device, max_cv), members)
record = devices[devices["device_id"] == device].iloc[0]
c1, c2, c3, c4 = st.columns(4)
c1.metric("measurements", f"{len(prov):,}")
c2.metric("high variance", f"{int(prov['high_variance'].sum()):,}")
c3.metric("median CV", f"{100 * prov['latency_cv'].median():.2f}%" if prov["latency_cv"].notna().any() else "-")
c4.metric("protocols · threads", f"{prov['protocol'].nunique()} · {', '.join(map(str, sorted(prov['threads'].dropna().unique())))}")
st.caption(f"Device fingerprint `{device}`: {record['kind']} · {record['cpu_model']} · {record['cores']} cores · "
           f"{record['ram_gb']} GB RAM · GPU {record['gpu'] if pd.notna(record['gpu']) else 'none'} · torch {record['torch_version']} · "
           f"{record['threads']} thread(s). Protocols: " + ", ".join(f"`{p}`" for p in prov["protocol"].unique()))

sel = linked_controls("prov")
feasible = prov[prov["latency_ms"].notna()].reset_index(drop=True)
keep = (front_mask_2d(feasible.assign(feasible=1), "latency_ms") | feasible["high_variance"].to_numpy()
        | feasible["arch_id"].isin(sel).to_numpy())
shown = bounded_sample(feasible.assign(source=names[device]), 1000, keep=keep)
st.caption(f"Latency +- one standard deviation of the timed forwards (CV x latency): the 2-D front, every flagged "
           f"point and the selection, plus a sample of the rest ({len(shown):,} of {len(feasible):,}). " + SELECTING)
event = st.plotly_chart(error_bar_figure(shown, highlight=sel), on_select="rerun", selection_mode=("points", "box"),
                        key="prov_chart")
follow_selection(selected_ids(event))

st.subheader("Every measurement (flagged and selected first)")
order = prov.assign(_sel=prov["arch_id"].isin(sel)).sort_values(["_sel", "high_variance", "latency_cv"],
                                                                 ascending=False).drop(columns="_sel")
data_table(order.head(1000), styled=highlighted(sel))

st.subheader("Re-measure on this host")
if not can("launch"):
    viewer_note("re-measuring")
else:
    lim = limits()
    here = this_host_devices(s)
    flagged = list(order[order["high_variance"]]["arch_id"].head(50))
    options = list(dict.fromkeys([*linked(), *flagged, *prov["arch_id"].head(200)]))
    c1, c2 = st.columns([3, 1])
    picks = c1.multiselect("Architectures", options, default=(linked() or flagged)[:3], key="remeasure_ids",
                           max_selections=lim.max_budget, help=f"at most {lim.max_budget} per re-measurement here")
    name = c2.text_input("Device name on this host", value=here[0] if here else socket.gethostname(),
                         key="remeasure_name",
                         help="Measurements are stored under this name's device record on this machine: "
                              + (f"this machine is {', '.join(here)} in the database." if here else
                                 "no device in the database is this machine yet."))
    st.caption("Runs `lts remeasure` in the background with the protocol each architecture was last measured under "
               "on that device; the old measurement is kept and shown beside the new one. It takes its turn in the "
               "host's measuring queue (one measurement at a time, searches included).")
    if st.button("Re-measure", type="primary", disabled=not picks, key="remeasure_btn"):
        try:
            job = guarded.queue_remeasure(current_user(), s, db_path(), RemeasureRequest(tuple(picks), name),
                                          limits=lim)
        except LtsError as exc:
            st.error(str(exc))
        else:
            st.session_state["remeasure_job"] = job
            st.toast(f"Queued re-measure job {job}")


def _jobs_active() -> bool:
    j = jobs(s)
    return bool(len(j) and j["status"].isin(["queued", "running"]).any())


@st.fragment(run_every=2 if _jobs_active() else None)
def job_status() -> None:
    j = jobs(s)
    if j.empty:
        return
    for row in records(j[j["status"].isin(["queued", "running"])]):
        position = queue_position(row) if isinstance(row["message"], str) else None  # NaN from pandas otherwise
        if position is not None:
            holder = device_holder()
            st.caption(f":material/hourglass_top: job `{row['job_id']}` queued (position {position}): waiting for "
                       f"this host's measuring turn" + (f"; {holder} holds it now." if holder else "."))
    data_table(j[["job_id", "device_name", "status", "n_done", "n_archs", "message", "created_at"]])
    job = st.session_state.get("remeasure_job") or j["job_id"].iloc[0]
    keys = job_keys(s, job)
    if keys:
        st.markdown(f"**Old and new, job `{job}`**")
        data_table(side_by_side(s, keys))


job_status()
if sel:
    with st.expander(f"Measurement history of the selection ({len(sel)})"):
        data_table(history(s, sorted(sel)))
