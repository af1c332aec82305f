"""One architecture: per-layer settings (table and heatmap), parameter breakdown, every measurement,
downloads; and two or three architectures side by side with their differences highlighted."""

from __future__ import annotations

import json

import pandas as pd
import plotly.express as px
import streamlit as st

from charts import layer_heatmap
from common import linked, store
from lts.store import reads
from lts.store.rows import records
from lts.decide.layers import layer_diff, settings_diff
from lts.errors import LtsError
from lts.explore import architecture_detail, architecture_json, config_summary
from lts.export import hf_zip, selection_json
from lts.models.hf import stock_gpt2_config_dict, why_not_stock_gpt2
from tables import data_table

s = store()
st.title("Architecture")
recent = reads.frontier_architectures(s, 200)
if "arch_input" not in st.session_state:  # a link (?arch=...), the linked selection or the best frontier point, once
    st.session_state["arch_input"] = st.query_params.get("arch") or next(iter(linked()), None) or (recent[0] if recent else "")
arch_id = st.text_input("Architecture id", key="arch_input", help="16 hex digits; pick points on the Frontier page").strip()
if not arch_id:
    st.info("No architecture yet. Run a search, then open a frontier point from the Frontier explorer.")
    st.stop()
try:
    d = architecture_detail(s, arch_id)
except LtsError as exc:
    st.error(str(exc))
    st.stop()
st.query_params["arch"] = arch_id
cfg, row = d["config"], d["row"]

c1, c2, c3, c4 = st.columns(4)
c1.metric("decoder params", f"{row['decoder_params']:,}")
c2.metric("total params", f"{row['total_params']:,}")
c3.metric("GFLOPs / token", f"{row['flops'] / 1e9:.3f}")
c4.metric("layers · d_model", f"{cfg.n_layer} · {cfg.d_model}")
st.caption(config_summary(cfg))

left, right = st.columns(2)
with left:
    st.subheader("Per layer")
    # every layer without scrolling (16 layers is LTS's deepest GPT-2): 35 px a row plus the header
    data_table(d["layers"], height=38 + 35 * len(d["layers"]))
with right:
    st.subheader("Parameters by part")
    parts = pd.DataFrame({"part": list(d["breakdown"]), "parameters": list(d["breakdown"].values())})
    st.plotly_chart(px.bar(parts, x="part", y="parameters", height=300), key="breakdown_chart")
if cfg.family != "darts":
    st.plotly_chart(layer_heatmap(d["layers"].set_index("layer"), "layer x setting (shade: within each setting's range)"),
                    key="layer_heatmap")

st.subheader("Measurements")
if d["measurements"].empty:
    st.caption("Not measured on any device yet.")
else:
    data_table(d["measurements"])
if not d["validation"].empty:
    st.subheader("Validation perplexity")
    data_table(d["validation"])
st.subheader("Runs")
data_table(d["runs"])

c1, c2, c3 = st.columns(3)
c1.download_button("Download config (lts JSON)", architecture_json(s, arch_id), file_name=f"{arch_id}.json",
                   mime="application/json", key="dl_arch")
# built when clicked: importing transformers costs 2-6 s on a cold page
c2.download_button("Download Hugging Face folder (zip)", lambda: hf_zip(s, [arch_id]), file_name=f"{arch_id}.hf.zip",
                   mime="application/zip", key="dl_hf",
                   help="config.json, generation_config.json, the model code, a README with the provenance; the "
                        "weights too when a validation run kept them. AutoModelForCausalLM loads it.")
if why_not_stock_gpt2(cfg) is None:
    c3.download_button("Download stock GPT2Config", lambda: json.dumps(stock_gpt2_config_dict(cfg), indent=2).encode(),
                       file_name=f"{arch_id}.gpt2_config.json", mime="application/json", key="dl_gpt2")
else:
    c3.caption("No stock GPT2LMHeadModel equivalent (per-layer widths or adaptive embeddings): the Hugging Face "
               "folder holds the lts_gpt2 model instead.")

st.subheader("Side by side")
others_default = [a for a in linked() if a != arch_id][:2]
others = st.multiselect("Compare with (up to two)", [a for a in dict.fromkeys([*linked(), *recent]) if a != arch_id],
                        default=others_default,
                        max_selections=2, key="diff_ids", help="the selection made on the deciding pages comes first")
if others:
    details = [d]
    for other in others:
        try:
            details.append(architecture_detail(s, other))
        except LtsError as exc:
            st.error(str(exc))
    ids = [x["row"]["arch_id"] for x in details]
    cfgs = [x["config"] for x in details]
    marked = "background-color: #ffe0b2"
    values, differs = layer_diff(cfgs, ids)
    st.caption("Cells that are not the same in every architecture are shaded; a layer one of them lacks counts as "
               "different.")
    def cell(v) -> str:  # ints stay ints; a layer an architecture lacks is blank
        return "" if v is None or (isinstance(v, float) and v != v) else str(int(v)) if isinstance(v, float) else str(v)

    # Per-cell text with shading: the one table that keeps its own formats (not dashboard.tables').
    st.dataframe(values.style.apply(lambda col: [marked if x else "" for x in differs[col.name]], axis=0)
                 .format(cell), width="stretch")
    glob = settings_diff(cfgs, ids)
    st.dataframe(glob.drop(columns="differs").astype(str).style.apply(
        lambda r: [marked if glob.loc[r.name, "differs"] else "" for _ in r], axis=1), width="stretch")
    rows = []
    for x in details:
        m = x["measurements"]
        entry = {"arch_id": x["row"]["arch_id"], "decoder_params": x["row"]["decoder_params"],
                 "total_params": x["row"]["total_params"]}
        for r in records(m):
            entry[f"latency_ms · {r['device']}"] = r["latency_ms"]
            entry[f"memory_mb · {r['device']}"] = r["peak_memory_mb"]
        if not x["validation"].empty:
            entry["valid_ppl"] = float(x["validation"]["valid_ppl"].min())
        rows.append(entry)
    st.markdown("**Measurements and perplexity**")
    data_table(pd.DataFrame(rows))

with st.expander("Download several architectures as one file"):
    picks = st.multiselect("Architectures", sorted(set(recent) | {arch_id}), default=[arch_id])
    if picks:
        st.download_button("Download selection", selection_json(s, picks), file_name="architectures.json",
                           mime="application/json", key="dl_many")
