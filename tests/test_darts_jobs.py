"""DARTS searches as jobs of their own kind: the lifecycle (create, claim, cancel, resume), checkpoints
that make a resumed search end exactly as an uninterrupted one, the CLI, and the migration that
moves DARTS runs of older databases out of ``runs``."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from helpers import database_at
from lts.cli import main
from lts.darts import search as darts_search
from lts.darts.search import DartsSettings, create_darts, run_darts_job
from lts.darts.session import cancel_darts, list_darts
from lts.darts.supernet import SupernetSpec
from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.space.config import DartsConfig
from lts.store import darts as darts_repo
from lts.store.db import MIGRATIONS, SCHEMA_VERSION, Store
from lts.text.tokenizer import TokenizerSpec

SMALL_OPS = ("attn2", "conv3", "lightconv3", "dynconv3", "glu", "ffn", "identity", "zero")


@pytest.fixture
def tiny_corpus(tmp_path):
    words = "the quick brown fox jumps over a lazy dog while emma reads to mr knightley".split()
    rng = random.Random(0)
    path = tmp_path / "tiny.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(12)) for _ in range(800)))
    return path


def settings(corpus, **kw) -> DartsSettings:
    spec = SupernetSpec(n_layer=2, d_model=32, n_split=2, candidates=SMALL_OPS, tgt_len=16, conv_heads=2)
    return DartsSettings(spec=spec, steps=kw.pop("steps", 12), batch_size=4, corpus=str(corpus),
                         tokenizer=TokenizerSpec("byte"), log_every=kw.pop("log_every", 4), eval_batches=2,
                         threads=1, **kw)


def same_search(a, b) -> None:
    """Two results of one search: the same derived architecture, alpha, losses (times aside)."""
    assert a.config == b.config and a.weights == b.weights
    assert a.supernet_valid_loss == b.supernet_valid_loss
    strip = lambda h: [{k: v for k, v in p.items() if k != "seconds"} for p in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)


def test_settings_round_trip_through_the_row(tiny_corpus):
    s = settings(tiny_corpus, checkpoint_every=3, arch_warmup=2)
    assert DartsSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_a_cancelled_search_checkpoints_and_resumes_to_the_uninterrupted_result(tmp_path, tiny_corpus, monkeypatch,
                                                                                 one_torch_thread):
    store = Store(tmp_path / "lts.db")
    cache = tmp_path / "cache"
    plain = run_darts_job(store, create_darts(store, settings(tiny_corpus), cache), cache)

    monkeypatch.setattr(darts_search, "CANCEL_POLL_S", 0.0)  # look for a cancel before every step
    did = create_darts(store, settings(tiny_corpus), cache)
    assert darts_repo.get(store, did).status == lifecycle.CREATED

    def cancel_at_6(step, point):
        if step + 1 == 6:
            assert cancel_darts(store, did) == lifecycle.CANCELLING  # its process (this one) is alive

    assert run_darts_job(store, did, cache, on_step=cancel_at_6) is None
    row = darts_repo.get(store, did)
    assert (row.status, row.step, row.checkpoint_step, row.pid) == (lifecycle.CANCELLED, 6, 6, None)
    assert os.path.isfile(row.checkpoint_path) and "resume with lts darts --resume" in row.message
    assert [p["step"] for p in row.progress["history"]] == [4]

    steps = []
    resumed = run_darts_job(store, did, cache, on_step=lambda s, p: steps.append(s + 1))
    assert steps == list(range(7, 13))  # only what was left
    same_search(resumed, plain)
    row = darts_repo.get(store, did)
    assert row.status == lifecycle.FINISHED and row.derived_arch_id == plain.config.arch_id
    assert row.checkpoint_path is None and not darts_repo.checkpoint_path(store, did).exists()
    with pytest.raises(LtsError, match="already finished"):
        run_darts_job(store, did, cache)
    with pytest.raises(LtsError, match="is finished, not running"):
        cancel_darts(store, did)


def test_a_created_search_is_cancelled_at_once_and_listed(tmp_path, tiny_corpus):
    store = Store(tmp_path / "lts.db")
    did = create_darts(store, settings(tiny_corpus), tmp_path / "cache")
    assert [r.darts_id for r in list_darts(store)] == [did]
    assert cancel_darts(store, did) == lifecycle.CANCELLED  # nobody runs it: nothing to wait for
    with pytest.raises(LtsError, match="no DARTS run 'nope'"):
        cancel_darts(store, "nope")


def test_a_dead_process_reads_as_stopped(tmp_path, tiny_corpus):
    store = Store(tmp_path / "lts.db")
    did = create_darts(store, settings(tiny_corpus), tmp_path / "cache")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    from lts.store import jobs

    jobs.transition(store, darts_repo.DARTS, did, lifecycle.RUNNING, pid=dead.pid)
    assert [r.status for r in list_darts(store)] == [lifecycle.STOPPED]


def test_the_cli_resumes_cancels_and_lists(tmp_path, tiny_corpus, capsys, one_torch_thread):
    db = tmp_path / "lts.db"
    store = Store(db)
    did = create_darts(store, settings(tiny_corpus, steps=4), tmp_path / "cache")
    assert main(["darts", "--resume", did, "--db", str(db), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"run {did}: 4 steps" in out and f"lts validate --run {did}" in out
    assert (tmp_path / "darts" / f"{did}.json").is_file()
    assert main(["darts-runs", "--db", str(db)]) == 0
    listing = capsys.readouterr().out
    assert did in listing and "finished" in listing and "4/4" in listing
    assert main(["darts", "--resume", did, "--db", str(db)]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["darts", "--cancel", "nope", "--db", str(db)]) == 2
    assert "no DARTS run 'nope'" in capsys.readouterr().err


def test_a_validation_trains_a_darts_runs_derived_architecture(tmp_path, tiny_corpus, one_torch_thread):
    from lts.validate.recipe import Recipe
    from lts.validate.session import ValidationSettings, create_validation, get_validation, result_rows

    store = Store(tmp_path / "lts.db")
    cache = tmp_path / "cache"
    result = run_darts_job(store, create_darts(store, settings(tiny_corpus, steps=4), cache), cache)
    vid = create_validation(store, ValidationSettings(
        n_archs=None, run_id=result.darts_id, corpus=str(tiny_corpus), tokenizer=TokenizerSpec("byte", 256),
        recipe=Recipe(steps=2, seq_len=8, eval_sequences=4)), cache)
    (row,) = result_rows(store, vid)
    assert row["source_arch_id"] == result.config.arch_id and row["family"] == "darts"
    assert get_validation(store, vid)["source_run_id"] == result.darts_id
    pending = create_darts(store, settings(tiny_corpus), cache)
    with pytest.raises(LtsError, match="has not finished"):
        create_validation(store, ValidationSettings(n_archs=None, run_id=pending, corpus=str(tiny_corpus),
                                                    tokenizer=TokenizerSpec("byte", 256)), cache)


def test_the_migration_moves_old_darts_runs_out_of_runs(tmp_path):
    """A database of the release before: DARTS searches were runs of strategy 'darts' with one member."""
    version = MIGRATIONS.index(next(m for m in MIGRATIONS if "CREATE TABLE darts_runs" in m))
    path = tmp_path / "old.db"
    conn = database_at(path, version)
    cfg = DartsConfig(n_layer=1, d_model=64, n_split=2, ops=[["attn4", "ffn"]])
    conn.execute("INSERT INTO architectures (arch_id, family, config_json, decoder_params, total_params, flops,"
                 " n_layer, d_model, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                 (cfg.arch_id, "darts", cfg.canonical_json(), 1, 2, 3, 1, 64, 0.0))
    settings_dict = {"steps": 40, "seed": 3, "spec": {"n_layer": 1}}
    state = {"history": [{"step": 10, "train_loss": 5.0}], "derived": cfg.to_dict(), "final_weights": [[[0.5, 0.5]]]}
    run = ("INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed, budget,"
           " status, message, n_evaluated, frontier_size, elapsed, state_json, created_at, updated_at)"
           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    conn.execute(run, ("0123456789ab", "darts", json.dumps({"family": "darts", "name": "darts-supernet", **settings_dict}),
                       "darts", '["supernet_loss"]', "{}", 3, 40, "finished", "derived it", 40, 1, 12.5,
                       json.dumps(state), 1.7e9, 1.7e9 + 5))
    conn.execute("INSERT INTO run_members VALUES (?,?,?,?,?,?)", ("0123456789ab", cfg.arch_id, 0, 40, 1, 1))
    conn.execute(run, ("aaaaaaaaaaaa", "darts", json.dumps({"family": "darts", "name": "darts-supernet", **settings_dict}),
                       "darts", '["supernet_loss"]', "{}", 3, 40, "failed", "diverged", 20, 0, 3.0,
                       json.dumps({"history": []}), 1.7e9 + 10, 1.7e9 + 11))
    conn.execute(run, ("bbbbbbbbbbbb", "gpt2", "{}", "evolution", '["decoder_params"]', "{}", 0, 10, "finished", None,
                       0, 0, 1.0, "{}", 1.7e9, 1.7e9))
    conn.commit()
    conn.close()

    with Store(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert [r["run_id"] for r in s.runs()] == ["bbbbbbbbbbbb"]
        assert s.query("SELECT COUNT(*) AS n FROM run_members")[0]["n"] == 0
        done, failed = darts_repo.get(s, "0123456789ab"), darts_repo.get(s, "aaaaaaaaaaaa")
        assert (done.status, done.step, done.steps, done.seed, done.elapsed) == ("finished", 40, 40, 3, 12.5)
        assert done.settings == settings_dict and done.derived_arch_id == cfg.arch_id
        assert done.result["derived"] == cfg.to_dict() and done.progress["history"] == state["history"]
        assert (failed.status, failed.step, failed.result, failed.derived_arch_id) == ("failed", 20, None, None)
        assert [r.darts_id for r in darts_repo.list_all(s)] == ["aaaaaaaaaaaa", "0123456789ab"]
    with Store(path) as s:  # opening again changes nothing
        assert len(darts_repo.list_all(s)) == 2 and len(s.runs()) == 1


@pytest.mark.slow
def test_kill_9_after_a_checkpoint_then_resume_ends_as_an_uninterrupted_search(tmp_path, tiny_corpus,
                                                                              one_torch_thread):
    db = tmp_path / "lts.db"
    store = Store(db)
    cache = tmp_path / "cache"
    s = settings(tiny_corpus, steps=40, checkpoint_every=4)
    plain = run_darts_job(store, create_darts(store, s, cache), cache)

    did = create_darts(store, s, cache)
    proc = subprocess.Popen([sys.executable, "-m", "lts.cli", "darts", "--resume", did, "--db", str(db),
                             "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (darts_repo.get(store, did).checkpoint_step or 0) < 4:
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    row = darts_repo.get(store, did)
    assert row.status == lifecycle.RUNNING and 4 <= row.checkpoint_step < 40, row
    assert [r.status for r in list_darts(store) if r.darts_id == did] == [lifecycle.STOPPED]
    assert not any(p.name.endswith(".tmp") for p in darts_repo.checkpoint_path(store, did).parent.iterdir())

    first = []
    resumed = run_darts_job(store, did, cache, on_step=lambda step, p: first.append(step + 1))
    assert first[0] > 4 and first[0] % 4 == 1 and first[-1] == 40  # from its last checkpoint on
    same_search(resumed, plain)
    assert darts_repo.get(store, did).status == lifecycle.FINISHED


@pytest.mark.slow
def test_the_cli_launches_a_search_in_the_background(tmp_path, tiny_corpus, capsys):
    db = tmp_path / "lts.db"
    assert main(["darts", "--layers", "1", "--steps", "4", "--d-model", "32", "--seq-len", "16", "--batch-size", "4",
                 "--ops", "attn2,conv3,ffn,zero", "--tokenizer", "byte", "--corpus", str(tiny_corpus),
                 "--threads", "1", "--db", str(db), "--background"]) == 0
    out = capsys.readouterr().out
    assert "started in the background" in out
    store = Store(db)
    (row,) = darts_repo.list_all(store)
    assert row.pid is not None and out.startswith(f"DARTS run {row.darts_id} ")
    deadline = time.time() + 120
    log = tmp_path / "logs" / f"darts-{row.darts_id}.log"
    while [r.status for r in list_darts(store)] not in (["finished"], ["failed"], ["stopped"]) and time.time() < deadline:
        time.sleep(0.2)
    assert darts_repo.get(store, row.darts_id).status == "finished", log.read_text()[-2000:]
    assert (tmp_path / "darts" / f"{row.darts_id}.json").is_file()
    assert (tmp_path / "logs" / f"darts-{row.darts_id}.log").is_file()
