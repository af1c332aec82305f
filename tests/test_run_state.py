"""Typed run state (settings / progress / relations by owner), the v6 migration on a database made by
the previous release, and proxies as search objectives (ZeroLM), resumable after kill -9."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import FAKE_DEVICE, FakeMeasure, kill_9_when
from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.objectives import objective, parse_objectives
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.space.ranges import SearchSpace
from lts.store import runs
from lts.search.exchange import export_runs, import_bundle
from lts.store.db import SCHEMA_VERSION, Store

RELEASE_DB = Path(__file__).parent / "data" / "release_v5.db"
SPACE = {"family": "gpt2", "n_layer": {"min": 1, "max": 3}, "d_model": [32, 64], "d_embed": [32, 64],
         "div_val": [1], "n_head": [2, 4], "d_inner": {"min": 64, "max": 256, "step": 32},
         "vocab_size": 512, "tgt_len": 32}


# -- the migration, on a database the previous release (schema v5) wrote -----------------------------
# tests/data/release_v5.db was made by lts at commit b62b8c0 with the CLI: two measured searches (one
# surrogate-assisted), a reproduction of the first, a proxy-only search, a validation, a DARTS search,
# a re-measure job, an audit entry, and a search killed with SIGKILL after 15 of 200 evaluations.
@pytest.fixture
def release_db(tmp_path: Path) -> Path:
    db = tmp_path / "lts.db"
    shutil.copy(RELEASE_DB, db)
    return db


def test_release_database_migrates_to_typed_state(release_db):
    import sqlite3

    raw = sqlite3.connect(release_db)
    before = {r[0]: json.loads(r[1]) for r in raw.execute("SELECT run_id, state_json FROM runs WHERE strategy != 'darts'")}
    counts = {t: raw.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("measurements", "validation_results", "remeasure_jobs", "audit_log")}
    counts["run_members"] = raw.execute(  # a DARTS run's one member moves with it to its own table
        "SELECT COUNT(*) FROM run_members JOIN runs USING (run_id) WHERE strategy != 'darts'").fetchone()[0]
    raw.close()
    assert raw and len(before) == 5

    store = Store(release_db)
    assert store.schema_version() == SCHEMA_VERSION
    for run_id, state in before.items():
        row = store.run(run_id)
        assert row["state_json"] is None  # one bag no more
        settings, progress = json.loads(row["settings_json"]), json.loads(row["progress_json"])
        assert progress.pop("version") == runs.PROGRESS_VERSION
        assert {**settings, **progress, **({"reproduces": row["reproduces"]} if row["reproduces"] else {})} == state
        assert set(progress) <= set(runs.PROGRESS_KEYS) and not set(settings) & set(runs.PROGRESS_KEYS)
        assert "evolution" in settings and "rng" in progress
    assert runs.reproductions(store) == [("68040882d982", "7636f675f344")]
    for table, n in counts.items():
        where = " WHERE run_id IN (SELECT run_id FROM runs WHERE strategy != 'darts')" if table == "run_members" else ""
        assert store.query(f"SELECT COUNT(*) AS n FROM {table}{where}")[0]["n"] == n, table
    # the killed run reads as stopped and resumes where it was, on the path it was on
    killed = store.run("9e1f07023aa1")
    assert lifecycle.effective_status(killed) == lifecycle.STOPPED and killed["n_evaluated"] == 15
    first = [m["arch_id"] for m in store.run_rows("9e1f07023aa1")]
    runner = SearchRunner(store, "9e1f07023aa1", measure=FakeMeasure())
    assert runner.state["generation"] >= 1 and runner.settings.evolution.population == 4
    final = runner.run_to_end()  # (a stand-in measurer: the real one checks it is the run's machine)
    assert final["status"] == "finished" and final["n_evaluated"] == 200
    assert [m["arch_id"] for m in store.run_rows("9e1f07023aa1")][:15] == first
    store.close()


def test_migrated_runs_export_and_import_both_ways(release_db, tmp_path):
    store = Store(release_db)
    ids = [r["run_id"] for r in store.runs() if r["strategy"] != "darts"]
    bundle = export_runs(store, ids)
    # bundles keep the one state_json object of every release, so older lts reads them too
    by_id = {r["run_id"]: r for r in bundle["runs"]}
    assert json.loads(by_id["68040882d982"]["state_json"])["reproduces"] == "7636f675f344"
    fresh = Store(tmp_path / "other.db")
    added = import_bundle(fresh, json.dumps(bundle))
    assert added["runs"] == len(ids)
    assert fresh.run("68040882d982")["reproduces"] == "7636f675f344"
    assert json.loads(fresh.run("7636f675f344")["settings_json"]) == json.loads(store.run("7636f675f344")["settings_json"])
    again = import_bundle(fresh, json.dumps(bundle))  # idempotent
    assert again["runs"] == 0
    ended = [i for i in ids if store.run(i)["status"] == "finished"]  # a live run comes back as 'imported'
    back = import_bundle(store, json.dumps(export_runs(fresh, ended)))  # and back where they came from
    assert back["runs"] == 0


def test_progress_and_settings_have_one_writer_each(tmp_path):
    with pytest.raises(ValueError):
        runs.progress_json({"protocol": {}})  # a setting written as progress
    store = Store(tmp_path / "lts.db")
    settings = SearchSettings(space=SearchSpace.from_dict(SPACE), objectives=("proxy",), budget=6,
                              evolution=__import__("lts.search.strategies", fromlist=["x"]).EvolutionSettings(population=3, generation=2))
    run_id = create_run(store, settings, None, None, state={"memory_limit_mb": 100.0})
    SearchRunner(store, run_id).run_to_end()
    row = store.run(run_id)
    assert json.loads(row["settings_json"])["memory_limit_mb"] == 100.0  # survived every progress write
    assert json.loads(row["progress_json"])["generation"] >= 2


def test_newer_progress_record_is_refused(tmp_path):
    store = Store(tmp_path / "lts.db")
    settings = SearchSettings(space=SearchSpace.from_dict(SPACE), objectives=("proxy",), budget=2)
    run_id = create_run(store, settings, None, None)
    with store.write() as conn:
        conn.execute("UPDATE runs SET progress_json = ? WHERE run_id = ?", (json.dumps({"version": 99}), run_id))
    with pytest.raises(LtsError, match="newer than this lts"):
        SearchRunner(store, run_id)


# -- proxies as objectives ---------------------------------------------------------------------------
def test_every_registered_proxy_is_an_objective():
    from lts.proxies.registry import PROXIES

    for name in PROXIES:
        o = objective(name)
        assert o.cheap and o.direction == ("max" if PROXIES[name].higher_is_better else "min")
    assert parse_objectives("zerolm,latency,memory") == ("zerolm", "latency", "memory")
    with pytest.raises(LtsError, match="unknown objective 'perplexity'"):
        parse_objectives("perplexity,latency")
    with pytest.raises(LtsError, match="quality proxy"):
        parse_objectives("latency,memory")


def test_zerolm_search_scores_caches_and_fronts(tmp_path):
    from lts.proxies.compute import ProxySettings, score
    from lts.proxies.registry import get
    from lts.pareto import pareto_mask
    from lts.objectives import objective_matrix
    from lts.search.strategies import EvolutionSettings
    from lts.space.config import config_from_json

    store = Store(tmp_path / "lts.db")
    settings = SearchSettings(space=SearchSpace.from_dict(SPACE), objectives=("zerolm", "latency"), budget=8,
                              evolution=EvolutionSettings(population=4, generation=2), seed=5)
    run_id = create_run(store, settings, FAKE_DEVICE, "fake-protocol")
    final = SearchRunner(store, run_id, measure=FakeMeasure()).run_to_end()
    assert final["status"] == "finished" and final["n_evaluated"] == 8
    rows = runs.members(store, run_id, ("zerolm",), settings.proxy_key)
    for r in rows[:3]:  # the cached value is the registry's value under the run's settings
        cfg = config_from_json(r["config_json"])
        assert r["proxy:zerolm"] == pytest.approx(score(cfg, [get("zerolm")], None, ProxySettings()).values["zerolm"])
    F = objective_matrix(rows, ("zerolm", "latency"))
    assert {r["arch_id"] for r, keep in zip(rows, pareto_mask(F)) if keep} == {r["arch_id"] for r in rows if r["on_frontier"]}
    # a second run on the same architectures reuses the scores (like measurements)
    n_scores = store.query("SELECT COUNT(*) AS n FROM proxy_scores")[0]["n"]
    again = create_run(store, settings, FAKE_DEVICE, "fake-protocol")
    SearchRunner(store, again, measure=FakeMeasure()).run_to_end()
    assert store.query("SELECT COUNT(*) AS n FROM proxy_scores")[0]["n"] == n_scores


def test_a_failing_proxy_is_data_not_the_end(tmp_path, monkeypatch):
    from lts.search import scoring

    def broken(self, cfg):
        return {n: (None, "RuntimeError: out of memory (test)", 0.0) for n in self.names}

    monkeypatch.setattr(scoring.ProxyScorer, "score", broken)
    store = Store(tmp_path / "lts.db")
    settings = SearchSettings(space=SearchSpace.from_dict(SPACE), objectives=("zerolm",), budget=3)
    run_id = create_run(store, settings, None, None)
    final = SearchRunner(store, run_id).run_to_end()
    assert final["status"] == "finished" and final["n_evaluated"] == 3
    assert not any(r["feasible"] for r in store.run_rows(run_id))
    errors = store.query("SELECT error FROM proxy_scores")
    assert errors and all("out of memory" in e["error"] for e in errors)


def _lts(*args: str, db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lts.cli", *args, "--db", str(db)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # real processes, one killed with SIGKILL
def test_zerolm_latency_memory_search_resumes_after_kill_9(tmp_path):
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    common = ("search", "--space", str(space), "--objectives", "zerolm,latency,memory", "--device-name", "ci",
              "--budget", "12", "--population", "4", "--generation", "3", "--seed", "7", "--no-progress")
    killed_db, whole_db = tmp_path / "killed.db", tmp_path / "whole.db"
    proc = _lts(*common, db=killed_db)
    store = kill_9_when(proc, killed_db, lambda s: s.query("SELECT COUNT(*) AS n FROM run_members")[0]["n"] >= 5)
    run_id = store.runs()[0]["run_id"]
    assert lifecycle.effective_status(store.run(run_id)) == lifecycle.STOPPED
    resumed = _lts("search", "--resume", run_id, "--no-progress", db=killed_db)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    whole = _lts(*common, db=whole_db)
    out2, err2 = whole.communicate(timeout=300)
    assert whole.returncode == 0, err2

    def path(db: Path) -> list[tuple[str, float]]:
        s = Store(db)
        rid = s.runs()[0]["run_id"]
        key = json.dumps(json.loads(s.run(rid)["settings_json"])["proxy_settings"], sort_keys=True)
        return [(r["arch_id"], r["proxy:zerolm"]) for r in runs.members(s, rid, ("zerolm",), key)]

    resumed_path, whole_path = path(killed_db), path(whole_db)
    assert len(resumed_path) == 12 and len({a for a, _ in resumed_path}) == 12  # none lost, none twice
    assert all(v is not None for _, v in resumed_path)
    # The first (random) population does not depend on measured values: the same architectures and
    # ZeroLM scores as the uninterrupted run. (Children do: measured latency differs between two
    # runs, so the paths may part after it; test_zerolm_resume_follows_the_uninterrupted_path
    # checks the whole path with a deterministic measurer.)
    assert resumed_path[:4] == whole_path[:4]
    assert Store(killed_db).run(run_id)["status"] == "finished"
    assert Store(killed_db).query("SELECT COUNT(*) AS n FROM proxy_scores")[0]["n"] == 12  # none scored twice


class _Crash(Exception):
    pass


@pytest.mark.parametrize("crash_after", [2, 6])
def test_zerolm_resume_follows_the_uninterrupted_path(tmp_path, crash_after):
    from lts.search.strategies import EvolutionSettings

    settings = SearchSettings(space=SearchSpace.from_dict(SPACE), objectives=("zerolm", "latency"), budget=10,
                              evolution=EvolutionSettings(population=4, generation=3), seed=11)

    def members(store, run_id):
        return [(r["arch_id"], r["proxy:zerolm"]) for r in runs.members(store, run_id, ("zerolm",), settings.proxy_key)]

    ref = Store(tmp_path / "ref.db")
    ref_id = create_run(ref, settings, FAKE_DEVICE, "fake")
    SearchRunner(ref, ref_id, measure=FakeMeasure()).run_to_end()

    class Crashing(FakeMeasure):
        def __call__(self, cfg):
            if len(self.calls) == crash_after:
                raise _Crash("simulated death")
            return super().__call__(cfg)

    store = Store(tmp_path / "crash.db")
    run_id = create_run(store, settings, FAKE_DEVICE, "fake")
    with pytest.raises(_Crash):
        SearchRunner(store, run_id, measure=Crashing()).run_to_end()
    assert len(members(store, run_id)) == crash_after
    SearchRunner(store, run_id, measure=FakeMeasure()).run_to_end()
    assert members(store, run_id) == members(ref, ref_id)


def test_an_earlier_release_darts_run_imports_as_a_darts_job(release_db, tmp_path):
    """The release database's DARTS run moved to darts_runs; a bundle of it made by that release
    (a row of runs) imports there too, once."""
    import sqlite3

    from lts.store import darts

    shutil.copy(RELEASE_DB, tmp_path / "old.db")  # as the earlier release left it
    store = Store(release_db)
    assert not [r for r in store.runs() if r["strategy"] == "darts"]
    job = darts.get(store, "cd866ca83f4b")
    assert job.status == "finished" and job.derived_arch_id
    with pytest.raises(LtsError, match="is a DARTS search"):  # one line, not "no run"
        export_runs(store, ["cd866ca83f4b"])
    # a bundle the earlier release wrote: its DARTS run is a row of runs
    old = sqlite3.connect(tmp_path / "old.db")
    old.row_factory = sqlite3.Row
    run = dict(old.execute("SELECT * FROM runs WHERE run_id = 'cd866ca83f4b'").fetchone())
    member = dict(old.execute("SELECT * FROM run_members WHERE run_id = 'cd866ca83f4b'").fetchone())
    arch = dict(old.execute("SELECT arch_id, config_json FROM architectures WHERE arch_id = ?",
                            (member["arch_id"],)).fetchone())
    from lts.store.bundle import FORMAT, RUN_COLUMNS, VERSION

    bundle = {"format": FORMAT, "version": VERSION, "lts_version": "0.x", "exported_at": 1.0, "devices": [],
              "architectures": [{"arch_id": arch["arch_id"], "config": json.loads(arch["config_json"])}],
              "measurements": [], "runs": [{k: run[k] for k in RUN_COLUMNS}], "members": [member]}
    fresh = Store(tmp_path / "team.db")
    assert import_bundle(fresh, json.dumps(bundle))["runs"] == 1
    assert darts.get(fresh, "cd866ca83f4b").derived_arch_id == arch["arch_id"] and not fresh.runs()
    assert import_bundle(fresh, json.dumps(bundle))["runs"] == 0  # once


def test_a_job_cancelled_before_its_process_starts_does_not_run(tmp_path):
    """The launcher writes the child's pid; a cancel before the child claims the job wins."""
    from lts.store import jobs

    store = Store(tmp_path / "lts.db")
    run_id = create_run(store, SearchSettings(space=SearchSpace.from_dict(SPACE), objectives=("proxy",), budget=2),
                        None, None)
    jobs.update(store, jobs.SEARCH, run_id, pid=os.getpid())  # as the launcher does for its child
    assert jobs.cancel(store, jobs.SEARCH, run_id) == lifecycle.CANCELLED
    with pytest.raises(LtsError, match="cancelled before it started"):
        jobs.claim(store, jobs.SEARCH, run_id)
    assert store.run(run_id)["status"] == lifecycle.CANCELLED and store.run(run_id)["n_evaluated"] == 0
    jobs.update(store, jobs.SEARCH, run_id, pid=None)  # a later resume by hand (another process) runs it
    jobs.claim(store, jobs.SEARCH, run_id)
    assert store.run(run_id)["status"] == lifecycle.RUNNING


def test_naming_objectives_needs_no_torch():
    """The Search page's objective menu and the explorer's quality axis list every proxy: that must not
    import torch (1-2 s on a cold dashboard process); computing one does."""
    code = ("import sys; from lts.objectives import objective, objective_names; names = objective_names(); "
            "assert 'zerolm' in names and objective('synflow').direction == 'max'; "
            "print('torch' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]
