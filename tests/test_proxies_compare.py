"""The proxy registry, the rank metrics, the reference and validation comparisons, and the CLI."""

import json
import random
import time

import numpy as np
import pytest
from scipy import stats

from conftest import small_space
from lts.cli import main
from lts.errors import LtsError
from lts.proxies import compare
from lts.proxies.compute import ProxySettings
from lts.space.counts import decoder_params, flops_per_token, total_params
from lts.proxies.registry import PROXIES, get, names, select
from lts.store.db import Store


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_metadata():
    assert names()[:3] == ["decoder_params", "total_params", "flops"]
    analytic = {"decoder_params", "total_params", "flops", "zerolm_analytic"}
    data = {"synflow", "snip", "grad_norm", "jacob_cov", "naswot", "head_confidence"}
    grad = {"synflow", "snip", "grad_norm", "jacob_cov"}
    assert {"zerolm", "zerolm_ffn", "zerolm_attn"} | analytic | data == set(PROXIES)
    for name, spec in PROXIES.items():
        assert spec.needs_model == (name not in analytic), name
        assert spec.needs_data == (name in data), name
        assert spec.needs_grad == (name in grad), name
        assert spec.higher_is_better
        assert set(spec.metadata()) == {"name", "needs_model", "needs_data", "needs_grad", "higher_is_better", "summary"}
    cfg = small_space("gpt2").sample(random.Random(0))
    assert get("decoder_params").fn(cfg, None, None) == decoder_params(cfg)
    assert get("total_params").fn(cfg, None, None) == total_params(cfg)
    assert get("flops").fn(cfg, None, None) == flops_per_token(cfg)
    assert [s.name for s in select("snip, flops")] == ["snip", "flops"]
    with pytest.raises(LtsError, match="unknown proxy 'fisher'"):
        select("snip,fisher")


def test_top_overlap_on_a_constructed_example():
    ppl = np.arange(20, dtype=float)  # model 0 is the best, then 1, ...; k = 2 of 20
    values = np.zeros(20)
    values[[0, 7]] = [5.0, 9.0]  # the proxy's top two: 7 and 0 -> one of the true top two
    assert compare.top_overlap(values, ppl) == 0.5
    values[1] = 10.0  # now 1 and 7: still one
    assert compare.top_overlap(values, ppl) == 0.5
    assert compare.top_overlap(-ppl, ppl) == 1.0
    assert compare.top_overlap(ppl, ppl) == 0.0
    assert compare.top_overlap(np.zeros(20), ppl) == 1.0  # all tied: first positions win, deterministically
    assert compare.top_overlap(np.r_[np.nan, -ppl[1:]], ppl) == 0.5  # NaN ranks as the worst value
    # k = ceil(0.1 * 25) = 3
    assert compare.top_overlap(-np.arange(25.0), np.r_[0.0, 1.0, 30.0, np.arange(3.0, 25.0)]) == pytest.approx(2 / 3)


def test_rank_metrics_sign_convention():
    ppl = [30.0, 20.0, 10.0, 40.0]
    size = [2.0, 3.0, 4.0, 1.0]  # larger model, lower perplexity
    m = compare.rank_metrics(size, ppl)
    assert m["spearman"] == pytest.approx(1.0) and m["kendall"] == pytest.approx(1.0) and m["n"] == 4
    assert compare.rank_metrics(size, ppl, higher_is_better=False)["spearman"] == pytest.approx(-1.0)
    assert compare.rank_metrics([1.0, 1.0, 1.0, 1.0], ppl)["spearman"] is None


def test_reference_decoder_params_reproduces_the_paper():
    rows = compare.compare_reference(["decoder_params", "total_params"], recompute=True)
    by = {(r["set"], r["proxy"]): r for r in rows}
    assert by[("random_GPT2_wt103", "decoder_params")]["n"] == 200
    assert round(by[("random_GPT2_wt103", "decoder_params")]["spearman"], 3) == 0.967
    assert round(by[("random_TransXL_wt103", "decoder_params")]["spearman"], 3) == 0.974
    assert round(by[("random_GPT2_wt103", "total_params")]["spearman"], 3) == 0.737
    for r in rows:
        assert 0.0 <= r["top10_overlap"] <= 1.0 and r["seconds_per_arch"] < 0.01


def test_reference_comparison_on_a_subset_with_every_proxy(monkeypatch):
    # The smallest published models of each set (some are 40 M-parameter decoders: too slow for a
    # unit test on 2 cores), through the whole path, vocabulary reduction included.
    small = sorted(compare.reference_items(), key=lambda item: decoder_params(item[0]))
    monkeypatch.setattr(compare, "reference_items", lambda limit: [
        item for s in ("random_GPT2_wt103", "random_TransXL_wt103") for item in [i for i in small if i[1]["set"] == s][:limit]])
    rows = compare.compare_reference(limit=4, settings=ProxySettings(batch=2, seq_len=8))
    sets = {r["set"] for r in rows}
    assert sets == {"random_GPT2_wt103", "random_TransXL_wt103"}
    assert {r["proxy"] for r in rows} == set(PROXIES)  # no zerolm_fit: 4 models cannot be cross-fitted
    assert all(r["n"] == 4 for r in rows)
    model_based = [r for r in rows if r["proxy"] in ("snip", "synflow")]
    assert all(r["seconds_per_arch"] > 0 for r in model_based)


