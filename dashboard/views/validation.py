"""Validation: how well each proxy ranks architectures by perplexity (published and own runs)."""

from __future__ import annotations

import plotly.express as px
import streamlit as st

import validation_charts
from charts import log_axis
from common import cancel_then_rerun, db_path, launched, rerun_when_jobs_move, run_label, store
from lts.explore import runs_table
from lts.store.rows import records
from lts.flexibert.benchmark import scatter_proxies, shipped_result
from lts.proxies.compare import compare_reference
from lts.reference import correlations, load_reference
from lts.team import guarded
from team_page import can, current_user, limits, viewer_note
from lts.validate import page as own
from lts.validate.candidates import SAMPLING
from lts.validate.page import LaunchForm
from lts.validate.recipe import RECIPES
from tables import data_table

s = store()
lim = limits()
st.title("Validation")

st.subheader("LTS's published models (trained on WikiText-103)")
published = [r for r in load_reference() if r.kind == "random"]
family = st.radio("Family", ["gpt2", "transxl"], horizontal=True)
proxy = st.selectbox("Proxy", ["decoder_params", "total_params", "flops"])
rows = [{"arch_id": r.config.arch_id, "name": r.name, "proxy": r.proxies[proxy], "valid_ppl": r.valid_ppl}
        for r in published if r.family == family]
table = {(c["set"], c["proxy"]): c for c in correlations(published)}
set_name = "random_GPT2_wt103" if family == "gpt2" else "random_TransXL_wt103"
c = table[(set_name, proxy)]
c1, c2, c3 = st.columns(3)
c1.metric("architectures", c["n"])
c2.metric("Spearman", f"{c['spearman']:.3f}")
c3.metric("Kendall", f"{c['kendall']:.3f}")
fig = px.scatter(rows, x="proxy", y="valid_ppl", log_x=True, log_y=True, hover_data=["name", "arch_id"],
                 labels={"proxy": proxy, "valid_ppl": "validation perplexity"}, height=450)
fig.update_xaxes(**log_axis(counts=proxy.endswith("params")))
fig.update_yaxes(**log_axis())
st.plotly_chart(fig, key="reference_scatter")
st.caption("Signs are flipped so +1 means a larger proxy ranks exactly as a lower perplexity.")
data_table([r for r in table.values() if r["set"].startswith("random")])

st.subheader("Proxy comparison on the published models")
st.caption("Every registered proxy (`lts proxies compare --reference`): Spearman, Kendall, the share of the "
           "20 best models among the proxy's top 20, and seconds per architecture on one CPU thread.")
suite = [r for r in compare_reference() if r["family"] == family]
data_table(
    [{k: r[k] for k in ("proxy", "n", "spearman", "kendall", "top10_overlap", "seconds_per_arch", "note")} for r in suite],
    key="proxy_suite",
)

st.subheader("FlexiBERT benchmark: every proxy against GLUE")
st.caption("ZeroLM's headline space: 250 BERT-style encoders (FlexiBERT operations) pre-trained and fine-tuned "
           "on GLUE by Serianni & Kalita (CC-BY-4.0). lts's proxies on each model as specified, with 95% bootstrap "
           "intervals, beside the published proxy columns and the ZeroLM paper's figures "
           "(`lts proxies benchmark flexibert`). +1 = a larger value ranks exactly as a higher GLUE score.")


@st.cache_data(show_spinner=False)
def flexibert() -> object:
    return shipped_result()  # the shipped result file; nothing is recomputed here


fb = flexibert()
if fb is None:
    st.info("No FlexiBERT result file yet: compute it with `lts proxies benchmark flexibert --recompute --write-cache`.")
else:
    data_table(validation_charts.flexibert_frame(fb), key="flexibert_table")
    fb_proxy = st.selectbox("Proxy against GLUE", scatter_proxies(fb), key="flexibert_proxy")
    st.plotly_chart(validation_charts.flexibert_scatter(fb, fb_proxy), key="flexibert_scatter")

st.subheader("Own validation runs")
st.caption("Architectures trained on a real corpus with one fixed recipe: how well does each proxy rank them?")


def start(form: LaunchForm) -> None:
    launched(lambda: guarded.launch_validation(current_user(), s, db_path(), form, limits=lim), "validation",
             "validation_pick", "Reading the corpus and training the tokenizer (cached after the first time)...")


if not can("launch"):
    viewer_note("starting a validation run")
