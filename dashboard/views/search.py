"""Launch searches on this host or on a Ray cluster's device, and follow them live from the database."""

from __future__ import annotations

import socket

import streamlit as st

from common import cancel_then_rerun, db_path, launched, run_label, store
from lts.errors import LtsError
from lts.explore import active_runs, runs_table
from lts.search.defaults import OBJECTIVES as DEFAULT_OBJECTIVES, default_population
from lts.objectives import Constraints, objective_names
from lts.search.strategies import STRATEGIES
from lts.search.session import device_holder, queue_position
from lts.space.config import parse_json
from lts.space.ranges import SearchSpace
from lts.surrogate.assist import SurrogateSettings
from lts.team import guarded
from team_page import can, current_user, forget_ray_devices, limits, ray_devices, viewer_note
from tables import DATETIME_FORMAT, data_table

DEMO_SPACE = {"family": "gpt2", "name": "demo", "n_layer": {"min": 1, "max": 4}, "d_model": [64, 128],
              "d_embed": [64, 128], "div_val": [1], "n_head": [2, 4], "d_inner": {"min": 128, "max": 512, "step": 64},
              "vocab_size": 4096, "tgt_len": 64}

s = store()
lim = limits()
st.title("Search")


def demo_device() -> str:
    return f"{socket.gethostname()}-demo"


def start(space, device, **kw) -> None:
    """Launch through the guarded call: the role and the limits are checked there, and audited."""
    launched(lambda: guarded.launch_search(current_user(), s, db_path(), space, device, limits=lim, **kw),
             "run", "last_run")


runs = runs_table(s)
if runs.empty:
    st.info(f"No searches yet. Start one below, or run a short demo: about 20 small GPT-2 models, 1-2 minutes here "
            f"(measurement workers start first), recorded on a device of its own, {demo_device()}, so its tiny "
            "models never mix into this host's results.")
    if can("launch") and st.button("Run a demo search", type="primary", key="demo"):
        start(SearchSpace.from_dict(DEMO_SPACE), demo_device(), budget=min(20, lim.max_budget), population=8,
              generation=4, objectives="proxy,latency,memory")
        st.rerun()

if not can("launch"):
    viewer_note("starting a search")
