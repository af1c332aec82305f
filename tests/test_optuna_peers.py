"""Optuna's samplers as peer strategies: they run, resume on the uninterrupted path, respect bounds,
learn from exact parameters, and fail with one line when a run's state or optuna is missing."""

import random

import pytest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.objectives import Constraints
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.search.strategies import STRATEGIES, EvolutionSettings, make_strategy
from lts.store.db import Store

pytest.importorskip("optuna", reason="optuna (requirements.txt) is not installed")

PROTOCOL = "fake-b1"
FAST = ("optuna-nsga2", "optuna-tpe")  # GPSampler costs seconds per ask: one short run below


def start(store, measure=None, **kw):
    kw.setdefault("space", small_space("gpt2", n_layer={"min": 1, "max": 4}))
    run_id = create_run(store, SearchSettings(**kw), FAKE_DEVICE, PROTOCOL)
    return run_id, SearchRunner(store, run_id, measure=measure or FakeMeasure())


def order(store, run_id):
    return [r["arch_id"] for r in store.run_rows(run_id)]


def test_the_peers_are_registered_and_in_the_bundle_schema():
    from lts.store.bundle import STRATEGIES as BUNDLE_STRATEGIES

    assert {"optuna-nsga2", "optuna-tpe", "optuna-gp"} <= set(STRATEGIES)
    assert set(STRATEGIES) | {"darts"} == set(BUNDLE_STRATEGIES)


@pytest.mark.parametrize("strategy", FAST)
def test_a_peer_runs_to_budget_and_is_reproducible_from_its_seed(tmp_path, strategy):
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    kw = dict(strategy=strategy, budget=40, seed=3, evolution=EvolutionSettings(population=10))
    ra, runner = start(a, **kw)
    run = runner.run_to_end()
    assert run["status"] == "finished" and run["n_evaluated"] == 40
    assert len(set(order(a, ra))) == 40  # never the same architecture twice
    rb, runner = start(b, **kw)
    runner.run_to_end()
    assert order(a, ra) == order(b, rb)


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


@pytest.mark.parametrize("strategy,crash_after", [("optuna-nsga2", 0), ("optuna-nsga2", 14), ("optuna-nsga2", 27),
                                                  ("optuna-tpe", 14), ("optuna-tpe", 31)])
def test_a_resumed_peer_follows_the_uninterrupted_path(tmp_path, strategy, crash_after):
    kw = dict(strategy=strategy, budget=40, seed=5, evolution=EvolutionSettings(population=10, generation=6))
    reference = Store(tmp_path / "ref.db")
    ref_id, runner = start(reference, **kw)
    runner.run_to_end()
    store = Store(tmp_path / "crash.db")
    run_id, runner = start(store, CrashingMeasure(crash_after), **kw)
    with pytest.raises(Crash):
        runner.run_to_end()
    before = order(store, run_id)
    resumed = FakeMeasure()
    SearchRunner(store, run_id, measure=resumed).run_to_end()
    assert order(store, run_id) == order(reference, ref_id)
    assert set(resumed.calls).isdisjoint(before)