else:
    with st.expander("New validation run", expanded=not own.runs(s)):
        st.caption(f"This dashboard's limits: {lim.max_validation_archs} architectures, {lim.max_validation_steps} "
                   f"steps each, {lim.max_concurrent_validations} validation run(s) at once.")
        with st.form("new_validation"):
            d = LaunchForm()
            c1, c2, c3, c4 = st.columns(4)
            family = c1.selectbox("Space", ["gpt2", "transxl"], help="a small validation space of this family")
            n_archs = c2.number_input("Architectures", 2, max(2, lim.max_validation_archs),
                                      min(d.n_archs, max(2, lim.max_validation_archs)))
            steps = c3.number_input("Steps per architecture", 1, lim.max_validation_steps,
                                    min(d.steps, lim.max_validation_steps))
            workers = c4.number_input("Workers", 1, 64, min(d.workers, own.cpu_count()))
            c1, c2, c3, c4 = st.columns(4)
            corpus = c1.text_input("Corpus (file or folder; blank: Jane Austen)", value="")
            NO_RUN = ""
            search_runs = {r["run_id"]: run_label(r) for r in records(runs_table(s)) if r["frontier_size"]}
            run_id = c2.selectbox("Search run (optional: train its frontier)", [NO_RUN, *search_runs],
                                  format_func=lambda r: search_runs.get(r, "none: sample the space"),
                                  help="train the architectures on this run's frontier instead of a sample of "
                                       "the space (its family is used)")
            vocab = c3.number_input("BPE vocabulary", 257, 65536, d.vocab)
            seed = c4.number_input("Seed", 0, 2**31 - 1, d.seed)
            keep = c1.number_input("Keep trained weights up to (MB each; 0: none)", 0.0, 1000.0, d.keep_weights_mb,
                                   help="kept in the database; the Architecture page then downloads the model "
                                        "trained, and `lts export ARCH --trained` writes it")
            names = list(RECIPES)
            recipe = c2.selectbox("Recipe", names, names.index(d.recipe),
                                  help="a named training recipe (lr, warm-up, rate rule); the steps above "
                                       "override its own: " + ", ".join(f"{k} {r.steps}" for k, r in RECIPES.items()))
            sampling = c3.selectbox("Sampling", list(SAMPLING), list(SAMPLING).index(d.sampling),
                                    help="cells: spread over decoder parameters and over (depth, width) cells; "
                                         "stratified: over decoder parameters only; random: independent draws")
            if st.form_submit_button("Start validation", type="primary"):
                start(LaunchForm(family=family, n_archs=int(n_archs), steps=int(steps), seed=int(seed),
                                 workers=int(workers), corpus=corpus, vocab=int(vocab), run_id=run_id,
                                 keep_weights_mb=float(keep), recipe=recipe, sampling=sampling))


@st.fragment(run_every=3)
def live() -> None:
    active = own.active(s)
    rerun_when_jobs_move("validation", tuple((r["validation_id"], r["status"], r["n_done"], r["n_failed"])
                                            for r in active))
    for row in active:
        with st.container(border=True):
            st.markdown(f"**{own.label(row)}**")
            st.progress(min(1.0, (row["n_done"] + row["n_failed"]) / max(1, row["n_archs"])),
                        text=f"{row['n_done']} / {row['n_archs']} trained · {row['n_failed']} failed · "
                             f"{row['elapsed'] or 0:.0f} s")
            cancellable = row["status"] != "cancelling" and can("cancel")
            if cancellable and st.button("Cancel", key=f"vcancel-{row['validation_id']}"):
                cancel_then_rerun(lambda vid=row["validation_id"]: guarded.cancel_validation(current_user(), s, vid))


live()

runs = own.runs(s)
if not runs:
    st.info("No validation runs in this database yet. Start one above, or train sampled architectures on a "
            "corpus with `lts validate --space gpt2 -n 12` to see proxy-vs-perplexity for your own data.")
    st.stop()

ids = [r["validation_id"] for r in runs]
by_id = {r["validation_id"]: r for r in runs}
if st.session_state.get("validation_pick") not in ids:
    st.session_state["validation_pick"] = ids[0]
vid = st.selectbox("Validation run", ids, key="validation_pick", format_func=lambda v: own.label(by_id[v]))
row = by_id[vid]
for name, text in own.describe(row).items():
    st.caption(f"**{name}**: {text}")
if row["message"]:
    st.caption(f"**status**: {row['status']} · {row['message']}")


@st.cache_data(show_spinner=False, max_entries=32)
def correlations(rows: list[dict], proxies: list[str]) -> tuple:
    # keyed on the rows themselves: a finished architecture or a proxy added later gives new figures,
    # and a rerun (every widget, every job tick) does not redo 2,000 bootstrap resamples per checkpoint
    return own.correlation_frames(rows, proxies)


result_rows = own.result_rows(s, vid)
frame = own.results_frame(s, vid, result_rows)
corr, curve = correlations(result_rows, own.proxy_columns(s))
if warning := own.untrained_warning(frame):
    st.warning(warning)
done = int((frame["status"] == "done").sum()) if not frame.empty else 0
if done < 2:
    st.info(f"{done} of {len(frame)} architectures trained so far: the correlations appear from two on.")
else:
    cols = st.columns(len(corr))
    for col, c in zip(cols, records(corr)):
        with col:
            st.plotly_chart(validation_charts.scatter(frame, c["proxy"], c), key=f"own_scatter_{c['proxy']}")
            st.metric(f"Spearman · {c['proxy']}", "-" if c["spearman"] is None else f"{c['spearman']:+.3f}",
                      help="95% bootstrap interval over architectures")
            if c["spearman_lo"] is not None:
                st.caption(f"95% CI [{c['spearman_lo']:+.3f}, {c['spearman_hi']:+.3f}] · Kendall "
                           f"{c['kendall']:+.3f} [{c['kendall_lo']:+.3f}, {c['kendall_hi']:+.3f}]")
    data_table(corr, key="own_correlations")
    if not curve.empty:
        st.plotly_chart(validation_charts.curve(curve), key="own_curve")
        st.caption("Each checkpoint ranks the held-out perplexity the models had after that many training tokens "
                   "(same recipe, same batches): a rising curve says the ranking is still converging toward the "
                   "proxy, a flat one that more training would not change it.")
data_table(frame, key="own_results")
