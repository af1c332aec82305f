"""The storage layer's repositories for measurements, re-measure jobs, surrogates and the audit trail,
and the re-measure jobs on the one job lifecycle."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time

import pytest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.decide.remeasure import RemeasureRequest, cancel_job, job_keys, jobs, remeasure
from lts.errors import LtsError
from lts.store import audit, jobs as store_jobs, measurements, reads, surrogates
from lts.store.db import Store


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "r.db")
    rng = random.Random(0)
    cfgs = [small_space("gpt2").sample(rng) for _ in range(3)]
    with s.write() as conn:
        for cfg in cfgs:
            s.upsert_architecture(conn, cfg)
    s.cfgs = cfgs  # type: ignore[attr-defined]
    return s


def test_replacing_a_measurement_keeps_the_old_one(store):
    cfg = store.cfgs[0]
    measurements.save_device(store, FAKE_DEVICE)
    key = {"arch_id": cfg.arch_id, "device_id": FAKE_DEVICE["device_id"], "protocol": "p"}
    measurements.replace(store, {**key, "latency_ms": 2.0, "measured_at": 100.0})
    assert measurements.last_replaced(store, cfg.arch_id, FAKE_DEVICE["device_id"], "p") is None
    measurements.replace(store, {**key, "latency_ms": 1.0, "measured_at": 200.0}, job_id="j")
    old = measurements.last_replaced(store, cfg.arch_id, FAKE_DEVICE["device_id"], "p")
    assert old["latency_ms"] == 2.0 and old["job_id"] == "j"
    assert store.measurement(cfg.arch_id, FAKE_DEVICE["device_id"], "p")["latency_ms"] == 1.0
    assert measurements.latest_protocols(store, FAKE_DEVICE["name"], [cfg.arch_id]) == {cfg.arch_id: "p"}
    assert measurements.measured_since(store, FAKE_DEVICE["name"], 150.0, [cfg.arch_id]) == [
        (cfg.arch_id, FAKE_DEVICE["device_id"], "p")]
    assert list(measurements.history_frame(store, [cfg.arch_id])["state"]) == ["current", "earlier"]
    assert reads.known_architectures(store, [cfg.arch_id, "0" * 16]) == [cfg.arch_id]


def test_a_remeasure_job_follows_the_job_lifecycle(store):
    ids = tuple(c.arch_id for c in store.cfgs)
    measurements.create_remeasure_job(store, "j1", FAKE_DEVICE["name"], None, ids)
    job = measurements.remeasure_job(store, "j1")
    assert job.status == "queued" and job.arch_ids == ids and job.pid is None
    assert jobs(store).set_index("job_id").loc["j1", "status"] == "queued"  # being launched: no pid yet
    store_jobs.update(store, store_jobs.REMEASURE, "j1", pid=_dead_pid())
    assert jobs(store).set_index("job_id").loc["j1", "status"] == "stopped"  # its process died unannounced

    remeasure(store, RemeasureRequest(ids, FAKE_DEVICE["name"], "fake-p"), measure=FakeMeasure(),
              device=FAKE_DEVICE, job_id="j1")  # a stopped job may run again
    job = measurements.remeasure_job(store, "j1")
    assert (job.status, job.n_done, job.pid, job.message) == ("finished", 3, os.getpid(), "3 re-measured")
    assert len(job_keys(store, "j1")) == 3
    with pytest.raises(LtsError, match="already finished"):
        remeasure(store, RemeasureRequest(ids, FAKE_DEVICE["name"], "fake-p"), measure=FakeMeasure(),
                  device=FAKE_DEVICE, job_id="j1")
    with pytest.raises(LtsError, match="not running"):
        cancel_job(store, "j1")


def test_a_cancelled_remeasure_job_stops_after_its_current_measurement(store):
    ids = tuple(c.arch_id for c in store.cfgs)
    measurements.create_remeasure_job(store, "j2", FAKE_DEVICE["name"], None, ids)
    assert cancel_job(store, "j2") == "cancelled"  # no process yet: cancelled at once
    measurements.create_remeasure_job(store, "j3", FAKE_DEVICE["name"], None, ids)

    class CancelOnFirst(FakeMeasure):
        def __call__(self, cfg):
            if not self.calls:
                assert cancel_job(store, "j3") == "cancelling"  # running in this (live) process
            return super().__call__(cfg)

    table = remeasure(store, RemeasureRequest(ids, FAKE_DEVICE["name"], "fake-p"), measure=CancelOnFirst(),
                      device=FAKE_DEVICE, job_id="j3")
    job = measurements.remeasure_job(store, "j3")
    assert (job.status, job.n_done, len(table)) == ("cancelled", 1, 1)


def test_surrogate_versions_predictions_and_drift_checks(store):
    measurements.save_device(store, FAKE_DEVICE)
    args = dict(device_id=FAKE_DEVICE["device_id"], protocol="p", objective="latency", model_kind="linear",
                features=["f"], train_ids=["a"], figures={"train_n": 1}, model={"kind": "linear", "seed": 0,
                                                                                 "rel_std": 0.1})
    assert surrogates.insert_next_version(store, "s1", **args) == 1
    assert surrogates.insert_next_version(store, "s2", **args, source_surrogate_id="s1") == 2
    latest = surrogates.latest(store, FAKE_DEVICE["device_id"], "p", "latency")
    assert (latest.surrogate_id, latest.version, latest.source_surrogate_id, latest.figures) == ("s2", 2, "s1",
                                                                                                 {"train_n": 1})
    assert surrogates.latest(store, FAKE_DEVICE["device_id"], "p", "latency", version=1).surrogate_id == "s1"
    assert surrogates.latest(store, FAKE_DEVICE["device_id"], "p", "memory") is None
    assert [(r.surrogate_id, r.device_name) for r in surrogates.latest_per_key(store)] == [("s2", "fake-device")]

    with store.write() as conn:
        conn.execute("INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed,"
                     " status, created_at, updated_at) VALUES ('r', 'gpt2', '{}', 'random', '[]', '{}', 0, 'created',"
                     " 0, 0)")
    cfg = small_space("gpt2").sample(random.Random(9))
    surrogates.record_predictions(store, "r", [cfg], [surrogates.Prediction(cfg.arch_id, "latency", 2.0, 0.1, "measure")])
    with store.write() as conn:
        surrogates.set_measured(conn, "r", cfg.arch_id, "latency", 2.5)
    assert surrogates.measured_predictions(store, "r", "latency") == [{"mean": 2.0, "measured": 2.5}]
    assert surrogates.assisted_runs(store) == ["r"]

    measurements.replace(store, {"arch_id": store.cfgs[0].arch_id, "device_id": FAKE_DEVICE["device_id"],
                                 "protocol": "p", "latency_ms": 1.0, "measured_at": time.time() - 1})
    check = {"run_id": "r", "check_index": 0, "arch_id": cfg.arch_id, "eval_index": 5, "latency_ms": 3.0,
             "ratio": 1.5, "flagged": 1, "measured_at": time.time()}
    surrogates.record_drift_check(store, cfg, check, FAKE_DEVICE["device_id"], "p", mark_since=0.0,
                                  mark={"run_id": "r", "check": 0})
    assert [c["ratio"] for c in surrogates.drift_checks(store, "r")] == [1.5]
    assert measurements.training_rows(store, FAKE_DEVICE["device_id"], "p", "latency_ms") == []  # drift-marked


def test_audit_entries_round_trip(store):
    audit.append(store, audit.AuditEntry(1.0, "ann", "operator", "password", "launch", "r1", "ok", {"b": 2}))
    audit.append(store, audit.AuditEntry(2.0, "bob", "viewer", "-", "delete", None, "denied"))
    newest = audit.newest(store)
    assert [(e.user, e.detail) for e in newest] == [("bob", None), ("ann", {"b": 2})]
    assert [e.action for e in audit.newest(store, user="ann")] == ["launch"]
    assert audit.users_and_actions(store) == (["ann", "bob"], ["delete", "launch"])


def test_the_surrogate_layer_imports_nothing_above_it():
    code = ("import sys, lts.surrogate.assist, lts.surrogate.fit, lts.surrogate.transfer, lts.surrogate.views, "
            "lts.surrogate.drift; bad = sorted(m for m in sys.modules if m.startswith(('lts.search', 'lts.validate', "
            "'lts.decide', 'lts.team', 'lts.explore'))); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