def test_nsga2_selects_parents_by_generation_and_the_study_holds_exact_parameters(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id, runner = start(store, strategy="optuna-nsga2", budget=30, seed=1,
                           evolution=EvolutionSettings(population=10, generation=10))
    runner.run_to_end()
    s = runner.strategy
    study = s.study(runner.members)
    trials = study.trials
    assert {t.system_attrs["NSGAIISampler:generation"] for t in trials} == {0, 1, 2}
    by_id = {m["arch_id"]: m for m in runner.members}
    for t, (params, arch_id, _, _) in zip(trials, s._trials):
        cfg = s.decode([t.params[g] for g in s.genes])
        assert cfg.arch_id == arch_id  # the trial's parameters are those of the config evaluated
        if t.state.name == "COMPLETE":
            assert t.values[0] == -by_id[arch_id]["decoder_params"]  # proxy maximised: told negated


def test_encoding_round_trips_and_repairs_heads_and_div_val():
    space = small_space("gpt2", n_layer={"min": 1, "max": 4}, n_head=[1, 2, 3, 4])
    s = make_strategy("optuna-tpe", space, ("proxy",), EvolutionSettings(), 0)
    lows = [d.low for d in s.distributions().values()]
    rng = random.Random(0)
    for _ in range(50):
        cfg = space.sample(rng)
        params = s.encode(cfg, lows)
        assert s.decode(params) == cfg
    # 3 heads do not divide d_model 32: the nearest that does (2 and 4 tie: the smaller); div_val 4 empties a cluster of
    # d_embed 8 (two cutoffs: 8 // 4**2 = 0): the nearest valid one (2)
    p = dict(zip(s.genes, lows))
    p.update(n_layer=2, d_model=1, n_head_0=2, n_head_1=3, d_embed=0, div_val=2)
    cfg = s.decode([p[g] for g in s.genes])
    assert (cfg.d_model, cfg.n_head, cfg.d_embed, cfg.div_val) == (32, (2, 4), 8, 2)
    space.check(cfg)


@pytest.mark.parametrize("strategy", FAST)
def test_a_peer_searches_inside_decoder_parameter_bounds(tmp_path, strategy):
    from lts.space.ranges import SearchSpace

    store = Store(tmp_path / "s.db")
    space = SearchSpace.default("gpt2")
    lo = int(0.95 * space.decoder_param_range()[1])
    run_id, runner = start(store, space=space, strategy=strategy, budget=25, seed=2, objectives=("proxy",),
                           evolution=EvolutionSettings(population=10), constraints=Constraints(min_params=lo))
    run = runner.run_to_end()
    assert run["status"] == "finished" and run["n_evaluated"] == 25
    assert all(r["decoder_params"] >= lo for r in store.run_rows(run_id))


def test_failed_and_infeasible_members_are_fail_and_constrained_trials(tmp_path):
    import statistics

    from lts.space.counts import forward_flops

    store = Store(tmp_path / "s.db")
    space = small_space("gpt2", n_layer={"min": 1, "max": 4})
    rng = random.Random(0)
    limit = statistics.median(forward_flops(space.sample(rng)) / 1e6 for _ in range(40))  # FakeMeasure's latency
    probe = make_strategy("optuna-nsga2", space, ("proxy",), EvolutionSettings(), 0)
    fail_on = {probe.propose([]).arch_id}  # the first proposal of seed 0 is refused by the device
    run_id, runner = start(store, FakeMeasure(fail_on=fail_on), strategy="optuna-nsga2", budget=20, seed=0,
                           evolution=EvolutionSettings(population=10), constraints=Constraints(max_latency_ms=limit))
    run = runner.run_to_end()
    assert run["n_evaluated"] == 20
    study = runner.strategy.study(runner.members)
    states = {t.state.name for t in study.trials}
    assert states <= {"COMPLETE", "FAIL"} and "FAIL" in states
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert runner.strategy._trials[study.trials.index(failed[0])][1] in fail_on
    feasible = {m["arch_id"]: m["feasible"] for m in runner.members}
    assert 0 < sum(feasible.values()) < 19  # some over the latency limit, with values: constrained trials
    for t, rec in zip(study.trials, runner.strategy._trials):
        if t.state.name == "COMPLETE":
            assert t.constraints == {"lts_infeasible": 0.0 if feasible[rec[1]] else 1.0}


def test_gp_sampler_proposes_after_its_random_start(tmp_path):
    store = Store(tmp_path / "s.db")
    space = small_space("gpt2", n_layer={"min": 1, "max": 2})
    run_id, runner = start(store, space=space, strategy="optuna-gp", budget=6, seed=0, objectives=("proxy", "latency"),
                           evolution=EvolutionSettings(population=4, generation=2))
    run = runner.run_to_end()
    assert run["status"] == "finished" and run["n_evaluated"] == 6
    assert any(k.startswith("gp:") for t in runner.strategy._trials[4:] for k in t[3])  # GP-chosen, not random


def test_without_optuna_the_error_is_one_line(monkeypatch):
    import builtins

    from lts.errors import LtsError

    real = builtins.__import__

    def no_optuna(name, *a, **kw):
        if name == "optuna" or name.startswith("optuna."):
            raise ImportError("No module named 'optuna'")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    s = make_strategy("optuna-tpe", small_space("gpt2"), ("proxy",), EvolutionSettings(), 0)
    with pytest.raises(LtsError, match="need optuna: pip install"):
        s.propose([])
