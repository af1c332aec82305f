"""The dashboard's concurrent-search limit holds when several sessions launch at the same instant."""

from __future__ import annotations

import os
import threading

from conftest import small_space
from lts.errors import LtsError
from lts.store.db import Store
from lts.team import guarded
from lts.team.auth import User
from lts.team.limits import Limits

OPERATOR = User("otto", "operator", "password")


def test_simultaneous_launches_never_pass_the_limit(tmp_path, monkeypatch):
    spawned: list[str] = []
    monkeypatch.setattr("lts.search.session.launch_background",
                        lambda db_path, run_id, log_dir=None: spawned.append(run_id) or os.getpid())
    store = Store(tmp_path / "t.db")  # one store shared by the sessions' threads, as the dashboard does
    limits = Limits(max_concurrent_searches=2)
    go = threading.Barrier(8)
    outcomes: list[str] = []

    def session() -> None:
        go.wait()
        try:
            guarded.launch_search(OPERATOR, store, tmp_path / "t.db", small_space("gpt2"), None, limits=limits,
                                  budget=5, objectives="proxy")
            outcomes.append("ok")
        except LtsError as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=session) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcomes.count("ok") == 2, outcomes
    assert all("already running" in o for o in outcomes if o != "ok")
    assert len(spawned) == 2 and store.db["runs"].count == 2
    assert guarded.running_searches(store) == 2


def test_a_launch_whose_process_cannot_start_is_failed_not_counted(tmp_path, monkeypatch):
    def broken(db_path, run_id, log_dir=None):
        raise OSError("no such file")

    monkeypatch.setattr("lts.search.session.launch_background", broken)
    store = Store(tmp_path / "t.db")
    try:
        guarded.launch_search(OPERATOR, store, tmp_path / "t.db", small_space("gpt2"), None, limits=Limits(),
                              budget=5, objectives="proxy")
    except LtsError as exc:
        assert "could not start its process" in str(exc)
    else:
        raise AssertionError("expected a refusal")
    assert store.runs()[0]["status"] == "failed" and guarded.running_searches(store) == 0
