"""FlexiBERT proxies and the benchmark table: the proxies on encoders, ZeroLM's alpha procedure, the CLI, the page."""

import csv
import gzip
import io
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from lts.cli import main
from lts.flexibert import benchmark as fb
from lts.flexibert.config import config_from_dict
from lts.flexibert.model import build_flexibert, corrupt
from lts.flexibert.params import total_params
from lts.flexibert.ranking import cross_validated_alpha, fold_of, metric_rows
from lts.flexibert.records import SHIPPED_RECORDS, load_records
from lts.flexibert.space import FlexiBertSpace
from lts.proxies import encoders as fp
from lts.proxies import zero_cost, zerolm
from lts.proxies.compute import EncoderProxySettings
from lts.validate.correlations import BootstrapSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")
APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
DATA_PROXIES = ("grad_norm", "snip", "synflow", "jacob_cov", "naswot", "head_confidence")


def layer(op="SA", param="SDP", heads=2, ffd=32, nff=1) -> dict:
    return {"operation_type": op, "operation_parameter": param, "num_operation_heads": heads,
            "feed_forward_dimension": ffd, "num_feed_forward": nff}


def tiny(*layers, d=16):
    return config_from_dict({"hidden_size": d, "encoder_layers": list(layers), "vocab_size": 300,
                             "embedding_size": 8, "max_position_embeddings": 16})


def tokens(batch=4, length=9, seed=0):
    return torch.randint(1, 300, (batch, length), generator=torch.Generator().manual_seed(seed))


MIXED = (layer("SA", "WMA", 2, 32, 3), layer("LT", "DFT", 4), layer("DSC", 3, 4, 24, 2), layer("LT", "DCT"))


# -- the zero-cost proxies on encoders -------------------------------------------------------
def test_zero_cost_proxies_apply_to_encoders_deterministically_and_without_side_effects():
    cfg = tiny(*MIXED)
    t = tokens()
    model = build_flexibert(cfg, seed=7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = {n: getattr(zero_cost, n)(model, t) for n in DATA_PROXIES}
    again = {n: getattr(zero_cost, n)(build_flexibert(cfg, seed=7), t) for n in DATA_PROXIES}
    assert first == again and all(math.isfinite(v) for v in first.values()), first
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    other = {n: getattr(zero_cost, n)(build_flexibert(cfg, seed=8), t) for n in ("grad_norm", "snip", "synflow")}
    assert all(other[n] != first[n] for n in other)


def test_grad_norm_and_snip_use_replaced_token_detection_over_the_encoder():
    cfg = tiny(*MIXED)
    t = tokens()
    model = build_flexibert(cfg, seed=0)
    corrupted, replaced = corrupt(t)
    logits = model.discriminator(model(corrupted))
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, replaced.float())
    loss.backward()
    params = [p for layer_ in model.layers for p in layer_.parameters()]
    fresh = build_flexibert(cfg, seed=0)
    assert zero_cost.grad_norm(fresh, t) == pytest.approx(sum(float(p.grad.norm()) for p in params), rel=1e-5)
    assert zero_cost.snip(fresh, t) == pytest.approx(sum(float((p.detach() * p.grad).abs().sum()) for p in params),
                                                     rel=1e-5)


def test_head_confidence_counts_attending_heads_only():
    t = tokens(length=6)
    assert zero_cost.head_confidence(build_flexibert(tiny(layer("LT", "DFT"), layer("LT", "DCT"))), t) == 0.0
    model = build_flexibert(tiny(layer("SA", "SDP", 4), layer("DSC", 3, 4)))
    with torch.no_grad():  # zero queries: every score 0, every query attends uniformly to the 6 positions
        model.layers[0].operation.query.weight.zero_()
        model.layers[0].operation.query.bias.zero_()
        model.layers[1].operation.query.weight.zero_()
        model.layers[1].operation.query.bias.zero_()
    # 4 SA heads + the 2 attending heads of DSC, each with max probability 1/6
    assert zero_cost.head_confidence(model, t) == pytest.approx(6 / 6)


def test_naswot_reads_every_ffn_hidden_layer_and_is_singular_for_repeated_sequences():
    model = build_flexibert(tiny(layer(nff=3), layer("LT", "DCT", 2, 24, 2)))
    assert len(model.proxy_hidden_units()) == 5
    t = tokens()
    assert math.isfinite(zero_cost.naswot(model, t))
    t[1] = t[0]
    assert zero_cost.naswot(model, t) == -math.inf


# -- ZeroLM on encoders ----------------------------------------------------------------------
def test_zerolm_by_hand_on_an_encoder():
    model = build_flexibert(tiny(layer("SA", "SDP", 2, 32, 2), layer("LT", "DFT", 4), d=8))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    # SA: Q, K, V: 2 head blocks 4x8 each -> 32/4 = 8 per block, 16 per matrix, 48; output 8x8 -> 8. LT: 4 blocks
    # 2x8 -> 16/2 = 8 each, 32. FFN: 32x8 -> 256/8 = 32, 32x32 -> 32, 8x32 -> 32 (layer 0); 32 + 32 (layer 1).
    assert zerolm.weight_parts(model) == zerolm.ZeroLMParts(ffn=96.0 + 64.0, attn=56.0 + 32.0)


