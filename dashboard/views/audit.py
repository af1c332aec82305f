"""Audit: who launched, cancelled, imported, deleted or re-measured what, when, and with what outcome."""

from __future__ import annotations

import streamlit as st

from common import store
from lts.team.audit import audit_frame, known_values
from tables import data_table

s = store()
st.title("Audit")
st.caption("Every action that occupies the host or changes data, made from this dashboard, with its outcome: `ok`, "
           "`denied` (a role or a limit refused it; nothing changed) or `failed`. The command line is not audited. "
           "Also: `lts team audit`.")

users, actions = known_values(s)
if not actions:
    st.info("Nothing audited yet. Launching or cancelling a search or validation run, importing a bundle, deleting a "
            "run and re-measuring appear here with who did it and when.")
    st.stop()

ALL = "(all)"
c1, c2, c3 = st.columns([2, 2, 1])
user = c1.selectbox("User", [ALL, *users], key="audit_user")
action = c2.selectbox("Action", [ALL, *actions], key="audit_action")
newest = int(c3.number_input("Newest entries", 10, 100_000, 1000, step=100, key="audit_limit"))
frame = audit_frame(s, newest, None if user == ALL else user, None if action == ALL else action)
denied = int((frame["outcome"] == "denied").sum())
st.caption(f"{len(frame):,} entries, newest first" + (f" · {denied} denied" if denied else ""))
data_table(frame, key="audit_table")
st.download_button("Download (CSV)", frame.to_csv(index=False).encode(), file_name="lts-audit.csv", mime="text/csv",
                   key="audit_csv")
