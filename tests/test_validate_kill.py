"""Resumability for real: `lts validate --workers 2` is killed with SIGKILL mid-run, then `--resume`d."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lts.store.db import Store
from lts.text.corpus import load_corpus

pytestmark = pytest.mark.slow  # real processes killed with SIGKILL (see pyproject markers)

SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 3}, "d_model": [32, 64], "d_embed": [32], "div_val": [1],
         "n_head": [2], "d_inner": {"min": 64, "max": 256, "step": 64}}


def lts(*args, db):
    return subprocess.Popen([sys.executable, "-m", "lts.cli", *args, "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_then_resume_retrains_nothing_that_finished(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, doc in enumerate(load_corpus().documents[:2]):
        (corpus / f"b{i}.txt").write_text(doc.text[:40000])
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    db = tmp_path / "v.db"
    n = 6
    proc = lts("validate", "--space", str(space), "-n", str(n), "--steps", "120", "--seq-len", "32",
               "--tokenizer", "byte", "--corpus", str(corpus), "--workers", "2", "--no-progress", db=db)
    store = None
    workers: list[int] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        workers = workers or [p for p in children(proc.pid) if p != proc.pid]
        if db.exists():
            store = store or Store(db)
            rows = store.query("SELECT n_done FROM validation_runs")
            if rows and rows[0]["n_done"] >= 1:
                break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    workers = [p for p in children(proc.pid)] or workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    vid = store.query("SELECT validation_id FROM validation_runs")[0]["validation_id"]
    before = {r["arch_id"]: r["finished_at"] for r in store.query(
        "SELECT arch_id, finished_at FROM validation_results WHERE status = 'done'")}
    assert 1 <= len(before) < n

    # The pool's workers notice their parent died and exit instead of training for nobody.
    deadline = time.time() + 10
    while any(alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert workers and not any(alive(p) for p in workers)

    listing = lts("validations", db=db)
    out, _ = listing.communicate(timeout=60)
    assert "stopped" in out  # the dead process is noticed

    resumed = lts("validate", "--resume", vid, "--workers", "2", "--no-progress", db=db)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"status finished: {n} of {n} trained" in out
    trained_now = [line.split()[1] for line in out.splitlines() if "valid_ppl=" in line]
    assert len(trained_now) == n - len(before) and not set(trained_now) & set(before)
    after = {r["arch_id"]: r for r in store.query("SELECT * FROM validation_results")}
    assert all(after[a]["finished_at"] == t for a, t in before.items())  # untouched
    assert all(r["status"] == "done" and r["valid_ppl"] > 1 for r in after.values())
