import json

import pytest

from helpers import FakeMeasure
from lts.errors import LtsError
from lts.search.exchange import export_runs, import_bundle, write_bundle
from lts.store.db import Store
from test_search import start


@pytest.fixture
def source(tmp_path):
    store = Store(tmp_path / "device.db")
    run_id, runner = start(store, FakeMeasure(), budget=25, seed=2)
    runner.run_to_end()
    return store, run_id


def counts(store):
    return {t: store.db[t].count for t in ("runs", "devices", "architectures", "measurements", "run_members")}


# what the import writes, and the columns that must travel unchanged (created_at of a device or an
# architecture is when this database first saw it)
TABLES = {
    "runs": "run_id, family, space_json, strategy, objectives_json, constraints_json, seed, budget, time_budget,"
            " device_id, protocol, status, message, n_evaluated, frontier_size, hypervolume, elapsed, state_json,"
            " created_at, updated_at",
    "devices": "device_id, name, kind, record_json",
    "architectures": "arch_id, family, config_json, decoder_params, total_params, flops, n_layer, d_model",
    "measurements": "arch_id, device_id, protocol, latency_ms, latency_cv, repeats, peak_memory_mb, infeasible,"
                    " seconds, measured_at",
    "run_members": "run_id, arch_id, eval_index, generation, feasible, on_frontier",
    "measurement_history": "*",
}


def rows(store):
    return {t: sorted(map(tuple, store.conn.execute(f"SELECT {cols} FROM {t}").fetchall()))
            for t, cols in TABLES.items()}


def test_round_trip_is_complete_and_idempotent(source, tmp_path):
    store, run_id = source
    path = tmp_path / "bundle.json"
    write_bundle(store, [run_id], path)
    team = Store(tmp_path / "team.db")
    added = import_bundle(team, path.read_bytes(), "bundle.json")
    assert added == {"runs": 1, "devices": 1, "architectures": 25, "measurements": 25, "run_members": 25,
                     "measurement_history": 0, "skipped_measurements": 0}
    assert import_bundle(team, path.read_bytes(), "bundle.json") == {k: 0 for k in added}
    mine = store.run_rows(run_id)
    theirs = team.run_rows(run_id)
    assert mine == theirs
    assert team.run(run_id)["status"] == "finished"
    assert rows(team) == rows(store)  # the source holds this one run only: every row came across as it was
    assert import_bundle(store, path.read_bytes(), "bundle.json") == {k: 0 for k in added}  # back home: nothing new


def test_runs_sharing_a_device_export_each_measurement_once(tmp_path):
    """Two searches with one seed evaluate the same architectures on the same device and protocol."""
    store = Store(tmp_path / "device.db")
    ids = []
    for _ in range(2):
        run_id, runner = start(store, FakeMeasure(), budget=10, seed=4)
        runner.run_to_end()
        ids.append(run_id)
    bundle = export_runs(store, ids + ids[:1])  # a repeated id is exported once
    keys = [(m["arch_id"], m["device_id"], m["protocol"]) for m in bundle["measurements"]]
    assert len(keys) == len(set(keys)) == 10 and len(bundle["runs"]) == 2 and len(bundle["members"]) == 20
    team = Store(tmp_path / "team.db")
    added = import_bundle(team, json.dumps(bundle), "b.json")
    assert added["runs"] == 2 and added["measurements"] == 10 and added["run_members"] == 20
    assert rows(team) == rows(store)


def test_export_of_a_running_search_is_consistent(tmp_path, monkeypatch):
    """Exported while a search adds a member (and counts it, in one transaction) from another
    connection: the bundle holds the run and its members as of one moment, and imports."""
    import random

    from conftest import small_space

    store = Store(tmp_path / "device.db")
    run_id, runner = start(store, FakeMeasure(), budget=6, seed=1)
    runner.run_to_end()
    search = Store(tmp_path / "device.db")  # the search process's own connection
    real = Store.query
    calls = {"n": 0}

    def query(self, sql, params=()):
        out = real(self, sql, params)
        if self is store and sql.startswith("SELECT * FROM run_members") and calls["n"] == 0:
            calls["n"] += 1
            taken = {m["arch_id"] for m in out}
            cfg = next(c for c in (small_space("gpt2").sample(random.Random(k)) for k in range(100))
                       if c.arch_id not in taken)
            with search.write() as conn:  # one more evaluation lands between the reads of the export
                search.upsert_architecture(conn, cfg)
                conn.execute("INSERT INTO run_members VALUES (?, ?, 6, 9, 1, 0)", (run_id, cfg.arch_id))
                conn.execute("UPDATE runs SET n_evaluated = 7, updated_at = updated_at + 1 WHERE run_id = ?", (run_id,))
        return out

    monkeypatch.setattr(Store, "query", query)
    bundle = export_runs(store, [run_id])
    monkeypatch.setattr(Store, "query", real)
    assert calls["n"] == 1
    assert bundle["runs"][0]["n_evaluated"] == len(bundle["members"]) == 6  # the moment before the evaluation
    assert store.run(run_id)["n_evaluated"] == 7
    assert import_bundle(Store(tmp_path / "team.db"), json.dumps(bundle))["run_members"] == 6


def _mutilate(bundle, how):
    if how == "format":
        bundle["format"] = "something-else"
    elif how == "missing":
        del bundle["measurements"]
    elif how == "type":
        bundle["members"][0]["eval_index"] = "first"
    elif how == "config":
        bundle["architectures"][0]["config"]["n_head"] = [3] * bundle["architectures"][0]["config"]["n_layer"]
    elif how == "id":
        bundle["architectures"][0]["arch_id"] = "0" * 16
    elif how == "dangling":
        bundle["devices"] = []
    return json.dumps(bundle)


@pytest.mark.parametrize("how, message", [
    ("format", "format"), ("missing", "measurements"), ("type", "members/0/eval_index"),
    ("config", "n_head"), ("id", "does not match"), ("dangling", "not in the bundle"),
])
def test_bad_bundles_change_nothing(source, tmp_path, how, message):
    store, run_id = source
    team = Store(tmp_path / "team.db")
    before = counts(team)
    with pytest.raises(LtsError) as err:
        import_bundle(team, _mutilate(export_runs(store, [run_id]), how), "b.json")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert counts(team) == before


def test_not_json_and_too_big(tmp_path, monkeypatch):
    team = Store(tmp_path / "team.db")
    with pytest.raises(LtsError, match="not a JSON file"):
        import_bundle(team, b"\x89PNG....", "x.png")
    monkeypatch.setattr("lts.store.bundle.MAX_BYTES", 10)
    with pytest.raises(LtsError, match="limit"):
        import_bundle(team, b"{" + b" " * 20 + b"}", "big.json")


def test_unknown_run(source):
    store, _ = source
    with pytest.raises(LtsError, match="no run"):
        export_runs(store, ["nope"])
