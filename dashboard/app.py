"""lts dashboard: `streamlit run dashboard/app.py` (or `make run`). Pages are thin views over lts."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import common` from every page

from common import db_path  # noqa: E402

st.set_page_config(page_title="lts · Transformer search", page_icon=":material/search:", layout="wide")

PAGES = [
    st.Page("pages/search.py", title="Search", icon=":material/rocket_launch:", default=True),
    st.Page("pages/frontier.py", title="Frontier explorer", icon=":material/scatter_plot:"),
    st.Page("pages/compare.py", title="Compare devices", icon=":material/compare_arrows:"),
    st.Page("pages/constraints.py", title="Pick under constraints", icon=":material/tune:"),
    st.Page("pages/quality.py", title="Front quality", icon=":material/monitoring:"),
    st.Page("pages/measurements.py", title="Measurements", icon=":material/speed:"),
    st.Page("pages/architecture.py", title="Architecture", icon=":material/view_agenda:"),
    st.Page("pages/surrogates.py", title="Cost surrogates", icon=":material/model_training:"),
    st.Page("pages/validation.py", title="Validation", icon=":material/target:"),
    st.Page("pages/data.py", title="Data", icon=":material/inventory_2:"),
]
page = st.navigation(PAGES)
st.sidebar.caption(f"Database: `{db_path()}`")
page.run()
