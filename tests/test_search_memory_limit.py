"""A search's memory limit reaches its measurer, and limit refusals are not reused where they do not hold."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.objectives import Constraints
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.store.db import Store


class OverLimit(FakeMeasure):
    """What the Measurer returns for a candidate over its memory limit: its peak, no timing."""

    def __call__(self, cfg):
        self.calls.append(cfg.arch_id)
        return {"latency_ms": None, "latency_cv": None, "repeats": 0, "peak_memory_mb": 5.0,
                "infeasible": "peak memory 5 MB is over the 1 MB limit", "seconds": 0.0}


def _run(store, measure, state=None, constraints=Constraints()):
    settings = SearchSettings(space=small_space("gpt2"), budget=6, seed=4, constraints=constraints)
    run_id = create_run(store, settings, FAKE_DEVICE, "fake-b1", state=state)
    SearchRunner(store, run_id, measure=measure).run_to_end()
    return run_id


def test_a_limit_refusal_is_measured_again_by_a_run_without_that_limit(tmp_path):
    store = Store(tmp_path / "m.db")
    limited = OverLimit()
    a = _run(store, limited, state={"memory_limit_mb": 1.0})
    assert len(limited.calls) == 6 and not any(r["feasible"] for r in store.run_rows(a))
    again = FakeMeasure()
    _run(store, again)  # same seed and space: the same six architectures, no limit
    assert sorted(again.calls) == sorted(limited.calls)  # measured for real this time
    rows = store.query("SELECT infeasible, latency_ms FROM measurements")
    assert len(rows) == 6 and all(r["infeasible"] is None and r["latency_ms"] > 0 for r in rows)
    third = FakeMeasure()
    _run(store, third, state={"memory_limit_mb": 1000.0})  # a limit they fit under: the cache holds
    assert third.calls == []


def test_a_refusal_that_still_holds_is_reused(tmp_path):
    store = Store(tmp_path / "m.db")
    first = OverLimit()
    _run(store, first, state={"memory_limit_mb": 1.0})
    second = FakeMeasure()
    _run(store, second, constraints=Constraints(max_memory_mb=2.0))  # 5 MB is over 2 MB: still refused
    assert second.calls == []


def test_cli_search_passes_the_memory_limit_to_the_measurer(tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(small_space("gpt2").to_dict()))
    db = tmp_path / "cli.db"
    proc = subprocess.run([sys.executable, "-m", "lts.cli", "search", "--space", str(space), "--device-name", "t",
                           "--budget", "3", "--population", "3", "--memory-limit-mb", "0.001", "--db", str(db),
                           "--no-progress"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    store = Store(db)
    rows = store.run_rows(store.runs()[0]["run_id"])
    assert len(rows) == 3 and not any(r["feasible"] for r in rows)
    assert all(r["infeasible"].startswith("weights alone need") and r["latency_ms"] is None for r in rows)
    assert json.loads(store.runs()[0]["settings_json"])["memory_limit_mb"] == 0.001
