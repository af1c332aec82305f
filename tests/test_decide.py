"""lts.decide against brute force: fronts under constraints, rank shifts, hypervolume history, samples, diffs."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import small_space
from helpers import FakeMeasure
from lts.decide.fronts import Limits, front_mask_2d, front_mask_nd, knee_position, pick
from lts.decide.layers import layer_diff, layer_table, settings_diff
from lts.decide.points import bounded_sample, data_version, device_points, main_protocols, run_points
from lts.decide.quality import HistorySettings, checkpoints, hv_history, quality_history, run_evaluations
from lts.decide.rankshift import rank_shift
from lts.objectives import objective_matrix
from lts.search.runner import run_hypervolume
from lts.store.db import Store
from test_dashboard import seed
from test_pareto import brute_force_front


def random_points(rng: np.random.Generator, n: int, devices=("a",)) -> pd.DataFrame:
    """Integer-valued costs: ties and duplicates, the cases that break fronts."""
    rows = []
    for d in devices:
        for i in range(n):
            rows.append({"source": d, "device_name": d, "arch_id": f"{i:016x}",
                         "decoder_params": int(rng.integers(1, 12)) * 1000, "latency_ms": float(rng.integers(1, 12)),
                         "peak_memory_mb": float(rng.integers(1, 12)), "feasible": int(rng.random() > 0.1)})
    return pd.DataFrame(rows)


def brute_mask(df: pd.DataFrame, cols_signs) -> np.ndarray:
    """Front by the definition, over feasible rows only."""
    ok = df["feasible"].astype(bool).to_numpy()
    F = np.column_stack([sign * df[c].to_numpy(float) for c, sign in cols_signs])
    mask = np.zeros(len(df), dtype=bool)
    mask[np.flatnonzero(ok)] = brute_force_front(F[ok])
    return mask


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("decide") / "lts.db"
    return path, seed(path)


@pytest.mark.parametrize("case", range(12))
def test_fronts_under_constraints_equal_brute_force(case):
    rng = np.random.default_rng(case)
    df = random_points(rng, int(rng.integers(5, 90)))
    limits = Limits(max_latency_ms=float(rng.integers(3, 12)) if case % 2 else None,
                    max_memory_mb=float(rng.integers(3, 12)) if case % 3 else None,
                    min_params=int(rng.integers(0, 6)) * 1000 if case % 4 else None)
    cost = "latency_ms" if case % 2 else "peak_memory_mb"
    p = pick(df, cost, limits)
    inside = df[df["feasible"].astype(bool)
                & (df["latency_ms"] <= (limits.max_latency_ms or np.inf))
                & (df["peak_memory_mb"] <= (limits.max_memory_mb or np.inf))
                & (df["decoder_params"] >= (limits.min_params or 0))]
    assert p.n_within == len(inside)
    want2 = inside[brute_mask(inside, [("decoder_params", -1), (cost, 1)])]
    assert sorted(p.front.index) == sorted(want2.index)
    wantn = inside[brute_mask(inside, [("decoder_params", -1), ("latency_ms", 1), ("peak_memory_mb", 1)])]
    assert sorted(p.nd_members.index) == sorted(wantn.index)
    assert set(p.front.index[p.front["on_front_nd"]]) <= set(wantn.index)
    assert list(p.front[cost]) == sorted(p.front[cost])
    if len(inside):
        best = inside["decoder_params"].max()
        assert p.best["decoder_params"] == best
        assert p.best[cost] == inside[inside["decoder_params"] == best][cost].min()
        assert "Best proxy" in p.reasons["best"]
    else:
        assert p.best is None and "Nothing meets" in p.reasons["best"]


def test_masks_ignore_infeasible_and_missing_costs():
    df = pd.DataFrame({"decoder_params": [10, 20, 30], "latency_ms": [1.0, None, 0.5],
                       "peak_memory_mb": [1.0, 1.0, 1.0], "feasible": [1, 1, 0]})
    assert list(front_mask_2d(df, "latency_ms")) == [True, False, False]
    assert list(front_mask_nd(df)) == [True, False, False]


def test_knee_is_the_bend_of_the_front():
    cost = np.array([1, 2, 4, 8, 16, 32.0])
    params = np.array([100, 400, 1600, 1800, 1900, 2000])  # fast growth, then a plateau from 4 on
    front = pd.DataFrame({"latency_ms": cost, "decoder_params": params})
    assert knee_position(front, "latency_ms") == 2
    straight = pd.DataFrame({"latency_ms": cost, "decoder_params": cost * 100})
    assert knee_position(straight, "latency_ms") is None  # a straight line on log axes has no bend
    assert knee_position(front.iloc[:2], "latency_ms") is None
    p = pick(front.assign(peak_memory_mb=1.0, feasible=1), "latency_ms", Limits())
    assert p.knee["latency_ms"] == 4 and "Knee" in p.reasons["knee"]


@pytest.mark.parametrize("case", range(8))
def test_rank_shift_table_equals_brute_force(case):
    rng = np.random.default_rng(100 + case)
    devices = ("a", "b", "c")[: 2 + case % 2]
    df = random_points(rng, int(rng.integers(8, 60)), devices)
    df = df.sample(frac=0.85, random_state=case)  # not every architecture on every device
    table, pairs = rank_shift(df)
    objs = [("decoder_params", -1), ("latency_ms", 1), ("peak_memory_mb", 1)]
    on = {d: set(g["arch_id"][brute_mask(g, objs)]) for d, g in df.groupby("device_name")}
    feas = {d: g[g["feasible"].astype(bool)].set_index("arch_id") for d, g in df.groupby("device_name")}
    expected = set()
    for a in devices:
        for b in devices:
            if a != b:
                shared = set(feas[a].index) & set(feas[b].index)
                expected |= {(x, a, b) for x in shared if x in on[a] and x not in on[b]}
    got = set(zip(table["arch_id"], table["optimal_on"], table["dominated_on"]))
    assert got == expected
    for row in table.to_dict("records"):
        a, b = feas[row["optimal_on"]].loc[row["arch_id"]], feas[row["dominated_on"]].loc[row["arch_id"]]
        assert row["latency_ratio"] == pytest.approx(b["latency_ms"] / a["latency_ms"])
        assert row["memory_ratio"] == pytest.approx(b["peak_memory_mb"] / a["peak_memory_mb"])
    for p in pairs.to_dict("records"):
        shared = sorted(set(feas[p["device_a"]].index) & set(feas[p["device_b"]].index))
        assert p["shared"] == len(shared)
        rho = stats.spearmanr(feas[p["device_a"]].loc[shared, "latency_ms"],
                              feas[p["device_b"]].loc[shared, "latency_ms"]).statistic
        assert p["spearman_latency"] == pytest.approx(rho, nan_ok=True)


def test_rank_shift_on_the_seeded_devices(seeded):
    s = Store(seeded[0])
    devices = [d["device_id"] for d in s.devices()]
    points = device_points(s, devices)
    table, pairs = rank_shift(points)
    pair = pairs.set_index(["device_a", "device_b"]).loc[("fake-device", "slower-device")]
    assert pair["spearman_latency"] == pytest.approx(1.0) and pair["median_latency_ratio"] == pytest.approx(3.0)
    assert pair["optimal_a_dominated_b"] == 0  # a uniformly slower device keeps the same front
    depth = pairs[pairs["device_b"] == "depth-bound"].iloc[0]
    assert depth["spearman_latency"] < 0.99  # the depth-bound device reorders architectures
    assert len(table) > 0 and {"fake-device", "depth-bound"} >= set(table["optimal_on"]) - {"slower-device"}


@pytest.mark.parametrize("strategy", ["evolution", "random"])
def test_hypervolume_history_equals_brute_force(tmp_path, strategy):
    from test_search import start

    store = Store(tmp_path / "h.db")
    run_id, runner = start(store, FakeMeasure(), strategy=strategy, budget=40, seed=4)
    run = runner.run_to_end()
    evals = run_evaluations(store, store.run(run_id))
    scales = json.loads(run["progress_json"])["hv_scales"]
    objs = ("proxy", "latency", "memory")
    h = hv_history(evals, objs, scales, max_points=1000)
    rows = store.run_rows(run_id)
    assert list(h["n_evaluated"]) == list(range(1, 41))
    for k, hv, size in zip(h["n_evaluated"], h["hypervolume"], h["front_size"]):
        prefix = rows[:k]
        assert hv == pytest.approx(run_hypervolume(prefix, objs, scales), abs=1e-12)
        feasible = [r for r in prefix if r["feasible"]]
        assert size == int(brute_force_front(objective_matrix(feasible, objs)).sum()) if feasible else size == 0
    assert h["hypervolume"].iloc[-1] == pytest.approx(run["hypervolume"])
    assert h["hypervolume"].is_monotonic_increasing
    assert evals["elapsed_s"].is_monotonic_increasing and (evals["time_source"] == "measured").all()
    coarse = hv_history(evals, objs, scales, max_points=7)  # checkpoints only: same values there
    assert list(coarse["n_evaluated"]) == list(checkpoints(40, 7))
    assert np.allclose(coarse["hypervolume"], h.set_index("n_evaluated").loc[coarse["n_evaluated"], "hypervolume"])


def test_quality_history_puts_evolution_and_random_on_one_scale(seeded):
    s = Store(seeded[0])
    a, _ = seeded[1]["runs"]
    r = seeded[1]["random_run"]
    table, scales = quality_history(s, [a, r])
    assert set(table["strategy"]) == {"evolution", "random"}
    assert scales[a] == scales[r]  # one reference: comparable curves
    own, own_scales = quality_history(s, [a], HistorySettings(common_reference=False))
    assert own["hypervolume"].iloc[-1] == pytest.approx(s.run(a)["hypervolume"])
    # cached measurements (the random run reuses the evolution run's) get interpolated times
    ev = run_evaluations(s, s.run(r))
    assert ev["elapsed_s"].notna().all() and ev["elapsed_s"].is_monotonic_increasing


def test_a_run_in_a_space_of_its_own_gets_its_own_hypervolume_reference(tmp_path):
    from helpers import FAKE_DEVICE
    from lts.search.runner import SearchRunner, SearchSettings, create_run

    s = Store(tmp_path / "q.db")
    main = create_run(s, SearchSettings(space=small_space("gpt2"), budget=8, seed=1), FAKE_DEVICE, "torch-cpu-b1-sdefault-t1")
    SearchRunner(s, main, measure=FakeMeasure()).run_to_end()
    demo = create_run(s, SearchSettings(space=small_space("gpt2", name="demo", n_layer=1, d_model=[16]), budget=4,
                                        seed=2), FAKE_DEVICE, "torch-cpu-b1-sdefault-t1")
    SearchRunner(s, demo, measure=FakeMeasure()).run_to_end()
    _, both = quality_history(s, [main, demo])
    _, alone = quality_history(s, [main])
    assert both[main] == alone[main]  # the demo does not move the GPT-2 run's box
    assert both[demo] != both[main]
    _, demo_alone = quality_history(s, [demo])
    assert both[demo] == demo_alone[demo]


def test_points_loading_and_protocols(seeded):
    s = Store(seeded[0])
    devices = [d["device_id"] for d in s.devices()]
    assert len(devices) == 3
    protocols = main_protocols(s, devices)
    assert set(protocols.values()) == {"torch-cpu-b1-sdefault-t1"}
    pts = device_points(s, devices)
    assert len(pts) == s.db["measurements"].count
    runs = run_points(s, list(seeded[1]["runs"]))
    assert len(runs) == 60 and runs["source"].nunique() == 2
    before = data_version(s)
    with s.write() as conn:
        conn.execute("UPDATE measurements SET measured_at = measured_at + 1 WHERE rowid = 1")
    assert data_version(s) != before


def test_bounded_sample_keeps_flagged_rows_and_is_seeded():
    df = pd.DataFrame({"source": ["a"] * 500 + ["b"] * 50, "x": range(550)})
    keep = df["x"] % 100 == 0
    out = bounded_sample(df, 40, seed=3, keep=keep)
    assert keep[out.index].sum() == keep.sum()  # every flagged row is there
    counts = out[~keep[out.index]].groupby("source").size()
    assert counts["a"] == 40 and counts["b"] == 40
    assert out.index.equals(bounded_sample(df, 40, seed=3, keep=keep).index)


def test_layer_diff_marks_exactly_the_differing_cells():
    space = small_space("gpt2")
    rng = random.Random(5)
    cfgs = [space.sample(rng) for _ in range(3)]
    values, mask = layer_diff(cfgs)
    depth = max(c.n_layer for c in cfgs)
    assert len(values) == depth
    tables = [layer_table(c).set_index("layer") for c in cfgs]
    for setting in ("n_head", "d_head", "d_inner"):
        for layer in range(depth):
            cells = [t[setting].get(layer) for t in tables]
            differs = any(v is None for v in cells) or len(set(cells)) > 1
            for c in cfgs:
                assert bool(mask.loc[layer, (setting, c.arch_id)]) == differs
    g = settings_diff(cfgs)
    assert g.loc["d_model", "differs"] == (len({c.d_model for c in cfgs}) > 1)
    assert not g.loc["family", "differs"]


def test_layer_table_of_a_darts_config():
    from lts.space.config import DartsConfig

    t = layer_table(DartsConfig())
    assert len(t) == 2 and t.iloc[0, 1] == "attn4"
