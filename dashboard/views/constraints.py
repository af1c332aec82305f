"""Pick under constraints: a device's limits as sliders, the feasible front, its knee and best-proxy point."""

from __future__ import annotations

import numpy as np
import streamlit as st

from charts import SELECTING, colours, pick_figure, selected_ids
from common import (cached_device_points, device_names, follow_selection, linked_controls,
                    space_filter, store)
from lts.decide.fronts import Limits, pick
from lts.decide.points import in_space
from tables import data_table, highlighted

s = store()
st.title("Pick under constraints")
names = device_names(s, "No measurements yet. Run a search on the Search page (or import a bundle on the Data "
                     "page), then pick the best architecture under a device's latency and memory limits here.")
c1, c2, c3 = st.columns([2, 1, 2])
device = c1.selectbox("Device", list(names), format_func=lambda d: f"{names[d]} ({d[:8]})", key="pick_device")
_, members = space_filter(s, [device], "pick_space", c2)
cost = c3.radio("Cost axis", ["latency_ms", "peak_memory_mb"], horizontal=True, key="pick_cost",
                format_func={"latency_ms": "latency", "peak_memory_mb": "memory"}.get)
points = in_space(cached_device_points(s, [device]), members)
measured = points[points["feasible"].astype(bool)]
if measured.empty:
    st.warning("This device has no feasible measurement" + (" in this space." if members is not None else "."))
    st.stop()


def grid(values, n: int = 60, integer: bool = False) -> list:
    """Geometric steps over the measured range (3 significant figures), for a log-like slider."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    steps = np.geomspace(max(lo, 1e-9), max(hi, lo * 1.0001, 1e-9), n)
    steps = [float(f"{v:.3g}") for v in steps]
    if integer:
        steps = [int(v) for v in steps]
    return sorted(set(steps))


NONE = "no limit"
c1, c2, c3 = st.columns(3)
lat = c1.select_slider("Max latency (ms)", [*grid(measured["latency_ms"]), NONE], value=NONE, key="pick_max_latency")
mem = c2.select_slider("Max memory (MB)", [*grid(measured["peak_memory_mb"]), NONE], value=NONE, key="pick_max_memory")
par = c3.select_slider("Min decoder params", [NONE, *grid(measured["decoder_params"], integer=True)], value=NONE,
                       key="pick_min_params", format_func=lambda v: v if v == NONE else f"{v:,}")
limits = Limits(None if lat == NONE else lat, None if mem == NONE else mem, None if par == NONE else par)

p = pick(points, cost, limits)
sel = linked_controls("pick")
st.caption(f"{p.n_within:,} of {p.n_total:,} architectures meet {limits.describe()} · feasible 2-D front: "
           f"{len(p.front)} · N-objective front (params, latency, memory): {len(p.nd_members)}. " + SELECTING)
event = st.plotly_chart(pick_figure(p, points, highlight=sel, colour=colours(names.values())[names[device]]),
                        on_select="rerun", selection_mode=("points", "box"), key="pick_chart")
follow_selection(selected_ids(event))

for key in ("best", "knee"):
    if key in p.reasons:
        (st.success if key == "best" and p.best is not None else st.info)(p.reasons[key])
st.caption("Circles are on both the 2-D front drawn here and the full N-objective front; squares only on the 2-D "
           "front (another point ties on this chart but needs less of the cost not drawn); open diamonds are on the "
           "N-objective front but look dominated here, because they win on the axis not drawn.")

if len(p.front):
    st.subheader("The feasible front")
    cols = ["arch_id", "decoder_params", "latency_ms", "peak_memory_mb", "n_layer", "d_model", "on_front_2d",
            "on_front_nd"]
    data_table(p.front[cols], styled=highlighted(sel))
    picks = [r["arch_id"] for r in (p.best, p.knee) if r is not None]
    if st.button("Select the best-proxy and knee points", key="pick_select"):
        follow_selection(picks)