def test_zerolm_shapes_match_the_model_and_its_init_expectation():
    recs = load_records()[:60]
    for r in recs:
        attn, ffn = build_flexibert(r.config, device="meta").zerolm_matrices()
        want_attn, want_ffn = fp.zerolm_shapes(r.config)
        assert [(w.shape[0], w.shape[1], b) for w, b in attn] == want_attn
        assert [(w.shape[0], w.shape[1], b) for w, b in ffn] == want_ffn
    cfg = recs[0].config
    got, exp = zerolm.weight_parts(build_flexibert(cfg, seed=3)), fp.expected_parts(cfg)
    assert got.ffn == pytest.approx(exp.ffn, rel=0.01) and got.attn == pytest.approx(exp.attn, rel=0.01)


def test_data_free_alpha_is_on_the_grid_and_reproducible():
    a = fp.heuristic_alpha()
    assert a in zerolm.ALPHA_GRID and fp.heuristic_alpha.__wrapped__() == a


# -- the alpha procedure and the rows ---------------------------------------------------------
def test_folds_depend_on_the_ids_not_the_order():
    ids = list(range(100, 137))
    f = fold_of(ids)
    g = fold_of(ids[::-1])
    assert list(f) == list(g[::-1]) and sorted(np.bincount(f)) == [7, 7, 7, 8, 8]


def test_cross_validation_scores_each_record_with_an_alpha_fitted_without_it():
    rng = np.random.default_rng(0)
    ffn, attn = rng.uniform(1, 2, 60), rng.uniform(1, 2, 60)
    parts = [zerolm.ZeroLMParts(float(f), float(a)) for f, a in zip(ffn, attn)]
    glue = ffn + 2.0 * attn  # ranked exactly by alpha = 2
    ids = list(range(60))
    cv = cross_validated_alpha(parts, glue, ids)
    folds = fold_of(ids)
    assert [f.n_held for f in cv.folds] == [12] * 5 and all(f.n_fit == 48 for f in cv.folds)
    for f in cv.folds:
        held = np.flatnonzero(folds == f.fold)
        assert [cv.scores[i] for i in held] == [parts[i].score(f.alpha) for i in held]
        assert f.alpha == pytest.approx(2.0, rel=0.5) and f.spearman > 0.95


def test_metric_rows_signs_intervals_and_top_overlap():
    glue = np.linspace(60, 80, 40)
    rows = metric_rows({"good": glue * 3, "bad": -glue, "noisy": glue + np.sin(np.arange(40)) * 8}, glue, "t",
                       BootstrapSettings(200))
    by = {r["proxy"]: r for r in rows}
    assert by["good"]["spearman"] == pytest.approx(1) and by["good"]["spearman_lo"] == pytest.approx(1)
    assert by["good"]["top10_overlap"] == 1.0 and by["bad"]["kendall"] == pytest.approx(-1)
    assert by["noisy"]["spearman_lo"] < by["noisy"]["spearman"] < by["noisy"]["spearman_hi"]


# -- the CLI ---------------------------------------------------------------------------------
def _write_records(path: Path, recs) -> Path:
    path.write_text(json.dumps(recs))
    return path


