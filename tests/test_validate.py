"""Validation runs: corpus, tokenizer, training, candidates, schema v2, correlations, runner and CLI."""

from __future__ import annotations

import json
import math
import random
import sqlite3
import warnings

import numpy as np
import pytest
from scipy import stats

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure, database_at
from lts.cli import main
from lts.errors import LtsError
from lts.space.counts import decoder_params
from lts.space.config import GPT2Config, TransXLConfig
from lts.store.db import MIGRATIONS, SCHEMA_VERSION, Store
from lts.validate.candidates import choose, retarget, validation_space
from lts.text.corpus import BUILTIN_DIR, load_corpus
from lts.validate.correlations import BootstrapSettings, correlate, proxy_columns, validation_correlations
from lts.validate.recipe import Recipe
from lts.validate.runner import ValidationRunner
from lts.validate.session import (ValidationSettings, cancel_validation, create_validation, get_validation,
                                  result_rows)
from lts.text.tokenizer import TokenizerSpec, prepare_tokens
from lts.validate.training import train

TINY_SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 2}, "d_model": [16, 32], "d_embed": [16, 32],
              "div_val": [1], "n_head": [2], "d_inner": {"min": 32, "max": 64, "step": 32}}
TINY_RECIPE = Recipe(steps=40, batch_size=8, seq_len=32, lr=3e-3, warmup_steps=4, eval_sequences=64)


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    """Two 40 kB excerpts of the shipped novels: real English, small enough to train on in a second."""
    d = tmp_path_factory.mktemp("corpus")
    for i, doc in enumerate(load_corpus().documents[:2]):
        (d / f"book{i}.txt").write_text(doc.text[5000:45000])
    (d / "README.txt").write_text("not part of the corpus")
    return d


@pytest.fixture(scope="module")
def byte_data(corpus_dir, tmp_path_factory):
    return prepare_tokens(load_corpus(corpus_dir), TokenizerSpec("byte", 256), tmp_path_factory.mktemp("cache"), 0.1)


def tiny_settings(corpus_dir, **over) -> ValidationSettings:
    kw = dict(space=TINY_SPACE, n_archs=3, seed=1, corpus=str(corpus_dir), tokenizer=TokenizerSpec("byte", 256),
              recipe=TINY_RECIPE)
    kw.update(over)
    return ValidationSettings(**kw)


# -- corpus and tokenizer -----------------------------------------------------------------------
def test_shipped_corpus_is_the_six_novels_with_a_fixed_split():
    c = load_corpus()
    assert c.source == "builtin:austen" and len(c.documents) == 6
    assert 3.9e6 < c.n_bytes < 4.1e6
    assert (BUILTIN_DIR / "README.txt").is_file()  # provenance and licence travel with the data
    assert load_corpus().sha256 == c.sha256
    for doc, part in zip(c.documents, c.split(0.1)):
        assert part.train + part.valid == doc.text
        assert 0.09 < len(part.valid) / len(doc.text) < 0.11
        assert part.train.endswith("\n")  # cut at a line break


