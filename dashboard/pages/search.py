"""Launch searches on this host and follow them live from the database."""

from __future__ import annotations

import json
import socket

import streamlit as st

from common import db_path, run_label, store
from lts.errors import LtsError
from lts.explore import runs_table
from lts.search.objectives import Constraints
from lts.search.session import ACTIVE, cancel, launch_background, new_run
from lts.space.ranges import SearchSpace

DEMO_SPACE = {"family": "gpt2", "name": "demo", "n_layer": {"min": 1, "max": 4}, "d_model": [64, 128],
              "d_embed": [64, 128], "div_val": [1], "n_head": [2, 4], "d_inner": {"min": 128, "max": 512, "step": 64},
              "vocab_size": 4096, "tgt_len": 64}

st.title("Search")
s = store()


def start(space, device, **kw) -> None:
    try:
        run_id = new_run(s, space, device, **kw)
        launch_background(db_path(), run_id)
    except LtsError as exc:
        st.error(str(exc))
        return
    st.toast(f"Started run {run_id}")
    st.session_state["last_run"] = run_id


runs = runs_table(s)
if runs.empty:
    st.info("No searches yet. Start one below, or run a short demo (about 20 small GPT-2 models, under a minute).")
    if st.button("Run a demo search", type="primary", key="demo"):
        start(SearchSpace.from_dict(DEMO_SPACE), socket.gethostname(), budget=20, population=8, generation=4,
              objectives="proxy,latency,memory")
        st.rerun()

with st.expander("New search", expanded=runs.empty):
    with st.form("new_search"):
        c1, c2, c3 = st.columns(3)
        family = c1.selectbox("Space", ["gpt2", "transxl"], help="LTS's search spaces")
        device = c2.text_input("Device name", value=socket.gethostname())
        strategy = c3.selectbox("Strategy", ["evolution", "random"])
        custom = st.text_area("Custom space (JSON, optional)", placeholder='{"n_layer": {"min": 2, "max": 8}, "vocab_size": 4096}')
        c1, c2, c3, c4 = st.columns(4)
        objectives = c1.multiselect("Objectives", ["proxy", "latency", "memory"], default=["proxy", "latency", "memory"])
        budget = c2.number_input("Budget (architectures)", 1, 5000, 50)
        seed = c3.number_input("Seed", 0, 2**31 - 1, 0)
        threads = c4.number_input("Threads", 1, 64, 1)
        c1, c2, c3 = st.columns(3)
        max_lat = c1.number_input("Max latency (ms, 0 = none)", 0.0, value=0.0)
        max_mem = c2.number_input("Max memory (MB, 0 = none)", 0.0, value=0.0)
        min_params = c3.number_input("Min decoder params (0 = none)", 0, value=0)
        if st.form_submit_button("Start search", type="primary"):
            try:
                spec = {"family": family, **(json.loads(custom) if custom.strip() else {})}
                space = SearchSpace.from_dict(spec)
            except json.JSONDecodeError as exc:
                st.error(f"Custom space: malformed JSON ({exc.msg} at line {exc.lineno})")
            except LtsError as exc:
                st.error(f"Custom space: {exc}")
            else:
                try:
                    constraints = Constraints(max_lat or None, max_mem or None, min_params or None)
                except LtsError as exc:
                    st.error(str(exc))
                else:
                    start(space, device, budget=int(budget), seed=int(seed), threads=int(threads),
                          strategy=strategy, objectives=",".join(objectives), constraints=constraints)


@st.fragment(run_every=2)
def live() -> None:
    table = runs_table(s)
    if table.empty:
        return
    active = table[table["status"].isin(ACTIVE)]
    st.subheader(f"Running ({len(active)})")
    if active.empty:
        st.caption("No search is running.")
    for row in active.to_dict("records"):
        with st.container(border=True):
            st.markdown(f"**{run_label(row)}**")
            done = row["n_evaluated"] / row["budget"] if row["budget"] else 0.0
            hv = "-" if row["hypervolume"] is None or row["hypervolume"] != row["hypervolume"] else f"{row['hypervolume']:.4f}"
            st.progress(min(done, 1.0), text=f"{row['n_evaluated']} / {row['budget'] or '∞'} evaluated · "
                                             f"frontier {row['frontier_size']} · hypervolume {hv}")
            if row["status"] != "cancelling" and st.button("Cancel", key=f"cancel-{row['run_id']}"):
                cancel(s, row["run_id"])
                st.rerun(scope="fragment")
    st.subheader("All runs")
    show = table[["run_id", "family", "strategy", "device_name", "status", "n_evaluated", "budget",
                  "frontier_size", "hypervolume", "message"]]
    st.dataframe(show, hide_index=True, width="stretch")


live()
