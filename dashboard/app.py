"""lts dashboard: `lts serve` (or `make run`, `streamlit run dashboard/app.py`). Pages are thin views over lts."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import common` from every page

from common import db_path  # noqa: E402
from team_page import gate, leave_older_multipage_mode, may_enter  # noqa: E402

leave_older_multipage_mode()  # a server's first run: rerun as below, with the gate and stable widget ids
st.set_page_config(page_title="lts · Transformer search", page_icon=":material/search:", layout="wide")

PAGES = [
    st.Page("views/search.py", title="Search", icon=":material/rocket_launch:", default=True),
    st.Page("views/frontier.py", title="Frontier explorer", icon=":material/scatter_plot:"),
    st.Page("views/compare.py", title="Compare devices", icon=":material/compare_arrows:"),
    st.Page("views/constraints.py", title="Pick under constraints", icon=":material/tune:"),
    st.Page("views/quality.py", title="Front quality", icon=":material/monitoring:"),
    st.Page("views/measurements.py", title="Measurements", icon=":material/speed:"),
    st.Page("views/architecture.py", title="Architecture", icon=":material/view_agenda:"),
    st.Page("views/surrogates.py", title="Cost surrogates", icon=":material/model_training:"),
    st.Page("views/validation.py", title="Validation", icon=":material/target:"),
    st.Page("views/darts.py", title="DARTS search", icon=":material/account_tree:"),
    st.Page("views/data.py", title="Data", icon=":material/inventory_2:"),
    st.Page("views/audit.py", title="Audit", icon=":material/policy:"),
]
# Hidden until signed in: nobody learns the pages before.
page = st.navigation(PAGES, position="sidebar" if may_enter() else "hidden")
# Refuses to serve beyond loopback without sign-in, warns when that was allowed, and stops at the
# sign-in form until someone is signed in.
gate()
st.sidebar.caption(f"Database: `{db_path()}`")
page.run()
