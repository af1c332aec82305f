import json

import pytest

from helpers import FakeMeasure
from lts.errors import LtsError
from lts.store.bundle import export_runs, import_bundle, write_bundle
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


def test_round_trip_is_complete_and_idempotent(source, tmp_path):
    store, run_id = source
    path = tmp_path / "bundle.json"
    write_bundle(store, [run_id], path)
    team = Store(tmp_path / "team.db")
    added = import_bundle(team, path.read_bytes(), "bundle.json")
    assert added == {"runs": 1, "devices": 1, "architectures": 25, "measurements": 25, "run_members": 25}
    assert import_bundle(team, path.read_bytes(), "bundle.json") == {k: 0 for k in added}
    mine = store.run_rows(run_id)
    theirs = team.run_rows(run_id)
    assert mine == theirs
    assert team.run(run_id)["status"] == "finished"


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
