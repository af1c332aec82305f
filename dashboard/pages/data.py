"""Data: import results bundles from other devices, export runs as bundles."""

from __future__ import annotations

import json

import streamlit as st

from common import run_label, store
from lts.errors import LtsError
from lts.explore import runs_table
from lts.store.bundle import MAX_BYTES, export_runs, import_bundle

st.title("Data")
s = store()

st.subheader("Import a results bundle")
st.caption(f"A JSON bundle from `lts export-run` (at most {MAX_BYTES // 2**20} MB). It is checked against the "
           "bundle schema first; a bad file changes nothing, and importing twice adds nothing.")
upload = st.file_uploader("Bundle", type=["json"], key="bundle_upload")
if upload is not None and st.button("Import", type="primary", key="import_btn"):
    try:
        added = import_bundle(s, upload.getvalue(), upload.name)
    except LtsError as exc:
        st.error(str(exc))
    else:
        st.success("Imported: " + ", ".join(f"{v} new {k}" for k, v in added.items()))

st.subheader("Export runs")
runs = runs_table(s)
if runs.empty:
    st.caption("No runs to export yet.")
else:
    labels = {r["run_id"]: run_label(r) for r in runs.to_dict("records")}
    chosen = st.multiselect("Runs", list(labels), format_func=labels.get, key="export_runs")
    if chosen:
        data = json.dumps(export_runs(s, chosen), sort_keys=True).encode()
        st.download_button(f"Download bundle ({len(data) / 1024:.0f} KB)", data, file_name="lts-bundle.json",
                           mime="application/json", key="dl_bundle")
