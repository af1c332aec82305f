"""Provenance, re-measuring (fake and real, queued in the background) and reproducibility bundles."""

from __future__ import annotations

import json
import time

import pytest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.cost.protocol import Protocol
from lts.decide.provenance import VarianceRule, history, parse_protocol_key, protocol_from_key, provenance
from lts.decide.remeasure import RemeasureRequest, job_keys, jobs, queue_remeasure, remeasure, side_by_side
from lts.decide.repro import compare_packages, reproduce_run, reproductions
from lts.errors import LtsError
from lts.search.runner import SearchRunner
from lts.search.exchange import export_runs, import_bundle, package_versions
from lts.store.db import Store
from test_dashboard import PROTOCOL, seed
from test_search import start


@pytest.fixture
def seeded(tmp_path):
    path = tmp_path / "lts.db"
    return path, seed(path)


@pytest.mark.parametrize("protocol", [Protocol(), Protocol(batch=4, seq_len=64), Protocol(threads=2),
                                      Protocol(clock="wall"), Protocol(kind="cuda")])
def test_protocol_keys_round_trip(protocol):
    parts = parse_protocol_key(protocol.key)
    assert parts["threads"] == protocol.threads and parts["clock"] == protocol.clock
    assert protocol_from_key(protocol.key).key == protocol.key
    assert parse_protocol_key("bench") is None
    with pytest.raises(LtsError, match="not of the form"):
        protocol_from_key("p")


def test_provenance_flags_noisy_points_and_carries_the_fingerprint(seeded):
    s = Store(seeded[0])
    df = provenance(s)
    assert len(df) == s.db["measurements"].count
    assert (df["threads"] == 1).all() and (df["protocol"] == PROTOCOL).all()
    depth = df[df["device_name"] == "depth-bound"]
    assert (depth["gpu"] == "fake GPU").all() and (depth["cpu_model"] == "test").all()
    noisy = depth["latency_cv"] > 0.05
    assert noisy.any() and (depth["high_variance"] == noisy).all()
    assert all("CV 8.0% > 5%" in w for w in depth.loc[noisy, "why"])
    assert df["latency_sd_ms"].equals(df["latency_ms"] * df["latency_cv"])
    strict = provenance(s, rule=VarianceRule(min_repeats=6))  # the fake takes 5 repeats
    assert strict["high_variance"].all()


def test_remeasure_keeps_the_old_measurement(seeded):
    s = Store(seeded[0])
    arch = seeded[1]["front"][0]["arch_id"]
    old = s.measurement(arch, FAKE_DEVICE["device_id"], PROTOCOL)

    class Faster(FakeMeasure):
        def __call__(self, cfg):
            return {**super().__call__(cfg), "latency_ms": old["latency_ms"] / 2, "latency_cv": 0.002}

    table = remeasure(s, RemeasureRequest((arch,), FAKE_DEVICE["name"]), measure=Faster(), device=FAKE_DEVICE)
    row = table.iloc[0]
    assert row["old_latency_ms"] == old["latency_ms"] and row["new_latency_ms"] == old["latency_ms"] / 2
    assert row["latency_change_pct"] == pytest.approx(-50)
    assert s.measurement(arch, FAKE_DEVICE["device_id"], PROTOCOL)["latency_cv"] == 0.002
    h = history(s, [arch], FAKE_DEVICE["device_id"])
    assert list(h["state"]) == ["current", "earlier"] and h["latency_ms"].iloc[1] == old["latency_ms"]
    assert provenance(s, arch_ids=[arch])["n_previous"].max() == 1
    with pytest.raises(LtsError, match="no architecture"):
        remeasure(s, RemeasureRequest(("0" * 16,), "x"), measure=FakeMeasure(), device=FAKE_DEVICE)


