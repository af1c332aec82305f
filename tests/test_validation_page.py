"""The dashboard's validation page through Streamlit's AppTest: own runs, their correlations, and the launch form."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from lts.store.db import Store
from lts.text.corpus import load_corpus
from lts.validate.correlations import validation_correlations, validation_curve
from lts.validate.recipe import DEFAULT_RECIPE, Recipe
from lts.validate.runner import ValidationRunner
from lts.validate.session import ValidationSettings, create_validation, get_validation, result_rows
from lts.text.tokenizer import TokenizerSpec

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 2}, "d_model": [16, 32], "d_embed": [16], "div_val": [1],
         "n_head": [2], "d_inner": {"min": 32, "max": 64, "step": 32}}


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    for i, doc in enumerate(load_corpus().documents[2:4]):
        (d / f"book{i}.txt").write_text(doc.text[:30000])
    return d


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, corpus_dir):
    path = tmp_path_factory.mktemp("val") / "lts.db"
    s = Store(path)
    vid = create_validation(s, ValidationSettings(
        space=SPACE, n_archs=4, seed=0, corpus=str(corpus_dir), tokenizer=TokenizerSpec("byte", 256),
        recipe=Recipe(steps=25, batch_size=8, seq_len=32, warmup_steps=3, eval_sequences=32)), path.parent / "cache")
    ValidationRunner(s, vid).run_to_end()
    s.close()
    return path, vid


def page(monkeypatch, db: Path) -> AppTest:
    monkeypatch.setenv("LTS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/validation.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_finished_validation_shows_scatters_correlations_and_the_table(monkeypatch, seeded):
    db, vid = seeded
    at = page(monkeypatch, db)
    assert not at.error, [e.value for e in at.error]
    pick = [sb for sb in at.selectbox if sb.label == "Validation run"][0]
    assert pick.value == vid
    charts = at.get("plotly_chart")
    assert len(charts) == 2 + 3  # the published-models and FlexiBERT scatters, then one per proxy
    s = Store(db)
    want = {r["proxy"]: r for r in validation_correlations(s, vid)}
    shown = {m.label.split(" · ")[1]: m.value for m in at.metric if m.label.startswith("Spearman · ")}
    assert shown == {p: f"{r['spearman']:+.3f}" for p, r in want.items()}
    table = [df for df in at.dataframe if "valid_ppl" in df.value.columns][0].value
    assert sorted(table["arch_id"]) == sorted(r["arch_id"] for r in result_rows(s, vid))
    assert "recipe" in " ".join(c.value for c in at.caption)
    # The published-models section is still there.
    assert any(sh.value.startswith("LTS's published models") for sh in at.subheader)


def test_an_empty_database_explains_how_to_start(monkeypatch, tmp_path):
    at = page(monkeypatch, tmp_path / "empty.db")
    assert not at.error
    assert any("lts validate" in i.value for i in at.info)
    assert any(b.label == "Start validation" for b in at.button)


def test_the_form_launches_a_background_validation(monkeypatch, tmp_path, corpus_dir):
    db = tmp_path / "live.db"
    at = page(monkeypatch, db)
    [t for t in at.text_input if t.label.startswith("Corpus")][0].set_value(str(corpus_dir))
    [n for n in at.number_input if n.label == "Architectures"][0].set_value(2)
    [n for n in at.number_input if n.label.startswith("Steps")][0].set_value(3)
    [n for n in at.number_input if n.label == "Workers"][0].set_value(1)
    [n for n in at.number_input if n.label == "BPE vocabulary"][0].set_value(300)
    [b for b in at.button if b.label == "Start validation"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = Store(db)
    runs = s.query("SELECT validation_id FROM validation_runs")
    assert len(runs) == 1
    vid = runs[0]["validation_id"]
    deadline = time.time() + 60
    while get_validation(s, vid)["status"] not in ("finished", "failed") and time.time() < deadline:
        time.sleep(0.2)
    row = get_validation(s, vid)
    assert row["status"] == "finished" and row["n_done"] == 2, row["message"]
    assert [sb for sb in at.selectbox if sb.label == "Validation run"][0].value == vid
    recorded = get_validation(s, vid)
    assert json.loads(recorded["recipe_json"])["name"] == DEFAULT_RECIPE  # the form's default recipe, by name
    assert json.loads(recorded["space_json"])["sampling"] == "cells"


def _values(data):
    """A plotly trace's array: plain JSON, or plotly's typed-array encoding of a numpy column."""
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def test_a_run_with_checkpoints_shows_the_spearman_vs_tokens_curve(monkeypatch, tmp_path, corpus_dir):
    db = tmp_path / "curve.db"
    s = Store(db)
    vid = create_validation(s, ValidationSettings(
        space=SPACE, n_archs=4, seed=0, corpus=str(corpus_dir), tokenizer=TokenizerSpec("byte", 256),
        recipe=Recipe(steps=20, batch_size=8, seq_len=32, warmup_steps=2, eval_sequences=32, eval_every=10)),
        tmp_path / "cache")
    ValidationRunner(s, vid).run_to_end()
    at = page(monkeypatch, db)
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 2 + 3 + 1  # published and FlexiBERT scatters, one per proxy, the learning curve
    fig = json.loads(charts[-1].proto.spec)
    lines = {t["name"]: t for t in fig["data"] if t.get("mode") == "lines+markers"}
    want = validation_curve(s, vid)
    for proxy, trace in lines.items():
        rows = sorted((r for r in want if r["proxy"] == proxy), key=lambda r: r["tokens"])
        assert _values(trace["x"]) == [r["tokens"] for r in rows] == [10 * 8 * 32, 20 * 8 * 32]
        assert _values(trace["y"]) == pytest.approx([r["spearman"] for r in rows])
    assert "decoder_params" in lines
