
import pytest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.errors import LtsError
from lts.objectives import Constraints, objective_matrix, parse_objectives
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


# -- settings that used to hang, or to be accepted and misbehave -------------------------------------
import itertools  # noqa: E402

from lts.space.counts import decoder_params  # noqa: E402
from lts.search.strategies import EvolutionSettings  # noqa: E402
from lts.space.ranges import SearchSpace  # noqa: E402


@pytest.mark.parametrize("kw", [{"generation": 0}, {"generation": -3}, {"population": 0}, {"population": 10**9},
                                {"generation": True}, {"mutation_prob": 2.0}, {"crossover_prob": float("nan")}])
def test_evolution_settings_are_bounded(kw):
    with pytest.raises(LtsError, match=next(iter(kw))):
        EvolutionSettings(**kw)


@pytest.mark.parametrize("kw", [{"max_latency_ms": float("nan")}, {"max_latency_ms": float("inf")},
                                {"max_memory_mb": 0}, {"max_memory_mb": True}, {"min_params": 0},
                                {"min_params": 2.5}, {"max_params": "7"}, {"min_params": 7, "max_params": 6}])
def test_constraints_refuse_nan_inf_and_wrong_types(kw):
    with pytest.raises(LtsError):
        Constraints(**kw)


@pytest.mark.parametrize("kw", [{"time_budget": float("nan"), "budget": None}, {"time_budget": float("inf")},
                                {"budget": 2.5}, {"budget": True}])
def test_search_settings_refuse_nan_budgets(kw):
    with pytest.raises(LtsError, match="budget"):
        SearchSettings(space=small_space("gpt2"), **kw)


def test_unsatisfiable_params_bound_is_refused_naming_the_space_range():
    space = small_space("gpt2")
    fewest, most = space.decoder_param_range()
    with pytest.raises(LtsError) as err:
        SearchSettings(space=space, constraints=Constraints(min_params=most + 1))
    assert str(err.value) == (f"no architecture of this space has >= {most + 1:,} decoder parameters "
                              f"(the space spans {fewest:,} - {most:,})")
    with pytest.raises(LtsError, match=f"<= {fewest - 1:,} decoder parameters"):
        SearchSettings(space=space, constraints=Constraints(max_params=fewest - 1))


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_min_params_near_the_top_spends_the_whole_budget(tmp_path, strategy):
    store = Store(tmp_path / "s.db")
    space = SearchSpace.default("gpt2")
    lo = int(0.95 * space.decoder_param_range()[1])
    run_id, runner = start(store, space=space, strategy=strategy, budget=30, seed=2, objectives=("proxy",),
                           evolution=EvolutionSettings(population=10), constraints=Constraints(min_params=lo))
    run = runner.run_to_end()
    assert run["status"] == "finished" and run["n_evaluated"] == 30 and run["message"] is None
    assert all(r["decoder_params"] >= lo for r in store.run_rows(run_id))


def test_unconstrained_proposals_follow_the_old_path():
    # no bound: no extra random draw, so runs (and resumes of runs) made before bounds existed agree
    import random

    from lts.search.strategies import propose

    space = small_space("gpt2")
    a, b = random.Random(3), random.Random(3)
    assert propose("random", space, [], ("proxy",), a) == space.sample(b)
    assert a.getstate() == b.getstate()


def test_exhausted_and_unreachable_are_told_apart(tmp_path):
    store = Store(tmp_path / "s.db")
    tiny = small_space("gpt2", n_layer=[1], d_model=[16], n_head=[1], d_inner={"min": 8, "max": 10}, d_embed=[8],
                       div_val=[1])
    assert tiny.size() == 3
    run_id, runner = start(store, space=tiny, budget=10, objectives=("proxy",))
    run = runner.run_to_end()
    assert run["n_evaluated"] == 3 and run["message"] == "the space has no unevaluated architecture left"
    # every decoder-parameter count of this space (GPT-2's depends on d_model and the d_inner list only)
    space = small_space("gpt2", n_layer={"min": 1, "max": 2}, d_inner=[8, 64])
    counts = {decoder_params(space.make(n_layer=n, d_model=d, d_embed=8, div_val=1, n_head=[1] * n, d_inner=list(di)))
              for d in (16, 32, 48) for n in (1, 2) for di in itertools.product((8, 64), repeat=n)}
    gap = next(c + 1 for c in sorted(counts) if c + 1 not in counts)  # inside a reachable interval, but no architecture
    run_id, runner = start(store, space=space, budget=10, objectives=("proxy",),
                           constraints=Constraints(min_params=gap, max_params=gap))
    run = runner.run_to_end()
    assert run["n_evaluated"] == 0 and "found no unevaluated architecture with" in run["message"]
