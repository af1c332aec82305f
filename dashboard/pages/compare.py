"""Compare devices: fronts on shared axes, and ratios for architectures measured on both."""

from __future__ import annotations

import streamlit as st
from scipy import stats

from charts import front_figure
from common import store
from lts.explore import device_points, device_ratio_table, devices_table

st.title("Compare devices")
s = store()
devices = devices_table(s)
if len(devices) < 2:
    st.info("Comparing needs results from two or more devices. Run a search on another machine and import "
            "its bundle on the Data page (`lts export-run RUN_ID -o bundle.json` there).")
    if len(devices):
        st.dataframe(devices, hide_index=True)
    st.stop()

names = dict(zip(devices["device_id"], devices["name"]))
chosen = st.multiselect("Devices", list(names), default=list(names)[:2], format_func=lambda d: f"{names[d]} ({d[:8]})")
if len(chosen) < 2:
    st.warning("Pick at least two devices.")
    st.stop()
st.dataframe(devices[devices["device_id"].isin(chosen)], hide_index=True, width="stretch")

cost = st.radio("Cost axis", ["latency_ms", "peak_memory_mb"], horizontal=True,
                format_func={"latency_ms": "latency", "peak_memory_mb": "memory"}.get)
points = device_points(s, chosen)
st.plotly_chart(front_figure(points, cost, log_x=True, log_y=True), key="compare_chart")

base = chosen[0]
for other in chosen[1:]:
    ratios = device_ratio_table(s, base, other)
    st.subheader(f"{names[other]} relative to {names[base]}")
    if ratios.empty:
        st.caption("No architecture was measured on both devices with the same protocol.")
        continue
    rho = stats.spearmanr(ratios["latency_a"], ratios["latency_b"]).statistic if len(ratios) > 2 else float("nan")
    c1, c2, c3 = st.columns(3)
    c1.metric("shared architectures", len(ratios))
    c2.metric("median latency ratio", f"{ratios['latency_ratio'].median():.2f}x")
    c3.metric("latency rank Spearman", f"{rho:.3f}")
    st.dataframe(ratios, hide_index=True, width="stretch")