def test_queued_remeasure_measures_for_real_in_the_background(tmp_path):
    """The dashboard's action end to end: a job row, a detached `lts remeasure`, real worker processes."""
    from lts.cost.device import detect_device

    db = tmp_path / "host.db"
    s = Store(db)
    tiny = small_space("gpt2").sample(__import__("random").Random(0))
    here = detect_device("test-host", threads=1).to_dict()
    with s.write() as conn:
        s.upsert_architecture(conn, tiny)
        s.upsert_device(conn, here)
        s.insert_measurement(conn, {"arch_id": tiny.arch_id, "device_id": here["device_id"], "protocol": Protocol().key,
                                    "latency_ms": 999.0, "latency_cv": 0.5, "repeats": 3, "peak_memory_mb": 1.0,
                                    "measured_at": time.time() - 60})
    job = queue_remeasure(s, db, RemeasureRequest((tiny.arch_id,), "test-host"))
    deadline = time.time() + 240
    while time.time() < deadline and jobs(s).set_index("job_id").loc[job, "status"] in ("queued", "running"):
        time.sleep(0.5)
    status = jobs(s).set_index("job_id").loc[job]
    log = (db.parent / "logs" / f"remeasure-{job}.log").read_text()
    assert status["status"] == "finished", log
    table = side_by_side(s, job_keys(s, job))
    row = table.iloc[0]
    assert row["old_latency_ms"] == 999.0 and 0 < row["new_latency_ms"] < 999.0 and row["new_repeats"] >= 3
    assert json.loads(log.splitlines()[0])["arch_id"] == tiny.arch_id


def test_reproducibility_bundle_round_trip_and_rerun(tmp_path):
    mine = Store(tmp_path / "mine.db")
    run_id, runner = start(mine, FakeMeasure(), budget=30, seed=5)
    runner.run_to_end()
    arch = mine.run_rows(run_id)[0]["arch_id"]
    remeasure(mine, RemeasureRequest((arch,), FAKE_DEVICE["name"], "fake-b1"), measure=FakeMeasure(),
              device=FAKE_DEVICE)
    bundle = export_runs(mine, [run_id])
    entry = bundle["reproduce"][0]
    assert entry["settings"]["seed"] == 5 and entry["settings"]["space"]["family"] == "gpt2"
    assert entry["device"]["device_id"] == FAKE_DEVICE["device_id"]
    assert entry["packages"]["pymoo"] and entry["packages"]["python"]
    assert set(entry["front"]) == {r["arch_id"] for r in mine.run_rows(run_id, frontier_only=True)}
    assert len(bundle["measurement_history"]) == 1

    theirs = Store(tmp_path / "theirs.db")
    import_bundle(theirs, json.dumps(bundle), "bundle.json")
    assert theirs.db["measurement_history"].count == 1
    other = {**FAKE_DEVICE, "device_id": "fa4edeadbeef00ff", "name": "their-device"}
    again = reproduce_run(theirs, run_id, device=other)
    assert theirs.run(again)["seed"] == 5 and theirs.run(again)["device_id"] == other["device_id"]
    SearchRunner(theirs, again, measure=FakeMeasure()).run_to_end()
    # the same deterministic device behaviour gives the same path, hence the same front
    assert ({r["arch_id"] for r in theirs.run_rows(again, frontier_only=True)} == set(entry["front"]))
    assert reproductions(theirs).to_dict("records") == [{"run_id": again, "reproduces": run_id}]
    diff = compare_packages(entry["packages"], package_versions())
    assert not diff.set_index("package").loc["pymoo", "differs"]


def test_bundles_without_the_new_sections_still_import(tmp_path):
    mine = Store(tmp_path / "mine.db")
    run_id, runner = start(mine, FakeMeasure(), budget=10, seed=1)
    runner.run_to_end()
    bundle = export_runs(mine, [run_id])
    del bundle["reproduce"], bundle["measurement_history"]
    assert import_bundle(Store(tmp_path / "t.db"), json.dumps(bundle))["runs"] == 1
    bundle = export_runs(mine, [run_id])
    bundle["reproduce"][0]["run_id"] = "elsewhere"
    with pytest.raises(LtsError, match="reproduce entry"):
        import_bundle(Store(tmp_path / "u.db"), json.dumps(bundle))


def test_reproduce_cli_imports_a_bundle_and_reruns_it(tmp_path, capsys):
    from lts.cli import main

    mine = Store(tmp_path / "mine.db")
    run_id, runner = start(mine, None, budget=12, seed=2, objectives=("proxy",))  # proxy only: no device needed
    runner.run_to_end()
    path = tmp_path / "b.json"
    path.write_text(json.dumps(export_runs(mine, [run_id])))
    assert main(["reproduce", str(path), "--db", str(tmp_path / "theirs.db")]) == 0
    out = capsys.readouterr().out
    assert f"reproduces {run_id}" in out and "status finished: 12 evaluated" in out
    theirs = Store(tmp_path / "theirs.db")
    again = reproductions(theirs)["run_id"].iloc[0]
    assert [r["arch_id"] for r in theirs.run_rows(again)] == [r["arch_id"] for r in mine.run_rows(run_id)]
