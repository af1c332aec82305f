"""Processes: measurement workers end with their search (kill -9 included); one process per run."""

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

pytestmark = pytest.mark.slow  # real processes killed with SIGKILL (see pyproject markers)

SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 3}, "d_model": [32, 64], "d_embed": [32, 64],
         "div_val": [1], "n_head": [2, 4], "d_inner": {"min": 64, "max": 256, "step": 32},
         "vocab_size": 512, "tgt_len": 32}


def _lts(*args: str, db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lts.cli", *args, "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(entry))
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _started_search(tmp_path: Path, budget: int) -> tuple[subprocess.Popen, Store, str]:
    db = tmp_path / "p.db"
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    proc = _lts("search", "--space", str(space), "--device-name", "ci", "--budget", str(budget), "--population", "6",
                "--no-progress", db=db)
    deadline = time.time() + 180
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            store = Store(db)
            runs = store.runs()
            if runs and runs[0]["n_evaluated"] >= 1:
                return proc, store, runs[0]["run_id"]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the search did not start")


def test_workers_end_with_a_killed_search(tmp_path):
    proc, _, _ = _started_search(tmp_path, budget=200)
    workers = _children(proc.pid)
    assert len(workers) == 2  # the memory and the latency worker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while any(_alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if _alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "measurement workers outlived their search"


def test_resuming_a_run_whose_process_is_alive_is_refused(tmp_path):
    proc, store, run_id = _started_search(tmp_path, budget=200)
    try:
        second = _lts("search", "--resume", run_id, "--no-progress", db=tmp_path / "p.db")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 2, (out, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("lts: error: run ") and "already running" in lines[0], err
        run = store.run(run_id)
        assert run["status"] == "running" and run["pid"] == proc.pid
        assert proc.poll() is None  # the first one carries on
    finally:
        proc.kill()
        proc.wait()