else:
    with st.expander("New search", expanded=runs.empty):
        running = guarded.running_searches(s)
        st.caption(f"This dashboard's limits: {lim.max_budget} architectures per search, "
                   f"{lim.max_concurrent_searches} searches at once ({running} running now).")
        # Outside the form: typing an address lists that cluster's devices (cached for 30 s).
        ray_address = st.text_input("Ray cluster address (optional: measure on a cluster's device)", key="ray_address",
                                    placeholder="HEAD:6379", help="Devices join with ray start --address HEAD:6379 "
                                    "--resources '{\"lts-device:NAME\": 1}'; blank: measure on this host.").strip()
        ray_names: list[str] = []
        if ray_address:
            try:
                ray_names = [d.name for d in ray_devices(ray_address)]
            except LtsError as exc:
                st.error(f"Ray cluster {ray_address}: {exc}")
            else:
                if not ray_names:
                    st.warning(f"No lts devices in the cluster at {ray_address}: on a device, run ray start --address "
                               f"{ray_address} --resources '{{\"lts-device:NAME\": 1}}'.")
            if st.button("Ask the cluster again", key="ray_refresh"):
                forget_ray_devices()
                st.rerun()
        with st.form("new_search"):
            c1, c2, c3 = st.columns(3)
            family = c1.selectbox("Space", ["gpt2", "transxl"], help="LTS's search spaces")
            if ray_names:
                device = c2.selectbox("Device (Ray cluster)", ray_names, key="ray_device")
            else:
                device = c2.text_input("Device name", value=socket.gethostname())
            strategy = c3.selectbox("Strategy", list(STRATEGIES))
            custom = st.text_area("Custom space (JSON, optional)", placeholder='{"n_layer": {"min": 2, "max": 8}, "vocab_size": 4096}')
            c1, c2, c3, c4 = st.columns(4)
            objectives = c1.multiselect("Objectives", objective_names(), default=list(DEFAULT_OBJECTIVES),
                                        help="proxy = decoder parameters; every proxy of `lts proxies list` (zerolm, "
                                             "synflow, ...) is one too, computed for each candidate")
            budget = c2.number_input("Budget (architectures)", 1, lim.max_budget, min(50, lim.max_budget),
                                     help=f"at most {lim.max_budget} on this dashboard")
            seed = c3.number_input("Seed", 0, 2**31 - 1, 0)
            threads = c4.number_input("Threads", 1, 64, 1)
            c1, c2, c3 = st.columns(3)
            max_lat = c1.number_input("Max latency (ms, 0 = none)", 0.0, value=0.0)
            max_mem = c2.number_input("Max memory (MB, 0 = none)", 0.0, value=0.0)
            min_params = c3.number_input("Min decoder params (0 = none)", 0, value=0)
            c1, c2, c3, c4 = st.columns(4)
            workload = c1.selectbox("Workload", ["forward", "generate"],
                                    help="forward: one forward over the space's tgt_len tokens; generate: a prompt's "
                                         "prefill, then one token at a time with the KV cache / memory (objectives "
                                         "prefill, decode, tokens_per_s)")
            prompt_len = c2.number_input("Prompt tokens (generate)", 1, 65_536, 64)
            new_tokens = c3.number_input("New tokens (generate)", 1, 65_536, 32)
            quant = c4.selectbox("Precision", ["none", "int8"],
                                 help="int8: the decoder's Linear layers dynamically quantized (CPU); what it does "
                                      "to a trained model's perplexity is not measured: validate before shipping")
            c1, c2, c3 = st.columns(3)
            backend = c1.selectbox("Backend", ["torch", "onnxruntime"],
                                   help="onnxruntime: each candidate exported to ONNX and timed in an ONNX Runtime "
                                        "CPU session (forward workload, fp32)")
            batch = c2.number_input("Batch size", 1, 4096, 1, help="sequences per timed forward (lts search --batch)")
            seq_len = c3.number_input("Sequence length (0 = the space's tgt_len)", 0, 65_536, 0,
                                      help="tokens per sequence in the forward workload (lts search --seq-len)")
            screen = st.checkbox("Screen children with the cost surrogate (measure only those predicted near the front)",
                                 value=False, help="lts search --surrogate: see the Cost surrogates page for its error")
            # An address whose devices could not be listed must not quietly fall back to this host.
            if st.form_submit_button("Start search", type="primary", disabled=bool(ray_address and not ray_names)):
                try:
                    given = parse_json(custom, "custom space") if custom.strip() else {}
                    if not isinstance(given, dict):
                        raise LtsError("custom space: give a JSON object of space fields")
                    space = SearchSpace.from_dict({"family": family, **given})
                except LtsError as exc:
                    st.error(f"Custom space: {exc}")
                else:
                    try:
                        constraints = Constraints(max_lat or None, max_mem or None, min_params or None)
                    except LtsError as exc:
                        st.error(str(exc))
                    else:
                        start(space, device, ray_address=ray_address if ray_names else None, budget=int(budget),
                              seed=int(seed), threads=int(threads), strategy=strategy,
                              objectives=",".join(objectives), constraints=constraints,
                              surrogate=SurrogateSettings() if screen else None, population=default_population(screen),
                              workload=workload, prompt_len=int(prompt_len), new_tokens=int(new_tokens),
                              quant=quant, backend=backend, batch=int(batch), seq_len=int(seq_len) or None)


@st.fragment(run_every=2)
def live() -> None:
    table = runs_table(s)
    if table.empty:
        return
    active = active_runs(s)  # plain rows from the store: None, never NaN, for a missing message or budget
    st.subheader(f"Running ({len(active)})")
    if not active:
        st.caption("No search is running.")
    for row in active:
        with st.container(border=True):
            st.markdown(f"**{run_label(row)}**")
            done = row["n_evaluated"] / row["budget"] if row["budget"] else 0.0
            hv = "-" if row["hypervolume"] is None else f"{row['hypervolume']:.4f}"
            position = queue_position(row)
            waiting = f"queued (position {position}) · " if position is not None else ""
            st.progress(min(done, 1.0), text=f"{waiting}{row['n_evaluated']} / {row['budget'] or '∞'} evaluated · "
                                             f"frontier {row['frontier_size']} · hypervolume {hv}")
            if position is None and row["status"] == "created" and not row["n_evaluated"]:
                st.caption(":material/hourglass_top: starting: the search process and its measuring workers load "
                           "torch before the first architecture (tens of seconds on a busy 2-core host).")
            if position is not None:
                holder = device_holder()
                st.caption(f":material/hourglass_top: queued (position {position}): waiting for the device, which "
                           f"measures one architecture at a time for every search on this host"
                           + (f"; {holder} holds it now." if holder else "."))
            if row["status"] != "cancelling" and can("cancel") and st.button("Cancel", key=f"cancel-{row['run_id']}"):
                cancel_then_rerun(lambda run_id=row["run_id"]: guarded.cancel_search(current_user(), s, run_id))
    st.subheader("All runs")
    show = table[["run_id", "space", "strategy", "device_name", "status", "n_evaluated", "budget",
                  "frontier_size", "hypervolume", "created_at", "elapsed", "message"]].assign(
        frontier="frontier?run=" + table["run_id"])
    data_table(show, column_config={
        "created_at": st.column_config.DatetimeColumn("started", format=DATETIME_FORMAT),
        "frontier": st.column_config.LinkColumn("frontier", display_text="open", help="the run on the Frontier explorer"),
    })


live()
