"""Shared test helpers: a deterministic stand-in for on-device measurement."""

from __future__ import annotations

from lts.space.counts import forward_flops, total_params

FAKE_DEVICE = {"device_id": "fa4edeadbeef0001", "name": "fake-device", "kind": "cpu",
               "cpu_model": "test", "cores": 2, "ram_gb": 24.0, "gpu": None, "torch_version": "x", "threads": 1}


class FakeMeasure:
    """Latency from FLOPs and memory from parameters: deterministic, instant, and counted."""

    def __init__(self, fail_on: set[str] | None = None):
        self.calls: list[str] = []
        self.fail_on = fail_on or set()

    def __call__(self, cfg):
        self.calls.append(cfg.arch_id)
        if cfg.arch_id in self.fail_on:
            return {"latency_ms": None, "latency_cv": None, "repeats": 0, "peak_memory_mb": None,
                    "infeasible": "out of memory (fake)", "seconds": 0.0}
        return {"latency_ms": forward_flops(cfg) / 1e6, "latency_cv": 0.01, "repeats": 5,
                "peak_memory_mb": 4 * total_params(cfg) / 2**20, "infeasible": None, "seconds": 0.0}


def database_at(path, version: int):
    """A database file at schema ``version`` exactly as that release made it (its migrations only):
    the starting point of a migration test. Returns an open sqlite3 connection."""
    import sqlite3

    from lts.store.db import APPLICATION_ID, MIGRATIONS, run_statements

    conn = sqlite3.connect(path)
    for ddl in MIGRATIONS[:version]:
        run_statements(conn, ddl)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    return conn


def kill_9_when(proc, db, ready, timeout_s: float = 300.0):
    """Poll ``db`` (once it exists) until ``ready(store)`` is true, then SIGKILL ``proc``; returns the
    Store. Fails if ``proc`` exits first or nothing is ready within ``timeout_s``."""
    import os
    import signal
    import time

    from lts.store.db import Store

    store = None
    deadline = time.time() + timeout_s
    while True:
        assert time.time() < deadline, f"not ready in {timeout_s:g} s"
        if db.exists():
            store = store or Store(db)
            if ready(store):
                break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return store
