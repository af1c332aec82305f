import json

import numpy as np
import pytest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.errors import LtsError
from lts.search.objectives import Constraints, objective_matrix, parse_objectives
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.store.db import Store
from test_pareto import brute_force_front

PROTOCOL = "fake-b1"


def start(store, measure=None, **kw):
    kw.setdefault("space", small_space("gpt2", n_layer={"min": 1, "max": 4}))
    settings = SearchSettings(**kw)
    run_id = create_run(store, settings, FAKE_DEVICE, PROTOCOL)
    return run_id, SearchRunner(store, run_id, measure=measure or FakeMeasure())


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_search_runs_to_budget_with_a_correct_frontier(tmp_path, strategy):
    store = Store(tmp_path / "s.db")
    measure = FakeMeasure()
    run_id, runner = start(store, measure, strategy=strategy, budget=45, seed=1)
    run = runner.run_to_end()
    assert run["status"] == "finished" and run["n_evaluated"] == 45
    rows = store.run_rows(run_id)
    assert len(rows) == 45 == len({r["arch_id"] for r in rows}) == len(measure.calls)
    assert [r["eval_index"] for r in rows] == list(range(45))
    F = objective_matrix(rows, ("proxy", "latency", "memory"))
    expected = brute_force_front(F)
    assert [bool(r["on_frontier"]) for r in rows] == list(expected)
    assert run["frontier_size"] == int(expected.sum())
    assert 0 < run["hypervolume"] < 1


def test_measurements_are_cached_per_device_and_protocol(tmp_path):
    store = Store(tmp_path / "s.db")
    first = FakeMeasure()
    start(store, first, budget=30, seed=3)[1].run_to_end()
    again = FakeMeasure()
    run_id, runner = start(store, again, budget=30, seed=3)
    runner.run_to_end()
    assert again.calls == []  # same seed, same device: every candidate was measured before
    assert store.db["measurements"].count == 30
    assert len(store.run_rows(run_id)) == 30


def test_infeasible_and_constraints(tmp_path):
    store = Store(tmp_path / "s.db")
    space = small_space("gpt2", n_layer={"min": 1, "max": 4})
    probe = FakeMeasure()
    import random

    doomed = {space.sample(random.Random(9)).arch_id}
    run_id, runner = start(store, FakeMeasure(fail_on=doomed), space=space, budget=40, seed=9,
                           constraints=Constraints(max_latency_ms=0.5, min_params=2000))
    runner.run_to_end()
    rows = store.run_rows(run_id)
    assert all(r["decoder_params"] >= 2000 for r in rows)  # filtered before measuring
    for r in rows:
        should = r["infeasible"] is None and r["latency_ms"] <= 0.5
        assert bool(r["feasible"]) == should
        if r["on_frontier"]:
            assert r["feasible"]
    assert probe.calls == []


def test_proxy_only_search_measures_nothing(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id, runner = start(store, None, objectives=("proxy",), budget=25)
    run = runner.run_to_end()
    assert run["n_evaluated"] == 25 and store.db["measurements"].count == 0
    with pytest.raises(LtsError, match="measure function"):
        start(store, None, budget=5)[1].__class__(store, create_run(store, SearchSettings(space=small_space("gpt2"), budget=5), FAKE_DEVICE, PROTOCOL))


class Crash(Exception):
    pass


class CrashingMeasure(FakeMeasure):
    def __init__(self, after):
        super().__init__()
        self.after = after

    def __call__(self, cfg):
        if len(self.calls) == self.after:
            raise Crash("simulated death")
        return super().__call__(cfg)


@pytest.mark.parametrize("crash_after", [0, 7, 20, 33])
def test_resume_follows_the_uninterrupted_path(tmp_path, crash_after):
    reference = Store(tmp_path / "ref.db")
    ref_id, runner = start(reference, budget=50, seed=5)
    runner.run_to_end()
    ref_order = [r["arch_id"] for r in reference.run_rows(ref_id)]

    store = Store(tmp_path / "crash.db")
    run_id, runner = start(store, CrashingMeasure(crash_after), budget=50, seed=5)
    with pytest.raises(Crash):
        runner.run_to_end()
    assert store.run(run_id)["status"] == "failed"
    before = [r["arch_id"] for r in store.run_rows(run_id)]
    assert before == ref_order[: len(before)]
    resumed = FakeMeasure()
    SearchRunner(store, run_id, measure=resumed).run_to_end()
    after = [r["arch_id"] for r in store.run_rows(run_id)]
    assert after == ref_order
    assert set(resumed.calls).isdisjoint(before)  # nothing evaluated twice
    assert store.run(run_id)["status"] == "finished"


def test_cancel_is_honoured(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id, _ = start(store, budget=40)

    class CancelAfter(FakeMeasure):
        def __call__(self, cfg):
            if len(self.calls) == 5:
                with store.write() as conn:
                    conn.execute("UPDATE runs SET status='cancelling' WHERE run_id=?", (run_id,))
            return super().__call__(cfg)

    run = SearchRunner(store, run_id, measure=CancelAfter()).run_to_end()
    assert run["status"] == "cancelled" and run["n_evaluated"] == 6


def test_time_budget(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id, runner = start(store, budget=None, time_budget=0.5)
    run = runner.run_to_end()
    assert run["status"] == "finished" and run["n_evaluated"] >= 1 and run["elapsed"] >= 0.5


@pytest.mark.parametrize("text, message", [("proxy,speed", "unknown objective"), ("latency", "must include 'proxy'"),
                                           ("proxy,proxy", "twice")])
def test_bad_objectives(text, message):
    with pytest.raises(LtsError, match=message):
        parse_objectives(text)


def test_bad_settings():
    with pytest.raises(LtsError, match="strategy"):
        SearchSettings(space=small_space("gpt2"), strategy="annealing")
    with pytest.raises(LtsError, match="budget"):
        SearchSettings(space=small_space("gpt2"), budget=None)
    with pytest.raises(LtsError, match="positive"):
        Constraints(max_latency_ms=-1)
