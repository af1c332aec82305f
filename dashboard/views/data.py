"""Data: import results bundles from other devices, export runs as reproducibility bundles, re-run one here,
delete runs."""

from __future__ import annotations

import json
import math
import socket

import streamlit as st

from common import db_path, run_label, store, version
from lts.store.rows import records
from lts.decide.repro import compare_packages
from lts.errors import LtsError
from lts.explore import runs_table
from lts.search.session import ACTIVE
from lts.search.exchange import MAX_BYTES, export_runs, package_versions, parse_bundle, summary_line
from lts.team import guarded
from team_page import can, current_user, limits, viewer_note
from tables import data_table

s = store()
lim = limits()
st.title("Data")


@st.cache_resource(show_spinner=False, max_entries=4)
def bundle_bytes(path: str, key: tuple, run_ids: tuple[str, ...]) -> bytes:
    """Built once per selection and data version: a 50,000-evaluation run takes ~2.5 s to export."""
    return json.dumps(export_runs(s, list(run_ids)), sort_keys=True).encode()


st.subheader("Import a results bundle")
if not can("import"):
    viewer_note("importing a bundle")
else:
    max_mb = min(MAX_BYTES / 2**20, lim.max_upload_mb)
    st.caption(f"A JSON bundle from `lts export-run` or the export below (at most {max_mb:g} MB). It is checked "
               "against the bundle schema first; a bad file changes nothing, and importing twice adds nothing.")
    # The widget's own limit is the browser's courtesy; the guarded import checks the size again.
    upload = st.file_uploader("Bundle", type=["json"], key="bundle_upload", max_upload_size=max(1, math.ceil(max_mb)))
    if upload is not None and st.button("Import", type="primary", key="import_btn"):
        try:
            added = guarded.import_bundle(current_user(), s, upload.getvalue(), upload.name, limits=lim)
        except LtsError as exc:
            st.error(str(exc))
        else:
            st.success("Imported: " + summary_line(added))
            st.session_state["imported_bundle"] = parse_bundle(upload.getvalue(), upload.name).get("reproduce", [])

entries = st.session_state.get("imported_bundle") or []
if entries and can("launch"):
    st.markdown("**Re-run an imported run on this machine** (same space, settings and seed; measured here), then "
                "compare the two fronts on *Compare devices → Runs* (my front vs yours, and vs the LTS paper's).")
    by_id = {e["run_id"]: e for e in entries}
    c1, c2 = st.columns([2, 1])
    source = c1.selectbox("Run", list(by_id), key="rerun_source", format_func=lambda r: (
        f"{r} · {by_id[r]['settings']['strategy']} · seed {by_id[r]['settings']['seed']} · "
        f"{by_id[r]['n_evaluations'] if 'n_evaluations' in by_id[r] else '?'} evaluations"))
    name = c2.text_input("Device name here", value=socket.gethostname(), key="rerun_device")
    data_table(compare_packages(by_id[source]["packages"], package_versions()))
    if st.button("Re-run here", key="rerun_btn"):
        try:
            run_id = guarded.reproduce_search(current_user(), s, db_path(), source, name, limits=lim)
        except LtsError as exc:
            st.error(str(exc))
        else:
            st.success(f"Run {run_id} reproduces {source}; follow it on the Search page.")

st.subheader("Export runs")
runs = runs_table(s)
if runs.empty:
    st.caption("No runs to export yet.")
else:
    labels = {r["run_id"]: run_label(r) for r in records(runs)}
    chosen = st.multiselect("Runs", list(labels), format_func=labels.get, key="export_runs")
    st.caption("The bundle holds everything to check and repeat the run elsewhere: its space, settings, seed, device "
               "record, package versions, every evaluation with its measurement (earlier measurements too) and its "
               "front. Import it on another machine here, or with `lts reproduce bundle.json --device-name NAME`.")
    if chosen:
        data = bundle_bytes(str(s.path), version(s), tuple(chosen))
        st.download_button(f"Download bundle ({len(data) / 1024:.0f} KB)", data, file_name="lts-bundle.json",
                           mime="application/json", key="dl_bundle")

st.subheader("Delete a run")
deleted = st.session_state.pop("deleted_run", None)
if deleted:
    st.success(f"Deleted run {deleted[0]}: " + ", ".join(f"{v} {k}" for k, v in deleted[1].items()))
if not can("delete"):
    viewer_note("deleting a run")
else:
    idle = runs[~runs["status"].isin(ACTIVE)] if not runs.empty else runs
    if idle.empty:
        st.caption("No finished, failed or cancelled run to delete (cancel a running search first).")
    else:
        st.caption("Removes the run, its members, predictions and drift checks. Architectures and measurements stay: "
                   "they are the cache every run on that device shares. Recorded in the audit trail.")
        labels = {r["run_id"]: run_label(r) for r in records(idle)}
        c1, c2, c3 = st.columns([4, 2, 1], vertical_alignment="bottom")
        # nothing preselected and a confirmation: a delete is never one stray click
        doomed = c1.selectbox("Run to delete", list(labels), index=None, placeholder="choose a run",
                              format_func=labels.get, key="delete_run_pick")
        sure = c2.checkbox("Yes, delete it for good", key="delete_run_confirm", disabled=doomed is None)
        if c3.button("Delete run", key="delete_run_btn", disabled=not (doomed and sure)):
            try:
                removed = guarded.delete_run(current_user(), s, doomed)
            except LtsError as exc:
                st.error(str(exc))
            else:
                st.session_state["deleted_run"] = (doomed, removed)
                st.rerun()
