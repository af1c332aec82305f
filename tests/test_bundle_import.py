"""Importing results bundles: every bad bundle is refused with one line naming the field, and the
target database is left exactly as it was; good bundles import completely, once."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from helpers import FAKE_DEVICE, FakeMeasure
from lts.cli import main
from lts.decide.remeasure import RemeasureRequest, remeasure
from lts.errors import LtsError
from lts.space.config import config_from_dict
from lts.search.exchange import SUMMARY_KEYS, export_runs, import_bundle
from lts.store.db import Store
from test_search import PROTOCOL, start

N = 16  # evaluations in the exported run


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Any]:
    """One finished run (with one re-measured architecture, so it has history), exported once."""
    store = Store(tmp_path_factory.mktemp("source") / "device.db")
    run_id, runner = start(store, FakeMeasure(), budget=N, seed=3)
    runner.run_to_end()
    arch = store.run_rows(run_id)[0]["arch_id"]
    remeasure(store, RemeasureRequest((arch,), FAKE_DEVICE["name"], PROTOCOL), measure=FakeMeasure(),
              device=FAKE_DEVICE)
    bundle = export_runs(store, [run_id])
    store.close()
    assert len(bundle["members"]) == N and len(bundle["measurement_history"]) == 1
    return bundle


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A team database that already holds a run of its own (so 'unchanged' means something)."""
    path = tmp_path_factory.mktemp("team") / "team.db"
    store = Store(path)
    start(store, FakeMeasure(), budget=12, seed=9)[1].run_to_end()
    store.close()
    return path


@pytest.fixture
def target(template, tmp_path) -> Path:
    path = tmp_path / "team.db"
    shutil.copy(template, path)
    return path