def _cli(capsys, *argv):
    rc = main(["proxies", "benchmark", "flexibert", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_ranks_any_records_file_with_the_published_columns_beside(tmp_path, capsys):
    raw = json.loads(gzip.decompress(SHIPPED_RECORDS.read_bytes()))[:12]
    data = _write_records(tmp_path / "some.json", raw)
    rc, out, _ = _cli(capsys, "--data", str(data), "--proxies", "total_params,encoder_params", "--format", "json",
                      "--bootstrap", "50")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rc == 0 and {r["source"] for r in rows} == {"lts", "ZeroLM paper (500)", "reference README (500)"}
    ours = {r["proxy"]: r for r in rows if r["source"] == "lts"}
    assert set(ours) == {"total_params", "encoder_params"} and ours["total_params"]["n"] == 12
    rc, out, _ = _cli(capsys, "--data", str(data), "--published", str(fb.SHIPPED_PUBLISHED), "--proxies",
                      "total_params", "--format", "csv", "--bootstrap", "50")
    table = list(csv.DictReader(io.StringIO(out)))
    published = [r for r in table if r["source"] == "published"]
    assert rc == 0 and len(published) == 15 and all(r["n"] == "12" for r in published)
    assert "reproduces 12 of 12 exactly" in [r for r in published if r["proxy"] == "Number of Parameters"][0]["note"]


def test_cli_fitted_alpha_is_held_out_on_architectures_outside_the_dev_half(tmp_path, capsys):
    space = FlexiBertSpace.default()
    rng = random.Random(11)
    cfgs = [space.sample(rng) for _ in range(40)]
    cfgs = [c for c in cfgs if c.hidden_size == 128 and c.n_layer == 2][:12]
    recs = [{"id": 10_000 + i, "scores": {"glue": 60 + total_params(c) / 1e6},
             "hparams": {"model_hparam_overrides": {"hidden_size": c.hidden_size,
                                                    "nas_config": {"encoder_layers": c.to_dict()["encoder_layers"]}}}}
            for i, c in enumerate(cfgs)]
    data = _write_records(tmp_path / "new.json", recs)
    rc, out, _ = _cli(capsys, "--data", str(data), "--proxies", "zerolm", "--format", "json", "--bootstrap", "20")
    rows = {r["proxy"]: r for r in map(json.loads, out.splitlines()) if r["source"] == "lts"}
    assert rc == 0 and {"zerolm", "zerolm_cv", "zerolm_devfit", "zerolm_ffn", "zerolm_attn"} <= set(rows)
    assert "held-out: none of these records was in the fit" in rows["zerolm_devfit"]["note"]
    assert rows["zerolm"]["seconds_per_arch"] > 0


def test_cli_errors_are_one_line(tmp_path, capsys):
    rc, _, err = _cli(capsys, "--data", str(tmp_path / "nope.json"))
    assert rc == 2 and err.count("\n") == 1 and "no such file" in err
    bad = _write_records(tmp_path / "bad.json", [{"id": 1, "scores": {"glue": 70},
                                                  "hparams": {"model_hparam_overrides": {"hidden_size": 100,
                                                  "nas_config": {"encoder_layers": [layer(heads=3)]}}}}])
    rc, _, err = _cli(capsys, "--data", str(bad))
    assert rc == 2 and "record 0 (id 1): layer 0: num_operation_heads=3 does not divide hidden_size=100" in err
    untrained = _write_records(tmp_path / "untrained.json", [
        {"id": i, "completed": False, "scores": {"glue": 0},
         "hparams": {"model_hparam_overrides": {"hidden_size": 128, "nas_config": {"encoder_layers": [layer()]}}}}
        for i in range(3)])
    rc, _, err = _cli(capsys, "--data", str(untrained))
    assert rc == 2 and "0 record(s) with a GLUE score" in err
    rc, _, err = _cli(capsys, "--proxies", "flops")
    assert rc == 2 and "unknown FlexiBERT proxy 'flops'" in err


@pytest.fixture(scope="module")
def shipped():
    result = fb.shipped_result()
    if result is None:
        pytest.fail(f"the shipped result file is missing: run {fb.CACHE_COMMAND}")
    return result


def test_the_shipped_result_file_covers_the_dev_half(shipped):
    recs = {r.id: r for r in load_records()}
    assert len(shipped.records) == 250 and {r["id"] for r in shipped.records} == set(recs)
    assert set(shipped.proxy_names()) == set(fb.PROXIES)
    for r in shipped.records:
        cfg = recs[r["id"]].config
        assert r["arch_id"] == cfg.arch_id and r["values"]["total_params"] == total_params(cfg)
    assert shipped.meta["settings"] == EncoderProxySettings().to_dict()
    ours = {r["proxy"] for r in shipped.rows if r["source"] == "lts"}
    assert set(fb.PROXIES) | {"zerolm_cv", "zerolm_devfit"} == ours
    assert len(shipped.alpha["cv"]["folds"]) == 5


def test_cli_default_prints_the_shipped_table_and_the_alpha_procedure(capsys, shipped):
    rc, out, _ = _cli(capsys, "--no-progress")
    assert rc == 0 and "values from lts/data/flexibert/proxy_values.json" in out
    for name in ("zerolm_cv", "zerolm_devfit", "Number of Parameters", "ZeroLM paper (500)", "fold 4:",
                 "alpha, data-free"):
        assert name in out


# -- the dashboard ----------------------------------------------------------------------------
def test_validation_page_shows_the_flexibert_table_and_scatter(monkeypatch, tmp_path, shipped):
    monkeypatch.setenv("LTS_DB", str(tmp_path / "empty.db"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/validation.py")
    at.run()
    assert not at.exception and not at.error
    table = [df for df in at.dataframe if "top10_overlap" in df.value.columns and "kendall_lo" in df.value.columns]
    assert table and set(table[0].value["proxy"]) >= {"zerolm", "zerolm_cv", "Number of Parameters"}
    def glue_chart() -> dict:
        charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
        glue = [c for c in charts if c["layout"].get("yaxis", {}).get("title", {}).get("text") == "GLUE score"]
        assert len(glue) == 1
        return glue[0]

    glue_chart()
    assert not at.get("vega_lite_chart")  # one charting library on the page
    pick = [s for s in at.selectbox if s.label == "Proxy against GLUE"][0]
    pick.set_value("zerolm").run()
    assert not at.exception
    spec = glue_chart()
    assert spec["layout"]["title"]["text"].startswith("zerolm · Spearman")
    assert len(spec["data"][0]["customdata"]) == 250