def test_shipped_reference_cache_is_current_and_instant():
    doc = compare.load_cache()
    assert doc is not None, f"regenerate with {compare.CACHE_COMMAND}"
    assert doc["settings"] == ProxySettings().to_dict()
    assert set(doc["proxies"]) == set(PROXIES)
    assert len(doc["records"]) == 400
    live = {(r["set"], r["proxy"]): r for r in compare.compare_reference(["decoder_params"], recompute=True)}
    t0 = time.perf_counter()
    cached = compare.compare_reference()
    assert time.perf_counter() - t0 < 1.0
    for r in cached:
        if r["proxy"] == "decoder_params":
            assert r["spearman"] == pytest.approx(live[(r["set"], "decoder_params")]["spearman"])
    # ZeroLM's init-time weight statistic ranks like its analytic expectation (the README's claim)
    for fam_set in ("random_GPT2_wt103", "random_TransXL_wt103"):
        recs = [r for r in doc["records"] if r["set"] == fam_set]
        rho = stats.spearmanr([r["values"]["zerolm"] for r in recs], [r["values"]["zerolm_analytic"] for r in recs])
        assert rho.statistic > 0.99


def _validation_db(path, with_run=True, n=10):
    store = Store(path)
    if not with_run:
        return store
    rng = random.Random(0)
    space = small_space("gpt2", vocab_size=512, cutoffs=[])
    cfgs = [space.sample(rng) for _ in range(n)]
    now = time.time()
    with store.write() as conn:
        conn.execute(
            "INSERT INTO validation_runs (validation_id, family, space_json, corpus_json, tokenizer_json, recipe_json,"
            " seed, n_archs, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            ("v1", "gpt2", "{}", "{}", json.dumps({"kind": "byte", "cache": "/nonexistent.npz"}), "{}", 0, n, "done",
             now, now))
        for i, cfg in enumerate(cfgs):
            store.upsert_architecture(conn, cfg)
            # a made-up perplexity that decreases with decoder parameters, except for one swap
            conn.execute(
                "INSERT INTO validation_results (validation_id, arch_id, position, status, valid_ppl)"
                " VALUES (?,?,?,?,?)", ("v1", cfg.arch_id, i, "done", 1e6 / decoder_params(cfg) + (5.0 if i == 0 else 0)))
    return store, cfgs


def test_compare_validation_against_the_schema(tmp_path):
    store, cfgs = _validation_db(tmp_path / "v.db")
    rows = compare.compare_validation(store, "v1", ["decoder_params", "grad_norm", "zerolm_ffn", "zerolm_attn"],
                                      ProxySettings(batch=4, seq_len=8))
    by = {r["proxy"]: r for r in rows}
    ppl = [1e6 / decoder_params(c) + (5.0 if i == 0 else 0) for i, c in enumerate(cfgs)]
    expected = stats.spearmanr([decoder_params(c) for c in cfgs], [-p for p in ppl]).statistic
    assert by["decoder_params"]["spearman"] == pytest.approx(expected)
    assert by["decoder_params"]["n"] == 10 and by["decoder_params"]["source"] == "validation:v1"
    assert by["grad_norm"]["spearman"] is not None
    assert by["grad_norm"]["tokens"].startswith("bytes of")  # the run's token cache is gone: corpus bytes
    assert "zerolm_fit" in by  # ten models: cross-fitted alpha on halves of five
    assert compare.compare_validation(store, None, ["decoder_params"])[0]["set"] == "v1"  # latest run


def test_missing_validation_runs_say_so_in_one_line(tmp_path, capsys):
    db = tmp_path / "empty.db"
    _validation_db(db, with_run=False).close()
    assert "no validation run yet" in main_err(["proxies", "compare", "--validation", "--db", str(db)], capsys)
    assert "no validation run 'nope'" in main_err(["proxies", "compare", "--validation", "nope", "--db", str(db)], capsys)
    missing = tmp_path / "missing.db"
    assert "no database" in main_err(["proxies", "compare", "--validation", "--db", str(missing)], capsys)
    assert not missing.exists()  # asking does not create a database


def main_err(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lts: error: ")
    return err


def test_cli_list_and_compare(tmp_path, capsys):
    assert main(["proxies", "list", "--json"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in listed] == names()
    assert main(["proxies", "compare", "--reference", "--proxies", "decoder_params,flops", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {(r["set"], r["proxy"]) for r in rows} == {
        (s, p) for s in ("random_GPT2_wt103", "random_TransXL_wt103") for p in ("decoder_params", "flops")}
    assert main(["proxies", "compare", "--limit", "3", "--proxies", "decoder_params", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["set", "proxy", "n", "spearman"] and len(out) == 3
    assert "--write-cache" in main_err(["proxies", "compare", "--write-cache", "--limit", "3"], capsys)
    assert "unknown proxy" in main_err(["proxies", "compare", "--proxies", "bogus"], capsys)
    store, _ = _validation_db(tmp_path / "v.db", n=4)
    store.close()
    assert main(["proxies", "compare", "--validation", "v1", "--db", str(tmp_path / "v.db"),
                 "--proxies", "decoder_params,naswot", "--batch", "4", "--seq-len", "8", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["proxy"] for r in rows] == ["decoder_params", "naswot"] and rows[0]["n"] == 4
