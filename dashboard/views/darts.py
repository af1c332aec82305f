"""DARTS: the differentiable search as a background job -- launch, follow, cancel, resume, and what it derived."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from common import cancel_then_rerun, db_path, launched, rerun_when_jobs_move, store
from lts.darts.defaults import DEFAULT_OPS
from lts.darts.session import active_darts, list_darts
from lts.errors import LtsError
from lts.store import darts as darts_repo
from lts.team import guarded
from team_page import can, current_user, limits, viewer_note
from tables import data_table

s = store()
lim = limits()
st.title("DARTS search")
st.caption("A reversible supernet holds every candidate operation at every feature split; first-order DARTS "
           "trains its weights and the architecture weights alpha together, and the strongest operation of "
           "each split is the derived architecture (`lts darts`). Runs in the background, checkpoints as it "
           "goes, and resumes after a cancel or a crash from its last checkpoint.")


def label(row: darts_repo.DartsRun) -> str:
    spec = row.settings.get("spec", {})
    return (f"{row.darts_id} · {spec.get('n_layer')} layers × {spec.get('d_model')} · {row.status} · "
            f"step {row.step}/{row.steps}")


def start_new(settings: Any) -> None:
    launched(lambda: guarded.launch_darts(current_user(), s, db_path(), settings, limits=lim), "DARTS run",
             "darts_pick", "Reading the corpus and preparing the tokenizer (cached after the first time)...")


runs = list_darts(s)
if not can("launch"):
    viewer_note("starting a DARTS search")
else:
    with st.expander("New DARTS search", expanded=not runs):
        st.caption(f"This dashboard's limits: {lim.max_darts_steps} steps, {lim.max_concurrent_darts} "
                   f"DARTS run(s) at once.")
        with st.form("new_darts"):
            c1, c2, c3, c4 = st.columns(4)
            layers = c1.number_input("Layers", 1, 24, 4)
            d_model = c2.number_input("d_model", 8, 1024, 128, step=8)
            splits = c3.number_input("Splits per layer", 2, 8, 2)
            steps = c4.number_input("Steps", 1, lim.max_darts_steps, min(300, lim.max_darts_steps))
            ops = st.multiselect("Candidate operations", list(DEFAULT_OPS), default=list(DEFAULT_OPS))
            c1, c2, c3, c4 = st.columns(4)
            corpus = c1.text_input("Corpus (file or folder; blank: Jane Austen)", value="")
            tokenizer = c2.selectbox("Tokenizer", ["bpe", "byte"])
            vocab = c3.number_input("BPE vocabulary", 257, 65536, 2048)
            seed = c4.number_input("Seed", 0, 2**31 - 1, 0)
            c1, c2, c3, c4 = st.columns(4)
            seq_len = c1.number_input("Sequence length", 4, 2048, 64)
            batch = c2.number_input("Batch size", 1, 512, 8)
            threads = c3.number_input("Torch threads", 1, 64, 1)
            every = c4.number_input("Checkpoint every (steps)", 1, 100000, 50)
            if st.form_submit_button("Start DARTS search", type="primary"):
                try:
                    from lts.darts.search import DartsSettings
                    from lts.darts.supernet import SupernetSpec
                    from lts.text.tokenizer import TokenizerSpec

                    spec = SupernetSpec(n_layer=int(layers), d_model=int(d_model), n_split=int(splits),
                                        candidates=tuple(ops), tgt_len=int(seq_len))
                    new = DartsSettings(spec=spec, steps=int(steps), batch_size=int(batch), seed=int(seed),
                                        threads=int(threads), corpus=corpus.strip() or None,
                                        tokenizer=TokenizerSpec(tokenizer, int(vocab) if tokenizer == "bpe" else 256),
                                        checkpoint_every=int(every))
                except LtsError as exc:
                    st.error(str(exc))
                else:
                    start_new(new)


@st.fragment(run_every=3)
def live() -> None:
    active = active_darts(s)
    # status only: steps move every few seconds, and the page's results change when a search ends
    rerun_when_jobs_move("darts", tuple((r.darts_id, r.status) for r in active))
    for row in active:
        with st.container(border=True):
            st.markdown(f"**{label(row)}**")
            st.progress(min(1.0, row.step / max(1, row.steps)),
                        text=f"{row.step} / {row.steps} steps · {row.elapsed or 0:.0f} s · {row.message or row.status}")
            if row.status != "cancelling" and can("cancel") and st.button("Cancel", key=f"dcancel-{row.darts_id}"):
                cancel_then_rerun(lambda did=row.darts_id: guarded.cancel_darts(current_user(), s, did))


live()

runs = list_darts(s)
if not runs:
    st.info("No DARTS runs in this database yet. Start one above, or from a shell with "
            "`lts darts --steps 300` (add `--background` to detach).")
    st.stop()

data_table(pd.DataFrame([{"darts_id": r.darts_id, "status": r.status, "step": r.step, "steps": r.steps,
                         "seed": r.seed, "derived": r.derived_arch_id, "elapsed_s": r.elapsed or 0.0,
                         "created_at": r.created_at, "message": r.message} for r in runs]),
           key="darts_runs")

ids = [r.darts_id for r in runs]
by_id = {r.darts_id: r for r in runs}
if st.session_state.get("darts_pick") not in ids:
    st.session_state["darts_pick"] = ids[0]
did = st.selectbox("DARTS run", ids, key="darts_pick", format_func=lambda v: label(by_id[v]))
row = by_id[did]
if row.message:
    st.caption(f"**status**: {row.status} · {row.message}")
if row.status in ("stopped", "cancelled", "failed") and can("launch"):
    if st.button("Resume", key=f"dresume-{did}", help="continue from its last checkpoint in a detached process"):
        try:
            guarded.resume_darts(current_user(), s, db_path(), did)
        except LtsError as exc:
            st.error(str(exc))
        else:
            st.toast(f"Resumed DARTS run {did}")
            st.rerun()

history = pd.DataFrame(row.progress.get("history", []))
if not history.empty:
    long = history.melt(id_vars=["step"], value_vars=[c for c in ("train_loss", "arch_loss") if c in history],
                        var_name="loss", value_name="value").dropna()
    st.plotly_chart(px.line(long, x="step", y="value", color="loss", height=320,
                            labels={"value": "cross-entropy"}), key="darts_history")

result = row.result
snapshot = (result or {}).get("final_weights") or next(iter(row.progress.get("alpha_snapshots", [])[-1:]), {}).get("weights")
candidates = (result or {}).get("candidates") or row.settings.get("spec", {}).get("candidates", [])
if snapshot:
    st.subheader("softmax(alpha)" + (" (final)" if result else " (latest)"))
    data_table(pd.DataFrame([{"layer": i, "split": k, **dict(zip(candidates, w))}
                               for i, layer in enumerate(snapshot) for k, w in enumerate(layer)]),
                 key="darts_alpha")
if result:
    from lts.decide.layers import layer_table
    from lts.space.config import config_from_dict

    cfg = config_from_dict(result["derived"])
    st.subheader(f"Derived architecture {cfg.arch_id}")
    st.caption(f"supernet held-out loss {result['supernet_valid_loss']:.3f} · open it on the Architecture page, "
               f"or train it: `lts validate --run {did}`")
    data_table(layer_table(cfg), key="darts_derived")