def test_corpus_folder_skips_readmes_and_bad_inputs_are_refused(corpus_dir, tmp_path):
    c = load_corpus(corpus_dir)
    assert [d.name for d in c.documents] == ["book0.txt", "book1.txt"]
    with pytest.raises(LtsError, match="no such file"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(LtsError, match="empty"):
        load_corpus(tmp_path / "empty.txt")
    with pytest.raises(LtsError, match="empty"):
        load_corpus(tmp_path)
    (tmp_path / "sub").mkdir()
    with pytest.raises(LtsError, match="no text files"):
        load_corpus(tmp_path / "sub")


def test_bpe_is_trained_on_the_train_split_once_and_cached(corpus_dir, tmp_path):
    corpus = load_corpus(corpus_dir)
    a = prepare_tokens(corpus, TokenizerSpec("bpe", 400), tmp_path, 0.1)
    tok_files = list((tmp_path / "tokenizers").iterdir())
    assert len(tok_files) == 1 and a.vocab_size == 400
    mtime = tok_files[0].stat().st_mtime_ns
    b = prepare_tokens(corpus, TokenizerSpec("bpe", 400), tmp_path, 0.1)
    assert tok_files[0].stat().st_mtime_ns == mtime  # reused, not retrained
    assert np.array_equal(a.train, b.train) and np.array_equal(a.valid, b.valid)
    assert a.info["trained_on"] == "train split only" and a.info["sha256"] == b.info["sha256"]
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(a.info["path"])
    held_out = "".join(p.valid for p in corpus.split(0.1))
    assert tok.decode(a.valid.tolist()) == held_out  # byte-level BPE loses nothing
    assert a.train.max() < a.vocab_size and len(a.train) < 0.6 * sum(len(p.train) for p in corpus.split(0.1))
    c = prepare_tokens(corpus, TokenizerSpec("bpe", 300), tmp_path, 0.1)
    assert c.vocab_size == 300 and len(list((tmp_path / "tokenizers").iterdir())) == 2  # keyed by vocab


# -- training -----------------------------------------------------------------------------------
def _cfg(family="gpt2", vocab=256, **over):
    kw = dict(n_layer=2, d_model=32, d_embed=32, div_val=1, n_head=2, d_inner=64, vocab_size=vocab, cutoffs=(),
              tie_projs=(False,), tgt_len=32)
    kw.update(over)
    return (GPT2Config if family == "gpt2" else TransXLConfig)(**kw, **({"mem_len": 32} if family == "transxl" else {}))


@pytest.mark.parametrize("family", ["gpt2", "transxl"])
def test_untrained_perplexity_is_the_vocabulary_and_training_lowers_it(byte_data, family):
    cfg = _cfg(family)
    untrained = train(cfg, byte_data.train, byte_data.valid, Recipe(steps=0, seq_len=32, eval_sequences=64))
    assert untrained.valid_ppl == pytest.approx(256, rel=0.05) and untrained.train_loss is None
    trained = train(cfg, byte_data.train, byte_data.valid, TINY_RECIPE)
    assert trained.valid_ppl < 0.3 * untrained.valid_ppl  # English bytes are far from uniform
    assert trained.train_loss is not None and trained.tokens_per_second > 0


def test_training_is_deterministic_with_fixed_seeds(byte_data):
    cfg = _cfg()
    a = train(cfg, byte_data.train, byte_data.valid, TINY_RECIPE)
    b = train(cfg, byte_data.train, byte_data.valid, TINY_RECIPE)
    assert a.valid_loss == b.valid_loss and a.train_loss == b.train_loss
    c = train(cfg, byte_data.train, byte_data.valid, Recipe(**{**TINY_RECIPE.__dict__, "seed": 7}))
    assert c.valid_loss != a.valid_loss


def test_recipe_schedule_warms_up_then_decays():
    r = Recipe(steps=100, lr=1e-3, warmup_steps=10, min_lr_ratio=0.1)
    assert r.lr_at(0) == pytest.approx(1e-4) and r.lr_at(9) == pytest.approx(1e-3)
    assert r.lr_at(10) == pytest.approx(1e-3) and r.lr_at(100) == pytest.approx(1e-4)
    lrs = [r.lr_at(s) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert Recipe.from_dict(r.to_dict()) == r
    with pytest.raises(LtsError, match="seq_len"):
        Recipe(seq_len=0)


def test_wrong_vocabulary_is_refused(byte_data):
    with pytest.raises(LtsError, match="vocab_size"):
        train(_cfg(vocab=100), byte_data.train, byte_data.valid, TINY_RECIPE)


# -- candidates ---------------------------------------------------------------------------------
def test_validation_space_matches_the_tokenizer_and_choice_is_seeded_and_spread():
    space = validation_space("gpt2", 2048, 64)
    a, b = choose(space, 12, seed=3), choose(space, 12, seed=3)
    assert [c.arch_id for c in a] == [c.arch_id for c in b]
    assert len({c.arch_id for c in a}) == 12
    assert all(c.vocab_size == 2048 and c.cutoffs == () and c.tgt_len == 64 for c in a)
    params = [decoder_params(c) for c in a]
    assert params == sorted(params) and params[-1] / params[0] > 20  # a wide range of sizes
    rand = choose(space, 12, seed=3, sampling="random")
    assert [c.arch_id for c in rand] != [c.arch_id for c in a]
    with pytest.raises(LtsError, match="distinct"):
        choose(validation_space(TINY_SPACE, 256, 32), 50, seed=0)


def test_retarget_keeps_the_decoder():
    rng = random.Random(5)
    for family in ("gpt2", "transxl"):
        for _ in range(20):
            cfg = small_space(family).sample(rng)
            new = retarget(cfg, 256, 8)
            assert new.vocab_size == 256 and new.tgt_len == 8 and all(c < 256 for c in new.cutoffs)
            assert decoder_params(new) == decoder_params(cfg)


# -- schema ---------------------------------------------------------------------------------------
def test_a_v1_database_upgrades_to_v2_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version = 1")
    cfg = small_space("gpt2").sample(random.Random(0))
    conn.execute("INSERT INTO architectures VALUES (?,?,?,?,?,?,?,?,?)",
                 (cfg.arch_id, "gpt2", cfg.canonical_json(), 1, 2, 3, cfg.n_layer, cfg.d_model, 0.0))
    conn.commit()
    conn.close()
    assert SCHEMA_VERSION >= 2
    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert {"validation_runs", "validation_results"} <= set(s.db.table_names())
        assert s.query("SELECT arch_id FROM architectures") == [{"arch_id": cfg.arch_id}]
        with pytest.raises(sqlite3.IntegrityError):  # results must name a known architecture
            with s.write() as c:
                c.execute("INSERT INTO validation_runs (validation_id, family, space_json, corpus_json,"
                          " tokenizer_json, recipe_json, seed, n_archs, status, created_at, updated_at)"
                          " VALUES ('v', 'gpt2', '{}', '{}', '{}', '{}', 0, 1, 'created', 0, 0)")
                c.execute("INSERT INTO validation_results (validation_id, arch_id, position) VALUES ('v', 'nope', 0)")
    with Store(path) as s:  # opening again changes nothing
        assert s.schema_version() == SCHEMA_VERSION


def test_older_validation_statuses_join_the_job_lifecycle(tmp_path):
    """Before the one lifecycle, a validation with failed architectures ended 'finished' (and was
    resumable) and Ctrl-C left 'interrupted': they become 'failed' and 'cancelled', both resumable."""
    version = next(i for i, m in enumerate(MIGRATIONS) if "CREATE TABLE darts_runs" in m)
    path = tmp_path / "old.db"
    conn = database_at(path, version)
    for vid, status, failed in (("a", "finished", 2), ("b", "finished", 0), ("c", "interrupted", 0), ("d", "failed", 0)):
        conn.execute("INSERT INTO validation_runs (validation_id, family, space_json, corpus_json, tokenizer_json,"
                     " recipe_json, seed, n_archs, n_failed, status, created_at, updated_at)"
                     " VALUES (?, 'gpt2', '{}', '{}', '{}', '{}', 0, 3, ?, ?, 0, 0)", (vid, failed, status))
    conn.commit()
    conn.close()
    with Store(path) as s:
        assert {v: get_validation(s, v)["status"] for v in "abcd"} == {
            "a": "failed", "b": "finished", "c": "cancelled", "d": "failed"}


# -- correlations ---------------------------------------------------------------------------------
def test_correlations_match_scipy_with_the_lts_sign_convention():
    rng = np.random.default_rng(0)
    rows = [{"decoder_params": int(p), "flops": int(f), "valid_ppl": float(v)}
            for p, f, v in zip(rng.integers(1, 10**6, 15), rng.integers(1, 10**6, 15), rng.uniform(50, 500, 15))]
    table = correlate(rows, ["decoder_params", "flops"], BootstrapSettings(500, 0.9, 1))
    for row in table:
        x = [r[row["proxy"]] for r in rows]
        ppl = [r["valid_ppl"] for r in rows]
        assert row["spearman"] == pytest.approx(stats.spearmanr(x, [-v for v in ppl]).statistic)
        assert row["kendall"] == pytest.approx(-stats.kendalltau(x, ppl).statistic)
        assert row["spearman_lo"] <= row["spearman"] <= row["spearman_hi"]
        assert row["kendall_lo"] <= row["kendall"] <= row["kendall_hi"]
    assert correlate(rows, ["decoder_params"], BootstrapSettings(500, 0.9, 1))[0] == table[0]  # seeded
    perfect = [{"decoder_params": p, "valid_ppl": 1000 / p} for p in range(1, 9)]
    assert correlate(perfect, ["decoder_params"])[0]["spearman"] == pytest.approx(1.0)  # larger, lower ppl: +1


# -- runs -----------------------------------------------------------------------------------------
def test_a_validation_run_trains_records_and_resumes_only_what_is_left(corpus_dir, tmp_path, capsys):
    s = Store(tmp_path / "v.db")
    vid = create_validation(s, tiny_settings(corpus_dir), tmp_path / "cache")
    row = get_validation(s, vid)
    assert row["status"] == "created" and row["n_archs"] == 3
    assert json.loads(row["recipe_json"])["steps"] == TINY_RECIPE.steps
    assert json.loads(row["tokenizer_json"])["vocab_size"] == 256
    assert json.loads(row["corpus_json"])["sha256"] == load_corpus(corpus_dir).sha256

    # Train one architecture, then "crash": cancel from inside the progress callback.
    seen = []

    def stop_after_first(p):
        seen.append(p.arch_id)
        cancel_validation(s, vid)

    ValidationRunner(s, vid, on_progress=stop_after_first).run_to_end()
    assert get_validation(s, vid)["status"] == "cancelled"
    first = {r["arch_id"]: r for r in result_rows(s, vid) if r["status"] == "done"}
    assert list(first) == seen

    trained = []
    final = ValidationRunner(s, vid, on_progress=lambda p: trained.append(p.arch_id)).run_to_end()
    assert final["status"] == "finished" and final["n_done"] == 3
    assert len(trained) == 2 and seen[0] not in trained  # the finished one was not retrained
    rows = result_rows(s, vid)
    again = {r["arch_id"]: r for r in rows}
    assert again[seen[0]]["finished_at"] == first[seen[0]]["finished_at"]
    assert all(r["valid_ppl"] < 256 and r["wall_seconds"] > 0 for r in rows)

    # Stored numbers and the correlation table agree with scipy.
    table = {r["proxy"]: r for r in validation_correlations(s, vid)}
    assert set(table) == set(proxy_columns(s)) >= {"decoder_params", "total_params", "flops"}
    ppl = [r["valid_ppl"] for r in rows]
    for proxy, r in table.items():
        assert r["spearman"] == pytest.approx(stats.spearmanr([x[proxy] for x in rows], [-v for v in ppl]).statistic)
    assert main(["correlate", vid, "--json", "--db", str(tmp_path / "v.db")]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {p["proxy"]: p["kendall"] for p in printed} == {k: v["kendall"] for k, v in table.items()}
    with pytest.raises(LtsError, match="already finished"):
        ValidationRunner(s, vid).run_to_end()


def test_the_lifecycle_of_a_validation_process(corpus_dir, tmp_path):
    """Created with all its pending results in one write; a live owner is refused a second runner and
    counts against a concurrency limit checked inside the inserting transaction; a dead one is stopped."""
    import subprocess
    import sys

    from lts.store import jobs
    from lts.store import validations as repo
    from lts.validate.session import list_validations

    s = Store(tmp_path / "v.db")
    vid = create_validation(s, tiny_settings(corpus_dir), tmp_path / "cache")
    assert [r["status"] for r in result_rows(s, vid)] == ["pending"] * 3
    assert repo.occupied_slots(s) == 1  # just created, its process about to start
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        jobs.transition(s, jobs.VALIDATION, vid, "running", pid=owner.pid)
        with pytest.raises(LtsError, match=f"validation {vid} is already running in process {owner.pid}"):
            ValidationRunner(s, vid).run_to_end()

        def at_most_one(n):
            if n >= 1:
                raise LtsError(f"{n} running")

        with pytest.raises(LtsError, match="1 running"):
            create_validation(s, tiny_settings(corpus_dir), tmp_path / "cache", admit=repo.admit_below(at_most_one))
        assert len(list_validations(s)) == 1  # the refused one left nothing
    finally:
        owner.kill()
        owner.wait()
    assert [r.status for r in list_validations(s)] == ["stopped"] and repo.occupied_slots(s) == 0
    assert cancel_validation(s, vid) == "cancelled"


def test_parallel_workers_give_the_same_numbers_as_one_process(corpus_dir, tmp_path):
    s = Store(tmp_path / "v.db")
    one = create_validation(s, tiny_settings(corpus_dir), tmp_path / "cache")
    two = create_validation(s, tiny_settings(corpus_dir), tmp_path / "cache")
    ValidationRunner(s, one, workers=1).run_to_end()
    row = ValidationRunner(s, two, workers=2).run_to_end()
    assert row["status"] == "finished" and row["workers"] == 2
    a = {r["arch_id"]: r["valid_ppl"] for r in result_rows(s, one)}
    b = {r["arch_id"]: r["valid_ppl"] for r in result_rows(s, two)}
    assert a == b and len(a) == 3


def test_a_search_frontier_is_validated_with_its_decoders_unchanged(corpus_dir, tmp_path):
    from lts.search.runner import SearchRunner, SearchSettings, create_run

    s = Store(tmp_path / "v.db")
    run = create_run(s, SearchSettings(space=small_space("gpt2"), budget=12, seed=2), FAKE_DEVICE, "p")
    SearchRunner(s, run, measure=FakeMeasure()).run_to_end()
    front = {r["arch_id"]: r for r in s.run_rows(run, frontier_only=True)}
    vid = create_validation(s, tiny_settings(corpus_dir, n_archs=None, run_id=run, recipe=Recipe(
        steps=2, seq_len=8, eval_sequences=4)), tmp_path / "cache")
    rows = result_rows(s, vid)
    assert get_validation(s, vid)["source_run_id"] == run and 2 <= len(rows) <= len(front)
    for r in rows:
        assert r["decoder_params"] == front[r["source_arch_id"]]["decoder_params"]
        assert json.loads(r["config_json"])["vocab_size"] == 256


@pytest.mark.parametrize("argv, message", [
    (["validate", "--corpus", "/no/such/corpus"], "no such file or folder"),
    (["validate", "-n", "1"], "at least 2"),
    (["validate", "-n", "-4"], "at least 2"),
    (["validate", "--run", "nope"], "no run 'nope'"),
    (["correlate", "nope"], "no validation 'nope'"),
    (["validate", "--resume", "nope"], "no validation 'nope'"),
])
def test_bad_inputs_give_one_line_and_status_2(argv, message, tmp_path, capsys):
    assert main([*argv, "--db", str(tmp_path / "v.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lts: error:") and message in err[0]


def test_an_empty_corpus_and_a_missing_ray_are_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "empty.txt").write_text("")
    assert main(["validate", "--corpus", str(tmp_path / "empty.txt"), "--db", str(tmp_path / "v.db")]) == 2
    assert "empty" in capsys.readouterr().err
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert main(["validate", "--ray-address", "auto", "--db", str(tmp_path / "v.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs Ray" in err[0]


def test_a_local_ray_cluster_gives_the_same_numbers(corpus_dir, tmp_path):
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install ray)")
    s = Store(tmp_path / "v.db")
    one = create_validation(s, tiny_settings(corpus_dir, n_archs=2), tmp_path / "cache")
    ray_run = create_validation(s, tiny_settings(corpus_dir, n_archs=2), tmp_path / "cache")
    ValidationRunner(s, one).run_to_end()
    row = ValidationRunner(s, ray_run, ray_address="local").run_to_end()
    assert row["status"] == "finished" and row["backend"] == "ray:local"
    a = {r["arch_id"]: r["valid_ppl"] for r in result_rows(s, one)}
    assert a == {r["arch_id"]: r["valid_ppl"] for r in result_rows(s, ray_run)}
    assert all(math.isfinite(v) for v in a.values())


def test_vectorised_bootstrap_statistics_equal_scipy():
    from lts.validate.correlations import _kendall_resamples, _resample_counts, _spearman_resamples

    rng = np.random.default_rng(3)
    # from how often each row is drawn, equal to scipy on the drawn rows: ties and constant draws too
    for n in (2, 3, 9, 30):
        x0, y0 = rng.integers(0, 4, size=n).astype(float), rng.integers(0, 4, size=n).astype(float)
        idx = rng.integers(0, n, size=(300, n))
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy warns on a constant draw, and says NaN
            want_s = [stats.spearmanr(x0[i], y0[i]).statistic for i in idx]
            want_k = [stats.kendalltau(x0[i], y0[i]).statistic for i in idx]
        counts = _resample_counts(idx, n)
        assert (counts.sum(axis=1) == n).all()
        assert np.allclose(_spearman_resamples(x0, y0, counts), want_s, equal_nan=True)
        assert np.allclose(_kendall_resamples(x0, y0, counts), want_k, equal_nan=True)


def test_projections_start_at_unit_gain_and_nothing_else_changes():
    import torch

    from lts.models import build_model
    from lts.validate.training import _init_projections

    cfg = _cfg(d_model=64, d_embed=128, n_head=2, vocab=300, div_val=2, cutoffs=(100,), tie_projs=(False, True))
    model, ref = build_model(cfg, seed=0), build_model(cfg, seed=0)
    _init_projections(model, 0)
    changed = set()
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        if not torch.equal(p, q):
            changed.add(name)
    assert changed == {"wte.emb_projs.0", "wte.emb_projs.1", "crit.out_proj_0"}  # out_proj_1 is tied to emb_projs.1
    params = dict(model.named_parameters())
    assert float(params["wte.emb_projs.0"].detach().std()) == pytest.approx(128 ** -0.5, rel=0.1)
    assert float(params["crit.out_proj_0"].detach().std()) == pytest.approx(64 ** -0.5, rel=0.1)
    assert model.crit.out_proj_1 is model.wte.emb_projs[1]  # ties survive
