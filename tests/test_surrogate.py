"""Cost surrogates: models, versioned storage, adapting to a new device, assisted search, drift, CLI, page."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.cli import main
from lts.errors import LtsError
from lts.space.counts import forward_flops, total_params
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.space.config import DartsConfig
from lts.store.db import Store
from lts.surrogate.assist import SurrogateSettings, dominated_by, prediction_error
from lts.surrogate.data import measured, resolve
from lts.surrogate.drift import DriftSettings
from lts.surrogate.features import FEATURES, Shape, features, matrix
from lts.surrogate.fit import fit_surrogate, learning_curve, load, report_rows
from lts.surrogate.model import KINDS, CostModel, fit_best
from lts.surrogate.transfer import adapt, transfer_curve

PROTO = "torch-cpu-b1-sdefault-t1"
OTHER = {**FAKE_DEVICE, "device_id": "fa4edeadbeef0002", "name": "other-device"}


def _latency(cfg, rng: random.Random, scale: float = 1.0, power: float = 1.0) -> float:
    """A cost that is not exactly linear in any one feature, with 2% multiplicative noise."""
    base = forward_flops(cfg) / 1e6 + 0.3 * cfg.n_layer + 0.05 * sum(cfg.n_head)
    return scale * base**power * (1 + rng.gauss(0, 0.02))


def seed_db(path: Path, n: int = 120, devices=((FAKE_DEVICE, 1.0, 1.0),), seed: int = 0) -> Store:
    store = Store(path)
    space = small_space("gpt2")
    rng = random.Random(seed)
    configs = {}
    while len(configs) < n:
        c = space.sample(rng)
        configs[c.arch_id] = c
    with store.write() as conn:
        for dev, scale, power in devices:
            store.upsert_device(conn, dev)
            for c in configs.values():
                store.upsert_architecture(conn, c)
                store.insert_measurement(conn, {
                    "arch_id": c.arch_id, "device_id": dev["device_id"], "protocol": PROTO,
                    "latency_ms": _latency(c, rng, scale, power), "latency_cv": 0.01, "repeats": 5,
                    "peak_memory_mb": 4 * total_params(c) / 2**20 + 30.0, "infeasible": None, "seconds": 1.0})
    return store


def test_features_follow_the_protocol():
    cfg = small_space("gpt2").sample(random.Random(0))
    assert Shape.from_protocol("torch-cpu-b4-s64-t2") == Shape(4, 64)
    assert Shape.from_protocol(PROTO) == Shape(1, None)
    f1, f4 = features(cfg, Shape(1, None)), features(cfg, Shape(4, None))
    assert f4["matmul_flops"] == 4 * f1["matmul_flops"] == 4 * forward_flops(cfg)
    assert matrix([cfg], Shape(1, None)).shape == (1, len(FEATURES))
    with pytest.raises(LtsError, match="cannot read batch"):
        Shape.from_protocol("weird")
    with pytest.raises(LtsError, match="gpt2 and transxl"):
        features(DartsConfig(n_layer=1, ops=[["ffn", "ffn"]]), Shape(1, None))


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_predicts_a_positive_mean_and_std(tmp_path, kind):
    data = measured(seed_db(tmp_path / "a.db", n=60), FAKE_DEVICE["device_id"], PROTO, "latency")
    model = CostModel(kind, seed=0).fit(data.X[:40], data.y[:40])
    mean, std = model.predict(data.X[40:])
    assert mean.shape == std.shape == (20,) and np.all(mean > 0) and np.all(std > 0)
    assert np.mean(np.abs(mean - data.y[40:]) / data.y[40:]) < 0.25
    again = CostModel(kind, seed=0).fit(data.X[:40], data.y[:40]).predict(data.X[40:])[0]
    np.testing.assert_array_equal(mean, again)  # refitting is deterministic: stored versions rebuild exactly


def test_bad_training_data_is_refused():
    X = np.ones((2, len(FEATURES)))
    with pytest.raises(LtsError, match="at least 3"):
        CostModel("linear").fit(X, np.array([1.0, 2.0]))
    with pytest.raises(LtsError, match="positive"):
        CostModel("linear").fit(np.ones((4, len(FEATURES))), np.array([1.0, 0.0, 2.0, 3.0]))
    with pytest.raises(LtsError, match="unknown surrogate kind"):
        CostModel("mlp").fit(np.ones((4, len(FEATURES))), np.ones(4))


def test_fit_best_takes_the_lowest_cross_validated_error(tmp_path):
    data = measured(seed_db(tmp_path / "a.db", n=50), FAKE_DEVICE["device_id"], PROTO, "latency")
    model, scores = fit_best(data.X, data.y, seed=0)
    assert set(scores) == set(KINDS) and model.kind == min(scores, key=scores.get)
    assert 0 < model.rel_std < 0.5


def test_versions_are_stored_and_rebuilt(tmp_path):
    store = seed_db(tmp_path / "a.db", n=80)
    dev = FAKE_DEVICE["device_id"]
    first = fit_surrogate(store, dev, PROTO, "latency", n_train=50, seed=0, kinds=("linear", "linear+gp"))
    assert first.version == 1 and len(first.train_ids) == 50
    h = first.figures["held_out"]
    assert h["n"] == 30 and h["mape"] < 5 and h["within_10"] >= 90 and h["kendall"] > 0.9
    assert set(first.figures["baselines"]) == {"decoder_params", "flops_per_token"}
    assert len(first.figures["points"]) == 30 and not set(p[0] for p in first.figures["points"]) & set(first.train_ids)
    second = fit_surrogate(store, dev, PROTO, "latency", n_train=60, seed=1, kinds=("linear",))
    assert second.version == 2
    rebuilt = load(store, dev, PROTO, "latency", version=1)
    X = measured(store, dev, PROTO, "latency").X
    np.testing.assert_allclose(rebuilt.model.predict(X)[0], first.model.predict(X)[0])
    assert [(r["objective"], r["version"]) for r in report_rows(store)] == [("latency", 2)]
    # a training measurement that disappears makes the version unrebuildable, said in one line
    with store.write() as conn:
        conn.execute("DELETE FROM measurements WHERE arch_id = ?", (first.train_ids[0],))
    with pytest.raises(LtsError, match="1 of its training measurements are gone"):
        load(store, dev, PROTO, "latency", version=1)


def test_learning_curve_uses_one_held_out_set(tmp_path):
    store = seed_db(tmp_path / "a.db", n=90)
    rows = learning_curve(store, FAKE_DEVICE["device_id"], PROTO, "memory", sizes=(20, 40), n_test=40,
                          kinds=("linear",))
    assert [r["train_n"] for r in rows] == [20, 40] and all(r["n"] == 40 for r in rows)
    assert rows[-1]["mape"] < 1 and rows[-1]["params"]["mape"] > rows[-1]["mape"]


def test_adapting_to_a_new_device_from_a_few_measurements(tmp_path):
    store = seed_db(tmp_path / "a.db", n=130, devices=((FAKE_DEVICE, 1.0, 1.0), (OTHER, 2.5, 1.1)))
    source = fit_surrogate(store, FAKE_DEVICE["device_id"], PROTO, "latency", n_train=100, kinds=("linear",))
    adapted = adapt(store, source, OTHER["device_id"], PROTO, k=10)
    assert adapted.source_surrogate_id == source.surrogate_id and len(adapted.train_ids) == 10
    assert adapted.figures["held_out"]["mape"] < 6
    reloaded = load(store, OTHER["device_id"], PROTO, "latency")
    assert reloaded.surrogate_id == adapted.surrogate_id and reloaded.model.kind == "adapted"
    rows = transfer_curve(store, source, OTHER["device_id"], PROTO, ks=(5, 20), n_test=100, draws=3)
    assert [r["k"] for r in rows] == [5, 20]
    assert rows[-1]["adapted_mape"] < rows[-1]["scratch_mape"]  # the source is worth having at k = 20
    with pytest.raises(LtsError, match="at least 2"):
        adapt(store, source, "0000000000000000", PROTO)


class NoisyMeasure(FakeMeasure):
    """FakeMeasure with a little noise, a cost per measurement and, optionally, a device that slows down."""

    def __init__(self, slow_after: int | None = None):
        super().__init__()
        self.rng = random.Random(0)
        self.slow_after = slow_after

    def __call__(self, cfg):
        m = super().__call__(cfg)
        factor = 1.5 if self.slow_after is not None and len(self.calls) > self.slow_after else 1.0
        m["latency_ms"] = _latency(cfg, self.rng) * factor
        m["seconds"] = 1.0
        return m


def _run(path: Path, surrogate: SurrogateSettings | None, budget: int = 50, measure=None, drift=DriftSettings()):
    store = Store(path)
    run_id = create_run(store, SearchSettings(space=small_space("gpt2"), budget=budget, seed=3, surrogate=surrogate,
                                              drift=drift), FAKE_DEVICE, PROTO)
    measure = measure or NoisyMeasure()
    SearchRunner(store, run_id, measure=measure).run_to_end()
    return store, run_id, measure


def test_assisted_search_keeps_predictions_apart_from_measurements(tmp_path):
    store, run_id, measure = _run(tmp_path / "a.db", SurrogateSettings(train_on="run", min_train=10))
    members = store.run_rows(run_id)
    assert len(members) == 50 and len(measure.calls) == 50
    # every member, and so every front point, was really measured
    for m in members:
        assert store.measurement(m["arch_id"], FAKE_DEVICE["device_id"], PROTO) is not None
    preds = store.query("SELECT * FROM predictions WHERE run_id = ?", (run_id,))
    skipped = {p["arch_id"] for p in preds if p["decision"] == "skip"}
    assert skipped and not skipped & {m["arch_id"] for m in members}
    assert not store.query(f"SELECT 1 FROM measurements WHERE arch_id IN ({','.join('?' * len(skipped))})", list(skipped))
    done = [p for p in preds if p["decision"] == "measure"]
    assert done and all(p["measured"] is not None for p in done)
    state = json.loads(store.run(run_id)["progress_json"])
    assert state["screened"] > 50 and prediction_error(store, run_id, last=50)["latency"]["mape"] < 10
    assert state["device_seconds"] == pytest.approx(50.0)


class Crash(NoisyMeasure):
    def __call__(self, cfg):
        if len(self.calls) == 27:
            raise RuntimeError("worker died")
        return super().__call__(cfg)


def test_assisted_search_resumes_after_a_crash(tmp_path):
    store = Store(tmp_path / "a.db")
    settings = SearchSettings(space=small_space("gpt2"), budget=40, seed=3,
                              surrogate=SurrogateSettings(train_on="run", min_train=10))
    run_id = create_run(store, settings, FAKE_DEVICE, PROTO)
    with pytest.raises(RuntimeError):
        SearchRunner(store, run_id, measure=Crash()).run_to_end()
    assert store.run(run_id)["status"] == "failed" and len(store.run_rows(run_id)) == 27
    again = NoisyMeasure()
    SearchRunner(store, run_id, measure=again).run_to_end()
    members = store.run_rows(run_id)
    assert len(members) == 40 and len({m["arch_id"] for m in members}) == 40
    assert len(again.calls) == 13  # nothing measured twice
    assert store.run(run_id)["status"] == "finished"


def test_dominated_by():
    front = np.array([[-10.0, 1.0], [-5.0, 0.5]])
    assert dominated_by(front, np.array([-4.0, 0.6]))
    assert not dominated_by(front, np.array([-11.0, 2.0]))
    assert not dominated_by(np.zeros((0, 2)), np.array([0.0, 0.0]))


def test_drift_is_flagged_and_its_window_marked(tmp_path):
    store, run_id, _ = _run(tmp_path / "a.db", None, budget=30, measure=NoisyMeasure(slow_after=17),
                            drift=DriftSettings(every=10, threshold=0.15))
    checks = store.query("SELECT * FROM drift_checks WHERE run_id = ? ORDER BY check_index", (run_id,))
    assert [c["eval_index"] for c in checks] == [0, 10, 20]
    assert [c["flagged"] for c in checks] == [0, 0, 1] and checks[2]["ratio"] == pytest.approx(1.5, rel=0.1)
    marked = store.query("SELECT arch_id FROM measurements WHERE drift_flag IS NOT NULL")
    assert len(marked) == 10  # the 10 evaluated between the checks at 10 and 20
    data = measured(store, FAKE_DEVICE["device_id"], PROTO, "latency")
    assert not {m["arch_id"] for m in marked} & set(data.arch_ids)  # surrogates leave them out


def test_cli_fit_report_adapt(tmp_path, capsys):
    db = tmp_path / "a.db"
    seed_db(db, n=60, devices=((FAKE_DEVICE, 1.0, 1.0), (OTHER, 2.0, 1.0))).close()
    assert main(["surrogate", "fit", "--device-name", "fake-device", "--train", "40", "--kind", "linear",
                 "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "latency: v1 linear on 40; held-out 20" in out and "memory: v1" in out
    assert main(["surrogate", "adapt", "--from-device", "fake-device", "--device-name", "other-device", "--k", "8",
                 "--objective", "latency", "--db", str(db)]) == 0
    assert "adapted from fake-device v1 with 8 measurements" in capsys.readouterr().out
    assert main(["surrogate", "report", "--db", str(db)]) == 0
    table = capsys.readouterr().out
    assert "fake-device" in table and "other-device" in table and "adapted" in table
    assert main(["surrogate", "report", "--format", "json", "--db", str(db)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["surrogate", "fit", "--device-name", "nope", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "no measurements of device 'nope'" in err and err.count("\n") == 1
    with pytest.raises(LtsError, match="protocol"):
        resolve(Store(db), "fake-device", "torch-cpu-b9-s1-t1")


def test_dashboard_panel(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    monkeypatch.setenv("LTS_DB", str(tmp_path / "empty.db"))
    at = AppTest.from_file(app, default_timeout=60)
    at.run()
    at.switch_page("views/surrogates.py")
    at.run()
    assert not at.exception and at.info

    store = seed_db(tmp_path / "a.db", n=60)
    fit_surrogate(store, FAKE_DEVICE["device_id"], PROTO, "latency", n_train=40, kinds=("linear",))
    store.close()
    _run(tmp_path / "a.db", SurrogateSettings(min_train=10), budget=25, drift=DriftSettings(every=10))
    monkeypatch.setenv("LTS_DB", str(tmp_path / "a.db"))
    at = AppTest.from_file(app, default_timeout=60)
    at.run()
    at.switch_page("views/surrogates.py")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 2  # held-out scatter and the assisted run's errors
    assert any("20 held-out architectures" in c.value for c in at.caption)
    assert len(at.dataframe) == 2  # figures table and drift checks


def test_settings_round_trip_through_the_run_row(tmp_path):
    from lts.search.runner import settings_of

    store = Store(tmp_path / "a.db")
    settings = SearchSettings(space=small_space("gpt2"), budget=10, surrogate=SurrogateSettings(pool_factor=4, z=0.5),
                              drift=DriftSettings(every=7, threshold=0.2))
    run_id = create_run(store, settings, FAKE_DEVICE, PROTO)
    again = settings_of(store.run(run_id))
    assert again.surrogate == settings.surrogate and again.drift == settings.drift
    with pytest.raises(LtsError, match="pool factor"):
        SurrogateSettings(pool_factor=0)
    with pytest.raises(LtsError, match="surrogate kind"):
        SurrogateSettings(kind="mlp")
    with pytest.raises(LtsError, match="drift interval"):
        DriftSettings(every=-1)


class PerArchMeasure(FakeMeasure):
    """Noise fixed per architecture: a resumed run sees the costs an uninterrupted one saw."""

    def __init__(self, crash_at: int | None = None):
        super().__init__()
        self.crash_at = crash_at

    def __call__(self, cfg):
        if self.crash_at is not None and len(self.calls) == self.crash_at:
            raise RuntimeError("worker died")
        m = super().__call__(cfg)
        m["latency_ms"], m["seconds"] = _latency(cfg, random.Random(cfg.arch_id)), 1.0
        return m


def test_inner_generations_search_the_predictions_and_resume_on_the_same_path(tmp_path):
    inner = SurrogateSettings(train_on="run", min_train=10, pool_factor=3, inner_generations=2)
    store, run_id, measure = _run(tmp_path / "a.db", inner, budget=40, measure=PerArchMeasure())
    members = store.run_rows(run_id)
    assert len(members) == 40 and len(measure.calls) == 40
    for m in members:  # children of predicted parents are measured before they count
        assert store.measurement(m["arch_id"], FAKE_DEVICE["device_id"], PROTO) is not None
    plain_store, plain_id, _ = _run(tmp_path / "b.db", SurrogateSettings(train_on="run", min_train=10, pool_factor=3),
                                    budget=40, measure=PerArchMeasure())
    screened = json.loads(store.run(run_id)["progress_json"])["screened"]
    assert screened > json.loads(plain_store.run(plain_id)["progress_json"])["screened"]

    crashed = Store(tmp_path / "c.db")
    run_c = create_run(crashed, SearchSettings(space=small_space("gpt2"), budget=40, seed=3, surrogate=inner),
                       FAKE_DEVICE, PROTO)
    with pytest.raises(RuntimeError):
        SearchRunner(crashed, run_c, measure=PerArchMeasure(crash_at=23)).run_to_end()
    SearchRunner(crashed, run_c, measure=PerArchMeasure()).run_to_end()
    assert [m["arch_id"] for m in crashed.run_rows(run_c)] == [m["arch_id"] for m in members]


def test_inner_generations_are_bounded():
    with pytest.raises(LtsError, match="need --strategy evolution"):
        SearchSettings(space=small_space("gpt2"), budget=10, strategy="optuna-tpe",
                       surrogate=SurrogateSettings(inner_generations=2))
    with pytest.raises(LtsError, match="inner_generations"):
        SurrogateSettings(inner_generations=21)
    with pytest.raises(LtsError, match="inner_generations"):
        SurrogateSettings(inner_generations=True)


def test_a_child_is_scored_once_as_a_predicted_parent_and_as_a_screening_candidate(tmp_path):
    from lts.objectives import Constraints
    from lts.store import surrogates as store_surrogates
    from lts.surrogate.assist import Screen

    store = seed_db(tmp_path / "a.db", n=40)
    run_id = create_run(store, SearchSettings(space=small_space("gpt2"), budget=10, seed=0), FAKE_DEVICE, PROTO)
    calls: list[str] = []

    def cheap(cfg):
        calls.append(cfg.arch_id)
        return {}

    screen = Screen(store, run_id, FAKE_DEVICE["device_id"], PROTO, ("proxy", "latency"), Constraints(),
                    SurrogateSettings(min_train=10), cheap=cheap)
    assert screen.refit()
    rng = random.Random(1)
    pool = list({c.arch_id: c for c in (small_space("gpt2").sample(rng) for _ in range(12))}.values())
    rows = screen.predicted_members(pool, 0)
    chosen = screen.select(pool, [], room=3, fitted=True)
    assert sorted(calls) == sorted(c.arch_id for c in pool)  # once each, not once per use
    assert 0 < len(chosen) <= 3
    recorded = {p["arch_id"]: p["mean"] for p in store_surrogates.run_predictions(store, run_id) if p["objective"] == "latency"}
    assert recorded == {r["arch_id"]: r["latency_ms"] for r in rows}
    screen.refit()  # a new model scores every child again
    screen.predicted_members(pool[:2], 0)
    assert len(calls) == len(pool) + 2


def test_a_default_fit_on_few_measurements_holds_out_enough_to_report_its_error(tmp_path):
    """The page's suggested `lts surrogate fit` on 49 measurements trained on all 49 and had nothing to show."""
    store = seed_db(tmp_path / "few.db", n=49)
    dev = FAKE_DEVICE["device_id"]
    s = fit_surrogate(store, dev, PROTO, "latency", kinds=("linear",))
    assert len(s.train_ids) == 39 and s.figures["held_out"]["n"] == 10
    assert s.figures["held_out"]["mape"] is not None
    everything = fit_surrogate(store, dev, PROTO, "latency", kinds=("linear",), hold_out=0)
    assert len(everything.train_ids) == 49 and everything.figures["held_out"] is None


def test_an_operator_fits_a_surrogate_from_the_page_and_sees_its_held_out_error(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from lts.team.audit import audit_frame

    store = seed_db(tmp_path / "fit.db", n=49)
    app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
    monkeypatch.setenv("LTS_DB", str(tmp_path / "fit.db"))
    at = AppTest.from_file(app, default_timeout=60)
    at.secrets["lts"] = {}
    at.run()
    at.switch_page("views/surrogates.py").run()
    assert at.info  # no surrogate yet, and the form to fit one
    [b for b in at.button if b.label == "Fit"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "10 held out" in at.success[0].value
    assert any("10 held-out architectures" in c.value for c in at.caption)  # figures, not "nothing held out"
    assert audit_frame(store)["action"].tolist() == ["fit_surrogate"]
