"""Surrogate quality: are the predicted latency and memory close enough to decide on?"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st
from charts import WORST, heldout_scatter
from common import store

from lts.errors import LtsError
from lts.surrogate.views import assisted_runs, drift_checks, heldout_points, run_predictions, surrogate_choices
from lts.team import guarded
from tables import data_table
from team_page import can, current_user

s = store()
st.title("Cost surrogates")


def fit_form() -> None:
    """`lts surrogate fit` for operators: a new version from a device's measurements, 20% held out."""
    if not can("launch"):
        return
    devices = sorted({d["name"] for d in s.devices()})
    if not devices:
        return
    with st.expander("Fit a surrogate", expanded=False), st.form("fit_surrogate"):
        c1, c2 = st.columns(2)
        device = c1.selectbox("Device", devices, key="fit_device")
        objective = c2.selectbox("Objective", ["latency", "memory"], key="fit_objective")
        st.caption("Fits on the device's most measured protocol, holding out a fifth of the measurements (at least "
                   "2) so its error is shown below; `lts surrogate fit --hold-out 0` trains on every one.")
        if st.form_submit_button("Fit", type="primary"):
            try:
                with st.spinner("Fitting..."):
                    fitted = guarded.fit_surrogate(current_user(), s, device, objective)
            except LtsError as exc:
                st.error(str(exc))
            else:
                held = (fitted.figures.get("held_out") or {}).get("n") or 0
                st.success(f"Fitted v{fitted.version} ({fitted.model.kind}) on {len(fitted.train_ids)} "
                           f"measurements; {held} held out.")


fit_form()
table = surrogate_choices(s)
if table.empty:
    st.info("No surrogate yet. After a search has measured a few dozen architectures on a device, fit one: "
            "`lts surrogate fit --device-name NAME`; `lts search --surrogate` then measures only the promising children.")
    st.stop()

st.caption("Figures on held-out architectures (measured, not trained on). params / flops: a power law of decoder "
           "params or FLOPs fitted on the same training set, for comparison. coverage_1sd: share within one predicted "
           "standard deviation (68% if the uncertainty is calibrated).")
data_table(table.drop(columns=["surrogate_id"]))

labels = [f"{r.device} · {r.protocol} · {r.objective} · v{r.version} ({r.model})" for r in table.itertuples()]
pick = st.selectbox("Surrogate", range(len(labels)), format_func=lambda i: labels[i], key="surrogate_pick")
chosen = table.iloc[pick]


@st.cache_data(show_spinner="Refitting the surrogate from its training measurements...", max_entries=16)
def _points(db: str, surrogate_id: str):
    return heldout_points(s, surrogate_id)


try:
    pts = _points(str(s.path), chosen["surrogate_id"])
except LtsError as exc:
    st.error(str(exc))
    st.stop()
unit = "ms" if chosen["objective"] == "latency" else "MB"
if pts.empty:
    st.caption("Every measured architecture of this device was used for training: nothing held out to plot.")
else:
    fig, drawn = heldout_scatter(pts, chosen["objective"], unit)
    st.plotly_chart(fig, key="surrogate_scatter")
    within = float((pts["error_pct"].abs() <= 10).mean() * 100)
    st.caption(f"{len(pts):,} held-out architectures · {within:.1f}% within ±10% · worst "
               f"{pts['error_pct'].abs().max():.1f}%" + ("" if drawn == len(pts) else
               f" · drawn: {drawn:,} (the {WORST:,} worst and a seeded sample of the rest; the figures are over all)"))

runs = assisted_runs(s)
if runs:
    st.subheader("Surrogate-assisted searches: predictions against the later measurements")
    run_id = st.selectbox("Run", runs, key="surrogate_run")
    preds = run_predictions(s, run_id)
    measured = preds[preds["measured"].notna()]
    c1, c2, c3 = st.columns(3)
    c1.metric("children screened", f"{preds['arch_id'].nunique():,}")
    c2.metric("measured", f"{measured['arch_id'].nunique():,}")
    c3.metric("mean abs. error of measured", f"{measured['error_pct'].abs().mean():.1f}%" if len(measured) else "-")
    if len(measured):
        fig = go.Figure()
        for obj, part in measured.groupby("objective"):
            fig.add_trace(go.Scatter(y=part["error_pct"], mode="lines+markers", name=obj))
        fig.add_hrect(y0=-10, y1=10, fillcolor="rgba(99,110,250,0.12)", line_width=0)
        fig.update_layout(xaxis_title="measured child, in order", yaxis_title="prediction error (%)", height=320)
        st.plotly_chart(fig, key="surrogate_drift_chart")
        st.caption("Errors drifting out of the band during a run mean the device changed or the search left the "
                   "region the surrogate was trained on.")
    checks = drift_checks(s, run_id)
    if not checks.empty:
        st.subheader("Drift checks (reference architecture re-measured)")
        data_table(checks)
