"""Resumability for real: `lts search` is killed with SIGKILL mid-run, then `--resume`d to the end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import kill_9_when
from lts.store.db import Store

pytestmark = pytest.mark.slow  # real processes killed with SIGKILL (see pyproject markers)

SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 3}, "d_model": [32, 64], "d_embed": [32, 64],
         "div_val": [1], "n_head": [2, 4], "d_inner": {"min": 64, "max": 256, "step": 32},
         "vocab_size": 512, "tgt_len": 32}


def lts(*args, db, **kw):
    return subprocess.Popen([sys.executable, "-m", "lts.cli", *args, "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _progress(store: Store) -> tuple[int, int] | None:
    """(runs.n_evaluated, members) of the only run, read in one snapshot.

    Two separate statements see two moments: a poll that read n_evaluated and then, later, the
    members, compares different states of a running search."""
    with store.snapshot():
        runs = store.query("SELECT run_id, n_evaluated FROM runs")
        if not runs:
            return None
        members = store.query("SELECT COUNT(*) AS n FROM run_members WHERE run_id = ?", (runs[0]["run_id"],))
    return int(runs[0]["n_evaluated"]), int(members[0]["n"])


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path):
    db = tmp_path / "lts.db"
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    budget = 14
    proc = lts("search", "--space", str(space), "--device-name", "ci", "--budget", str(budget),
               "--population", "6", "--generation", "4", "--seed", "3", "--no-progress", db=db)
    def five_evaluated(store: Store) -> bool:
        counts = _progress(store)
        if counts is None:
            return False
        # The runs row and the members are written in one transaction per evaluation: read in one
        # snapshot, they always agree (a runs row ahead of its members would be lost work).
        assert counts[0] == counts[1], f"runs.n_evaluated {counts[0]} but {counts[1]} members"
        return counts[1] >= 5

    store = kill_9_when(proc, db, five_evaluated)
    run_id = store.runs()[0]["run_id"]
    before = store.run_rows(run_id)
    measured_before = {r["arch_id"]: r["measured_at"] for r in store.query(
        "SELECT arch_id, measured_at FROM measurements")}
    assert 5 <= len(before) < budget
    assert store.run(run_id)["status"] == "running"  # nobody had the chance to say otherwise

    listing = lts("runs", db=db)
    out, _ = listing.communicate(timeout=60)
    assert "stopped" in out  # the dead process is noticed

    resumed = lts("search", "--resume", run_id, "--no-progress", db=db)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "status finished" in out

    after = store.run_rows(run_id)
    assert len(after) == budget
    assert len({r["arch_id"] for r in after}) == budget  # none duplicated
    assert [r["eval_index"] for r in after] == list(range(budget))
    assert after[: len(before)] == [{**r, "on_frontier": a["on_frontier"]} for r, a in zip(before, after)]  # none lost
    measured_after = {r["arch_id"]: r["measured_at"] for r in store.query("SELECT arch_id, measured_at FROM measurements")}
    assert all(measured_after[a] == t for a, t in measured_before.items())  # none measured twice
    assert all(r["latency_ms"] and r["peak_memory_mb"] for r in after)
    assert store.run(run_id)["status"] == "finished"
