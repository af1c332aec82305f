"""The dashboard's DARTS page through Streamlit's AppTest: the jobs listed with their history, alpha and
derived architecture; the form launching a background search; Cancel on a running one."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lts.darts.search import DartsSettings, create_darts, run_darts_job
from lts.darts.session import list_darts
from lts.darts.supernet import SupernetSpec
from lts.jobs import lifecycle
from lts.store import darts as darts_repo
from lts.store import jobs
from lts.store.db import Store
from lts.text.tokenizer import TokenizerSpec

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
OPS = ("attn2", "conv3", "ffn", "zero")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    words = "the quick brown fox jumps over a lazy dog while emma reads to mr knightley".split()
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(800)))
    return path


def tiny(corpus, steps: int = 4) -> DartsSettings:
    spec = SupernetSpec(n_layer=2, d_model=32, n_split=2, candidates=OPS, tgt_len=16, conv_heads=2)
    return DartsSettings(spec=spec, steps=steps, batch_size=4, corpus=str(corpus), tokenizer=TokenizerSpec("byte"),
                         log_every=2, eval_batches=2, threads=1)


def page(monkeypatch, db: Path) -> AppTest:
    monkeypatch.setenv("LTS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("views/darts.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_finished_search_shows_its_history_alpha_and_derived_architecture(monkeypatch, tmp_path, corpus,
                                                                            one_torch_thread):
    db = tmp_path / "lts.db"
    s = Store(db)
    result = run_darts_job(s, create_darts(s, tiny(corpus), tmp_path / "cache"), tmp_path / "cache")
    at = page(monkeypatch, db)
    assert not at.error, [e.value for e in at.error]
    assert [sb for sb in at.selectbox if sb.label == "DARTS run"][0].value == result.darts_id
    runs, alpha, derived = [df.value for df in at.dataframe]  # the list, softmax(alpha), the derived layers
    assert runs["darts_id"].tolist() == [result.darts_id]
    assert runs["status"].tolist() == ["finished"]
    assert list(alpha.columns) == ["layer", "split", *OPS] and len(alpha) == 4
    assert alpha[list(OPS)].values.tolist() == [w for layer in result.weights for w in layer]
    assert derived.iloc[0, 1:].tolist() == list(result.config.ops[0])
    assert any(sh.value == f"Derived architecture {result.config.arch_id}" for sh in at.subheader)
    assert len(at.get("plotly_chart")) == 1  # the loss history


def test_an_empty_database_explains_how_to_start(monkeypatch, tmp_path):
    at = page(monkeypatch, tmp_path / "empty.db")
    assert not at.error
    assert any("lts darts" in i.value for i in at.info)
    assert any(b.label == "Start DARTS search" for b in at.button)


def test_the_form_launches_a_background_search(monkeypatch, tmp_path, corpus):
    db = tmp_path / "live.db"
    at = page(monkeypatch, db)
    for label, value in (("Layers", 1), ("d_model", 32), ("Steps", 4), ("Sequence length", 16), ("Batch size", 4)):
        [n for n in at.number_input if n.label == label][0].set_value(value)
    [m for m in at.multiselect if m.label == "Candidate operations"][0].set_value(list(OPS))
    [t for t in at.text_input if t.label.startswith("Corpus")][0].set_value(str(corpus))
    [sb for sb in at.selectbox if sb.label == "Tokenizer"][0].set_value("byte")
    [b for b in at.button if b.label == "Start DARTS search"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = Store(db)
    (row,) = darts_repo.list_all(s)
    assert row.pid is not None  # spawned, its pid recorded at once
    deadline = time.time() + 120
    log = db.parent / "logs" / f"darts-{row.darts_id}.log"
    while [r.status for r in list_darts(s)] not in (["finished"], ["failed"], ["stopped"]) and time.time() < deadline:
        time.sleep(0.2)
    done = darts_repo.get(s, row.darts_id)
    assert done.status == "finished" and done.derived_arch_id, (done.message, log.read_text()[-2000:])
    assert [sb for sb in at.selectbox if sb.label == "DARTS run"][0].value == row.darts_id
    assert (db.parent / "logs" / f"darts-{row.darts_id}.log").is_file()


def test_cancel_on_a_running_search(monkeypatch, tmp_path, corpus):
    db = tmp_path / "lts.db"
    s = Store(db)
    did = create_darts(s, tiny(corpus), tmp_path / "cache")
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a live process owns it
    try:
        jobs.transition(s, darts_repo.DARTS, did, lifecycle.RUNNING, pid=stand_in.pid)
        at = page(monkeypatch, db)
        [b for b in at.button if b.label == "Cancel"][0].click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert darts_repo.get(s, did).status == lifecycle.CANCELLING
        assert not [b for b in at.button if b.label == "Cancel"]  # asked once: no second button
    finally:
        stand_in.kill()
        stand_in.wait()