def snapshot(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table: 'unchanged' is checked on content, not only counts."""
    store = Store(path)
    try:
        return {t: sorted(map(tuple, store.conn.execute(f"SELECT * FROM [{t}]").fetchall()), key=repr)
                for t in store.db.table_names() if not t.startswith("sqlite_")}
    finally:
        store.close()


def counts(path: Path) -> dict[str, int]:
    return {t: len(rows) for t, rows in snapshot(path).items()}


# -- mutations of a valid bundle: (name, mutate, words the message must contain) -------------
# A mutation edits the bundle dict in place, or returns the bytes to import instead.
Mutation = Callable[[dict[str, Any]], "bytes | None"]


def _set(section: str, i: int, key: str, value: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        b[section][i][key] = value
    return mutate


def _rename_run(new_id: str) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        old = b["runs"][0]["run_id"]
        for section in ("runs", "members", "reproduce"):
            for row in b[section]:
                if row["run_id"] == old:
                    row["run_id"] = new_id
    return mutate


def _raw(key: str, value: Any, text: str) -> Mutation:
    """Put a marker value in, then replace its JSON text: for what json.dumps will not write."""
    def mutate(b: dict[str, Any]) -> bytes:
        b["measurements"][0][key] = value
        return json.dumps(b).replace(json.dumps(value), text, 1).encode()
    return mutate


def _dup_eval_index(b: dict[str, Any]) -> None:
    b["members"][5]["eval_index"] = b["members"][4]["eval_index"]


def _gap(b: dict[str, Any]) -> None:
    b["members"][-1]["eval_index"] += 3


def _wrong_count(b: dict[str, Any]) -> None:
    b["runs"][0]["n_evaluated"] = N + 1


def _missing_member(b: dict[str, Any]) -> None:
    del b["members"][-1]


def _append_changed(section: str, key: str, value: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        b[section].append({**copy.deepcopy(b[section][0]), key: value})
    return mutate


def _deep(b: dict[str, Any]) -> bytes:
    return b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def _state(value: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        state = json.loads(b["runs"][0]["state_json"])
        state.update(value)
        b["runs"][0]["state_json"] = json.dumps(state)
    return mutate


def _space(**over: Any) -> Mutation:
    def mutate(b: dict[str, Any]) -> None:
        b["runs"][0]["space_json"] = json.dumps({**json.loads(b["runs"][0]["space_json"]), **over})
    return mutate


def _front(b: dict[str, Any]) -> None:
    b["reproduce"][0]["front"].append("0" * 16)


def _record_id(b: dict[str, Any]) -> None:
    b["devices"][0]["record"]["device_id"] = "someoneelse00001"


def _nan_in_config(b: dict[str, Any]) -> None:
    b["architectures"][0]["config"]["n_layer"] = float("nan")


def _nan_in_record(b: dict[str, Any]) -> None:
    b["devices"][0]["record"]["ram_gb"] = float("inf")


def _lone_surrogate(b: dict[str, Any]) -> bytes:
    b["runs"][0]["message"] = "MARK"
    return json.dumps(b).replace("MARK", "\\ud800").encode()


def _raw_surrogate(b: dict[str, Any]) -> bytes:
    b["devices"][0]["name"] = "MARK"
    return json.dumps(b).encode().replace(b"MARK", b"\xed\xa0\x80")


def _replaced_before(b: dict[str, Any]) -> None:
    h = b["measurement_history"][0]
    h["replaced_at"] = h["measured_at"] - 1


MUTATIONS: list[tuple[str, Mutation, str]] = [
    # rows that break a rule of their own (the schema)
    ("nan latency", _set("measurements", 0, "latency_ms", float("nan")), "measurements/0/latency_ms"),
    ("infinite seconds", _set("measurements", 0, "seconds", float("inf")), "measurements/0/seconds"),
    ("1e400 latency", _raw("latency_ms", 12345.678, "1e400"), "measurements/0/latency_ms"),
    ("-Infinity memory", _raw("peak_memory_mb", 12345.678, "-Infinity"), "measurements/0/peak_memory_mb"),
    ("negative latency", _set("measurements", 0, "latency_ms", -1.0), "measurements/0/latency_ms"),
    ("negative memory", _set("measurements", 0, "peak_memory_mb", -0.5), "measurements/0/peak_memory_mb"),
    ("negative cv", _set("measurements", 0, "latency_cv", -0.1), "measurements/0/latency_cv"),
    ("negative repeats", _set("measurements", 0, "repeats", -3), "measurements/0/repeats"),
    ("huge repeats", _set("measurements", 0, "repeats", 10**30), "measurements/0/repeats"),
    ("negative seconds", _set("measurements", 0, "seconds", -2.0), "measurements/0/seconds"),
    ("string measured_at", _set("measurements", 0, "measured_at", "now"), "measurements/0/measured_at"),
    ("created_at yesterday", _set("runs", 0, "created_at", "yesterday"), "runs/0/created_at"),
    ("updated_at far future", _set("runs", 0, "updated_at", 1e300), "runs/0/updated_at"),
    ("negative elapsed", _set("runs", 0, "elapsed", -1.0), "runs/0/elapsed"),
    ("negative n_evaluated", _set("runs", 0, "n_evaluated", -1), "runs/0/n_evaluated"),
    ("huge seed", _set("runs", 0, "seed", 10**30), "runs/0/seed"),
    ("unknown status", _set("runs", 0, "status", "exploded"), "runs/0/status"),
    ("unknown family", _set("runs", 0, "family", "bert"), "runs/0/family"),
    ("unknown strategy", _set("runs", 0, "strategy", "grid"), "runs/0/strategy"),
    ("negative eval_index", _set("members", 0, "eval_index", -1), "members/0/eval_index"),
    ("fractional eval_index", _set("members", 0, "eval_index", 1.5), "members/0/eval_index"),
    ("feasible 2", _set("members", 0, "feasible", 2), "members/0/feasible"),
    ("on_frontier true", _set("members", 0, "on_frontier", True), "members/0/on_frontier"),
    ("device kind", _set("devices", 0, "kind", "tpu"), "devices/0/kind"),
    ("huge message", _set("runs", 0, "message", "x" * 100_000), "runs/0/message"),
    ("top level list", lambda b: b"[]", "top level"),
    ("100k deep", _deep, "nested too deeply"),
    ("nan in a config", _nan_in_config, "architectures/0/config/n_layer"),
    ("infinity in a record", _nan_in_record, "devices/0/record/ram_gb"),
    ("lone surrogate", _lone_surrogate, "runs/0/message"),
    ("utf-8 encoded surrogate", _raw_surrogate, "devices/0/name"),
    # ids shaped like paths
    ("run id ../x", _rename_run("../x"), "run_id"),
    ("run id /", _rename_run("/"), "run_id"),
    ("run id with space", _rename_run("my run"), "run_id"),
    ("run id empty", _rename_run(""), "run_id"),
    ("run id too long", _rename_run("a" * 65), "run_id"),
    ("device id ../d", _set("devices", 0, "device_id", "../d"), "devices/0/device_id"),
    ("member arch id", _set("members", 0, "arch_id", "../../etc/passwd"), "members/0/arch_id"),
    ("measurement device id", _set("measurements", 0, "device_id", "a/b"), "measurements/0/device_id"),
    ("history job id", _set("measurement_history", 0, "job_id", "../j"), "measurement_history/0/job_id"),
    ("protocol with slash", _set("measurements", 0, "protocol", "x/../y"), "measurements/0/protocol"),
    # the JSON a run carries as text
    ("space not json", _set("runs", 0, "space_json", "not json"), "runs/0/space_json"),
    ("space a list", _set("runs", 0, "space_json", "[1, 2]"), "runs/0/space_json"),
    ("space bad range", _space(n_layer={"min": 3, "max": "x"}), "runs/0/space_json"),
    ("space unknown field", _space(n_layers=[2]), "runs/0/space_json"),
    ("space other family", _space(family="transxl", mem_len=6), "runs/0/space_json"),
    ("space too big", _space(name="s" * 70_000), "runs/0/space_json"),
    ("space NaN", _set("runs", 0, "space_json", '{"family": "gpt2", "vocab_size": NaN}'), "runs/0/space_json"),
    ("objectives object", _set("runs", 0, "objectives_json", "{}"), "runs/0/objectives_json"),
    ("objectives unknown", _set("runs", 0, "objectives_json", '["proxy", "speed"]'), "runs/0/objectives_json"),
    ("constraints list", _set("runs", 0, "constraints_json", "[]"), "runs/0/constraints_json"),
    ("constraints negative", _set("runs", 0, "constraints_json", '{"max_latency_ms": -1}'), "runs/0/constraints_json"),
    ("constraints unknown", _set("runs", 0, "constraints_json", '{"max_speed": 1}'), "runs/0/constraints_json"),
    ("state a list", _set("runs", 0, "state_json", "[1]"), "runs/0/state_json"),
    ("state bad evolution", _state({"evolution": {"bogus": 1}}), "runs/0/state_json"),
    ("state bad drift", _state({"drift": {"every": -1}}), "runs/0/state_json"),
    ("state bad rng", _state({"rng": "seven"}), "runs/0/state_json"),
    ("state bad protocol", _state({"protocol": {"clock": "sundial"}}), "runs/0/state_json"),
    # rules across rows
    ("duplicate eval_index", _dup_eval_index, "eval_index"),
    ("gap in eval_index", _gap, "eval_index"),
    ("n_evaluated != members", _wrong_count, "n_evaluated"),
    ("a member missing", _missing_member, "n_evaluated"),
    ("conflicting duplicate run", _append_changed("runs", "seed", 99), "runs/1"),
    ("conflicting duplicate member", _append_changed("members", "generation", 7), f"members/{N}"),
    ("conflicting duplicate measurement", _append_changed("measurements", "latency_ms", 1.0), "measurements/"),
    ("conflicting duplicate device", _append_changed("devices", "name", "other"), "devices/1"),
    ("front not a member", _front, "reproduce/0/front"),
    ("record of another device", _record_id, "devices/0/record"),
    ("replaced before measured", _replaced_before, "measurement_history/0/replaced_at"),
    ("dangling device", lambda b: b.update(devices=[]), "not in the bundle"),
]


def _bytes(bundle: dict[str, Any], mutate: Mutation) -> bytes:
    b = copy.deepcopy(bundle)
    out = mutate(b)
    return out if out is not None else json.dumps(b).encode()


@pytest.mark.parametrize("mutate, field", [pytest.param(m, f, id=n) for n, m, f in MUTATIONS])
def test_bad_bundle_is_refused_and_changes_nothing(exported, target, mutate, field):
    before = snapshot(target)
    store = Store(target)
    with pytest.raises(LtsError) as err:
        import_bundle(store, _bytes(exported, mutate), "b.json")
    store.close()
    message = str(err.value)
    assert field in message and "\n" not in message and message.startswith("b.json: "), message
    assert len(message) < 400, message
    assert snapshot(target) == before


@pytest.mark.parametrize("mutate, field", [pytest.param(m, f, id=n) for n, m, f in MUTATIONS[::4]])
def test_cli_refuses_with_one_line_and_exit_2(exported, target, tmp_path, capsys, mutate, field):
    path = tmp_path / "b.json"
    path.write_bytes(_bytes(exported, mutate))
    before = snapshot(target)
    assert main(["import", str(path), "--db", str(target)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and field in err and err.startswith("lts: error: ")
    assert snapshot(target) == before


# -- bundles that pass on their own but would corrupt what is here ---------------------------
def test_same_run_id_with_other_content_is_refused(exported, target):
    """The user's case: a local run of 12 and a bundle of 16 under the same id."""
    local = Store(target).query("SELECT run_id FROM runs")[0]["run_id"]
    before = snapshot(target)
    with pytest.raises(LtsError) as err:
        import_bundle(Store(target), _bytes(exported, _rename_run(local)), "b.json")
    assert f"run {local} already exists here with different content" in str(err.value)
    assert "\n" not in str(err.value)
    assert snapshot(target) == before


def test_same_run_with_other_members_is_refused(exported, target):
    store = Store(target)
    import_bundle(store, json.dumps(exported), "b.json")
    before = snapshot(target)
    b = copy.deepcopy(exported)
    b["members"][0]["generation"] += 1
    with pytest.raises(LtsError, match="already exists here with different content"):
        import_bundle(store, json.dumps(b), "b.json")
    assert snapshot(target) == before


def test_import_counts_what_it_adds_and_is_idempotent(exported, target):
    before = counts(target)
    store = Store(target)
    added = import_bundle(store, json.dumps(exported).encode(), "b.json")
    after = counts(target)
    assert set(added) == set(SUMMARY_KEYS)
    for table in ("runs", "devices", "architectures", "measurements", "run_members", "measurement_history"):
        assert added[table] == after[table] - before[table], table
    assert added["runs"] == 1 and added["run_members"] == N and added["measurement_history"] == 1
    assert added["devices"] == 0  # the team database already knows this device
    assert added["skipped_measurements"] == 0
    again = import_bundle(store, json.dumps(exported).encode(), "b.json")
    assert again == {k: 0 for k in SUMMARY_KEYS}
    assert counts(target) == after


def test_a_differing_local_measurement_is_kept_and_counted(exported, target):
    store = Store(target)
    m = exported["measurements"][0]
    with store.write() as conn:
        store.upsert_architecture(conn, config_from_dict(
            next(a["config"] for a in exported["architectures"] if a["arch_id"] == m["arch_id"])))
        store.insert_measurement(conn, {**m, "latency_ms": 999.0, "measured_at": 1.0e9})
    added = import_bundle(store, json.dumps(exported), "b.json")
    assert added["skipped_measurements"] == 1
    assert added["measurements"] == len(exported["measurements"]) - 1
    assert store.measurement(m["arch_id"], m["device_id"], m["protocol"])["latency_ms"] == 999.0


def test_identical_duplicates_collapse(exported, target):
    """Older exports of several runs on one device repeated shared measurements: still importable."""
    b = copy.deepcopy(exported)
    for section in ("devices", "architectures", "measurements", "measurement_history", "members"):
        b[section].append(copy.deepcopy(b[section][0]))
    added = import_bundle(Store(target), json.dumps(b), "b.json")
    assert added["run_members"] == N and added["measurements"] == len(exported["measurements"])


def test_bundle_from_an_earlier_release_imports(exported, target):
    b = copy.deepcopy(exported)
    del b["measurement_history"], b["reproduce"]
    added = import_bundle(Store(target), json.dumps(b), "old.json")
    assert added["runs"] == 1 and added["measurement_history"] == 0


def test_a_running_run_is_imported_as_imported(exported, target):
    b = copy.deepcopy(exported)
    b["runs"][0]["status"] = "running"
    store = Store(target)
    import_bundle(store, json.dumps(b), "b.json")
    assert store.run(b["runs"][0]["run_id"])["status"] == "imported"
    assert import_bundle(store, json.dumps(b), "b.json") == {k: 0 for k in SUMMARY_KEYS}


def test_cli_prints_the_summary(exported, target, tmp_path, capsys):
    path = tmp_path / "b.json"
    path.write_text(json.dumps(exported))
    assert main(["import", str(path), "--db", str(target)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"imported {path}: 1 new runs") and f"{N} new run_members" in out


def test_a_darts_run_round_trips(tmp_path):
    """A DARTS run counts training steps in n_evaluated and has one member: it exports and imports."""
    from lts.space.config import DartsConfig

    store = Store(tmp_path / "device.db")
    cfg = DartsConfig()
    with store.write() as conn:  # the rows lts.darts.search writes for a finished run
        conn.execute(
            "INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed,"
            " budget, status, n_evaluated, frontier_size, state_json, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ("0123456789ab", "darts", json.dumps({"family": "darts", "name": "darts-supernet", "steps": 40}),
             "darts", json.dumps(["supernet_loss"]), "{}", 0, 40, "finished", 40, 1,
             json.dumps({"history": [{"step": 10, "loss": 5.0}]}), 1.7e9, 1.7e9 + 5))
        store.upsert_architecture(conn, cfg)
        conn.execute("INSERT INTO run_members VALUES (?,?,?,?,?,?)", ("0123456789ab", cfg.arch_id, 0, 40, 1, 1))
    bundle = json.dumps(export_runs(store, ["0123456789ab"]))
    team = Store(tmp_path / "team.db")
    assert import_bundle(team, bundle, "d.json")["run_members"] == 1
    assert import_bundle(team, bundle, "d.json") == {k: 0 for k in SUMMARY_KEYS}
