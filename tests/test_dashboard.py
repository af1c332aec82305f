"""Every dashboard page through Streamlit's AppTest, on a seeded database and on an empty one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import small_space
from helpers import FAKE_DEVICE, FakeMeasure
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.store.db import Store

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["views/search.py", "views/frontier.py", "views/compare.py", "views/constraints.py", "views/quality.py",
         "views/measurements.py", "views/architecture.py", "views/surrogates.py", "views/validation.py",
         "views/data.py", "views/audit.py", "views/darts.py"]


@pytest.fixture(autouse=True)
def keep_main_module():
    """Streamlit leaves the script it ran as ``__main__``; a later test's spawned workers would re-run it."""
    import sys

    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def loopback():
    """Served on 127.0.0.1 (no sign-in needed: the single-user default), whatever the working folder's
    .streamlit/config.toml says; the app reads the address as the server would."""
    from streamlit import config

    old = config.get_option("server.address")
    config.set_option("server.address", "127.0.0.1")
    yield
    config.set_option("server.address", old)


PROTOCOL = "torch-cpu-b1-sdefault-t1"
SLOWER = {**FAKE_DEVICE, "device_id": "fa4edeadbeef0002", "name": "slower-device"}
DEPTH_BOUND = {**FAKE_DEVICE, "device_id": "fa4edeadbeef0003", "name": "depth-bound", "kind": "cuda", "gpu": "fake GPU"}


class SlowerDevice(FakeMeasure):
    def __call__(self, cfg):
        m = super().__call__(cfg)
        m["latency_ms"] *= 3
        return m


class DepthBoundDevice(FakeMeasure):
    """Latency set by the number of layers (kernel launches), not FLOPs: it reorders architectures."""

    def __call__(self, cfg):
        m = super().__call__(cfg)
        m["latency_ms"] = 0.5 + 0.4 * cfg.n_layer + m["latency_ms"] / 50
        m["peak_memory_mb"] += 20.0
        m["latency_cv"] = 0.08 if cfg.n_layer == 3 else 0.01  # some noisy points to flag
        return m


def seed(path: Path) -> dict:
    """Three devices (one reorders architectures), evolution on each and a random search on the first."""
    s = Store(path)
    space = small_space("gpt2")
    a = create_run(s, SearchSettings(space=space, budget=30, seed=1), FAKE_DEVICE, PROTOCOL)
    SearchRunner(s, a, measure=FakeMeasure()).run_to_end()
    b = create_run(s, SearchSettings(space=space, budget=30, seed=1), SLOWER, PROTOCOL)
    SearchRunner(s, b, measure=SlowerDevice()).run_to_end()
    c = create_run(s, SearchSettings(space=space, budget=30, seed=1), DEPTH_BOUND, PROTOCOL)
    SearchRunner(s, c, measure=DepthBoundDevice()).run_to_end()
    r = create_run(s, SearchSettings(space=space, budget=30, seed=1, strategy="random"), FAKE_DEVICE, PROTOCOL)
    SearchRunner(s, r, measure=FakeMeasure()).run_to_end()
    front = s.run_rows(a, frontier_only=True)
    s.close()
    return {"runs": (a, b), "depth_run": c, "random_run": r, "front": front}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "lts.db"
    return path, seed(path)


def app(monkeypatch, db: Path) -> AppTest:
    """The app on ``db`` with no sign-in configured (a developer's own .streamlit/secrets.toml is hidden)."""
    monkeypatch.setenv("LTS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["lts"] = {}
    return at


def page(monkeypatch, db: Path, name: str) -> AppTest:
    at = app(monkeypatch, db)
    at.run()
    at.switch_page(name)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_on_a_seeded_database(monkeypatch, seeded, name):
    at = page(monkeypatch, seeded[0], name)
    assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("name", PAGES)
def test_every_page_guides_a_new_user_on_an_empty_database(monkeypatch, tmp_path, name):
    at = page(monkeypatch, tmp_path / "empty.db", name)
    assert not at.error
    if name in ("views/search.py",):
        assert any("demo" in b.label.lower() for b in at.button)
    if name in ("views/frontier.py", "views/compare.py", "views/architecture.py", "views/constraints.py",
                "views/quality.py", "views/measurements.py", "views/surrogates.py", "views/audit.py"):
        assert at.info, "an empty page should say what to do next"


def test_frontier_page_plots_the_chosen_runs(monkeypatch, seeded):
    at = page(monkeypatch, seeded[0], "views/frontier.py")
    assert at.get("plotly_chart")
    assert "architectures shown" in " ".join(c.value for c in at.caption)
    at.multiselect[0].set_value([]).run()
    assert at.info  # nothing chosen: a hint instead of an empty chart


def test_frontier_page_plots_a_proxy_objective_as_the_quality_axis(monkeypatch, tmp_path):
    """A search on ZeroLM: the explorer offers zerolm as the quality axis and draws that run's front on it."""
    import json

    from lts.search.strategies import EvolutionSettings

    db = tmp_path / "lts.db"
    s = Store(db)
    settings = SearchSettings(space=small_space("gpt2"), objectives=("zerolm", "latency"), budget=8, seed=2,
                              evolution=EvolutionSettings(population=4, generation=2))
    run_id = create_run(s, settings, FAKE_DEVICE, PROTOCOL)
    SearchRunner(s, run_id, measure=FakeMeasure()).run_to_end()
    s.close()
    at = page(monkeypatch, db, "views/frontier.py")
    box = next(b for b in at.selectbox if b.label == "Quality axis")
    assert box.options == ["decoder params", "zerolm"]
    box.set_value("zerolm").run()
    assert not at.exception and not at.error
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["yaxis"]["title"]["text"] == "zerolm"
    front = [t for t in fig["data"] if t.get("name", "").endswith(" front")]
    assert front and len(values(front[0]["y"])) >= 1


def test_architecture_page_shows_the_per_layer_table(monkeypatch, seeded):
    db, info = seeded
    arch = info["front"][0]
    at = page(monkeypatch, db, "views/architecture.py")
    at.text_input[0].set_value(arch["arch_id"]).run()
    assert not at.exception and not at.error
    assert at.metric[0].value == f"{arch['decoder_params']:,}"
    layers = at.dataframe[0].value
    assert len(layers) == arch["n_layer"] and list(layers.columns) == ["layer", "n_head", "d_head", "d_inner"]
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Download config (lts JSON)", "Download Hugging Face folder (zip)"} <= set(labels)
    assert any("No stock GPT2LMHeadModel" in c.value for c in at.caption)  # adaptive softmax: no stock twin
    at.text_input[0].set_value("0123456789abcdef").run()
    assert at.error and "no architecture" in at.error[0].value


def test_compare_page_reports_ratios(monkeypatch, seeded):
    at = page(monkeypatch, seeded[0], "views/compare.py")
    assert any(m.label == "median latency ratio" and m.value == "3.00x" for m in at.metric)


def test_search_form_launches_a_background_search(monkeypatch, tmp_path):
    db = tmp_path / "live.db"
    at = page(monkeypatch, db, "views/search.py")
    form_ms = [m for m in at.multiselect if m.label == "Objectives"][0]
    form_ms.set_value(["proxy"])
    [n for n in at.number_input if n.label.startswith("Budget")][0].set_value(12)
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = Store(db)
    run = s.runs()[0]
    deadline = time.time() + 60
    while s.run(run["run_id"])["status"] != "finished" and time.time() < deadline:
        time.sleep(0.2)
    assert s.run(run["run_id"])["n_evaluated"] == 12


def test_search_form_can_screen_with_the_surrogate(monkeypatch, tmp_path):
    from lts.search.runner import settings_of

    db = tmp_path / "screen.db"
    at = page(monkeypatch, db, "views/search.py")
    [m for m in at.multiselect if m.label == "Objectives"][0].set_value(["proxy"])
    [n for n in at.number_input if n.label.startswith("Budget")][0].set_value(5)
    [c for c in at.checkbox if c.label.startswith("Screen children")][0].check()
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    settings = settings_of(Store(db).runs()[0])
    assert settings.surrogate is not None and settings.evolution.population == 10


def test_search_form_measures_generation_in_int8_and_refuses_what_cannot_run(monkeypatch, tmp_path):
    db = tmp_path / "gen.db"
    at = page(monkeypatch, db, "views/search.py")
    [m for m in at.multiselect if m.label == "Objectives"][0].set_value(["proxy", "decode"])
    [n for n in at.number_input if n.label.startswith("Budget")][0].set_value(1)
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert at.error and "add --workload generate" in at.error[0].value
    [x for x in at.selectbox if x.label == "Workload"][0].set_value("generate")
    [x for x in at.selectbox if x.label == "Backend"][0].set_value("onnxruntime")
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert at.error and "generate runs on torch" in at.error[0].value and not Store(db).runs()
    [x for x in at.selectbox if x.label == "Backend"][0].set_value("torch")
    [x for x in at.selectbox if x.label == "Precision"][0].set_value("int8")
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = Store(db)
    run = s.runs()[0]
    assert run["protocol"] == "torch-cpu-b1-g64+32-t1-int8"
    deadline = time.time() + 120
    while s.run(run["run_id"])["status"] not in ("finished", "failed") and time.time() < deadline:
        time.sleep(0.2)
    member = s.run_rows(run["run_id"])[0]
    assert s.run(run["run_id"])["status"] == "finished" and member["decode_ms_per_token"] > 0


def test_search_form_sets_batch_and_sequence_length_and_the_runs_table_links_the_frontier(monkeypatch, tmp_path):
    db = tmp_path / "batch.db"
    at = page(monkeypatch, db, "views/search.py")
    [m for m in at.multiselect if m.label == "Objectives"][0].set_value(["proxy", "latency"])
    [n for n in at.number_input if n.label.startswith("Budget")][0].set_value(1)
    [n for n in at.number_input if n.label == "Batch size"][0].set_value(2)
    [n for n in at.number_input if n.label.startswith("Sequence length")][0].set_value(32)
    [b for b in at.button if b.label == "Start search"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = Store(db)
    run = s.runs()[0]
    assert run["protocol"] == "torch-cpu-b2-s32-t1"
    deadline = time.time() + 120
    while s.run(run["run_id"])["status"] not in ("finished", "failed") and time.time() < deadline:
        time.sleep(0.2)
    assert s.run(run["run_id"])["status"] == "finished"
    at.run()
    runs = at.dataframe[-1].value
    assert runs["space"].tolist() == ["gpt2"]
    assert runs["frontier"].tolist() == [f"frontier?run={run['run_id']}"]
    assert runs["elapsed"].iloc[0] > pd_timedelta(0)
    # the link opens the Frontier explorer on that run
    linked = app(monkeypatch, db)
    linked.query_params["run"] = run["run_id"]
    linked.run()
    linked.switch_page("views/frontier.py").run()
    assert [m for m in linked.multiselect if m.label == "Runs"][0].value == [run["run_id"]]


def pd_timedelta(seconds: float):
    import pandas as pd

    return pd.Timedelta(seconds=seconds)


def figure(at: AppTest, index: int = 0) -> dict:
    import json

    return json.loads(at.get("plotly_chart")[index].proto.spec)


def traces(fig: dict, name: str) -> list[dict]:
    return [t for t in fig["data"] if t.get("name") == name]


def values(arr) -> list:
    """A trace's x or y: plotly sends numpy arrays base64-encoded ({'dtype', 'bdata'})."""
    import base64

    import numpy as np

    if isinstance(arr, dict) and "bdata" in arr:
        return list(np.frombuffer(base64.b64decode(arr["bdata"]), dtype=np.dtype(arr["dtype"])))
    return list(arr)


def test_linked_fronts_highlight_an_architecture_on_every_device(monkeypatch, seeded):
    db, info = seeded
    at = page(monkeypatch, db, "views/compare.py")
    fig = figure(at)
    assert {t["name"] for t in fig["data"]} >= {"fake-device front", "slower-device front", "depth-bound front"}
    assert not traces(fig, "selected")
    arch = info["front"][0]["arch_id"]
    at.session_state["linked_ids"] = [arch]
    at.run()
    assert not at.exception
    ringed = traces(figure(at), "selected")[0]
    assert len(values(ringed["x"])) == 3  # measured on all three devices: ringed on each
    assert traces(figure(at), "same architecture")
    table = [d.value for d in at.dataframe if "on N-objective front" in d.value.columns][0]
    assert sorted(table["source"]) == ["depth-bound", "fake-device", "slower-device"]
    assert any("dominated on another" in h.value for h in at.subheader)


def test_rank_shift_table_and_run_mode(monkeypatch, seeded):
    db, info = seeded
    at = page(monkeypatch, db, "views/compare.py")
    heading = [h.value for h in at.subheader if "dominated on another" in h.value][0]
    assert int(heading.split("(")[1].rstrip(")").replace(",", "")) > 0  # the depth-bound device reorders
    spearman = {m.value for m in at.metric if m.label == "latency rank Spearman"}
    assert "1.000" in spearman and len(spearman) > 1
    at.radio[0].set_value("Runs").run()
    assert not at.exception
    names = {t["name"] for t in figure(at)["data"]}
    assert sum(n.endswith("front") for n in names) == 2


def test_constraint_sliders_recompute_the_front(monkeypatch, seeded):
    db, _ = seeded
    at = page(monkeypatch, db, "views/constraints.py")
    fig = figure(at)
    assert traces(fig, "best proxy") and traces(fig, "feasible 2-D front")
    before = len(values(traces(fig, "feasible 2-D front")[0]["x"]))
    assert any("Best proxy" in s.value for s in at.success)
    slider = [x for x in at.select_slider if x.label == "Max latency (ms)"][0]
    slider.set_value(slider.options[len(slider.options) // 3]).run()
    assert not at.exception
    fig = figure(at)
    limit = float(slider.value)
    front = traces(fig, "feasible 2-D front")[0]
    assert max(values(front["x"])) <= limit and len(values(front["x"])) <= before
    assert values(traces(fig, f"max {limit:g} ms")[0]["x"]) == [limit, limit]  # the limit drawn as a line
    best = traces(fig, "best proxy")[0]
    assert values(best["x"])[0] <= limit
    caption = " ".join(c.value for c in at.caption)
    assert "N-objective front" in caption and "latency <= " in caption


def test_quality_page_draws_evolution_and_random_on_one_chart(monkeypatch, seeded):
    db, _ = seeded
    at = page(monkeypatch, db, "views/quality.py")
    assert len(at.get("plotly_chart")) == 3
    fig = figure(at)
    dashes = {t["line"]["dash"] for t in fig["data"]}
    assert dashes == {"solid", "dash"}  # evolution and random search together
    assert all(0 < max(values(t["y"])) < 1 for t in fig["data"])
    assert any("both on one chart" in c.value for c in at.caption)


def test_measurements_page_flags_noisy_latencies(monkeypatch, seeded):
    db, _ = seeded
    at = page(monkeypatch, db, "views/measurements.py")
    at.selectbox[0].set_value("fa4edeadbeef0003").run()  # the depth-bound device has noisy points
    assert not at.exception
    flagged = [m for m in at.metric if m.label == "high variance"][0]
    assert int(flagged.value) > 0
    fig = figure(at)
    assert traces(fig, "high variance")[0]["error_x"]["visible"]
    assert any(b.label == "Re-measure" for b in at.button)
    assert "fake GPU" in " ".join(c.value for c in at.caption)


def test_architecture_page_diffs_two_architectures(monkeypatch, seeded):
    db, info = seeded
    a, b = info["front"][0]["arch_id"], info["front"][-1]["arch_id"]
    at = app(monkeypatch, db)
    at.session_state["linked_ids"] = [a, b]
    at.run()
    at.switch_page("views/architecture.py")
    at.run()
    assert not at.exception and at.text_input[0].value == a
    assert at.get("plotly_chart")  # the per-layer heatmap
    tables = [d.value for d in at.dataframe]
    side = [t for t in tables if getattr(t.columns, "nlevels", 1) == 2]
    assert side and {c[1] for c in side[0].columns} == {a, b}
    assert any("latency_ms · fake-device" in t.columns for t in tables if getattr(t.columns, "nlevels", 1) == 1)


def test_remeasure_button_measures_again_and_shows_old_and_new(monkeypatch, seeded, tmp_path):
    """The whole action on a copy of the seeded database: a detached `lts remeasure` measures for real."""
    import sqlite3

    db = tmp_path / "copy.db"
    with sqlite3.connect(seeded[0]) as src, sqlite3.connect(db) as dst:
        src.backup(dst)
    arch = seeded[1]["front"][0]["arch_id"]
    at = app(monkeypatch, db)
    at.session_state["linked_ids"] = [arch]
    at.run()
    at.switch_page("views/measurements.py")
    at.run()
    assert [m for m in at.multiselect if m.label == "Architectures"][0].value == [arch]
    [t for t in at.text_input if t.label.startswith("Device name")][0].set_value("this-host")
    [b for b in at.button if b.label == "Re-measure"][0].click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    s = Store(db)
    deadline = time.time() + 120
    while time.time() < deadline and s.query("SELECT status FROM remeasure_jobs")[0]["status"] in ("queued", "running"):
        time.sleep(0.5)
    assert s.query("SELECT status FROM remeasure_jobs")[0]["status"] == "finished"
    at.run()
    side = [d.value for d in at.dataframe if "new_latency_ms" in d.value.columns]
    assert side and side[0]["arch_id"].tolist() == [arch] and side[0]["new_latency_ms"].iloc[0] > 0


def test_runs_mode_compares_a_rerun_with_its_source(monkeypatch, seeded, tmp_path):
    """Import a bundle, re-run it here (another device), and the linked view puts both fronts side by side."""
    import json

    from lts.decide.repro import reproduce_run
    from lts.search.exchange import export_runs, import_bundle

    source = seeded[1]["runs"][0]
    here = Store(tmp_path / "here.db")
    import_bundle(here, json.dumps(export_runs(Store(seeded[0]), [source])))
    mine = {**FAKE_DEVICE, "device_id": "fa4edeadbeef00bb", "name": "my-laptop"}
    again = reproduce_run(here, source, device=mine)
    SearchRunner(here, again, measure=SlowerDevice()).run_to_end()
    at = page(monkeypatch, tmp_path / "here.db", "views/compare.py")
    at.radio[0].set_value("Runs").run()
    assert not at.exception
    assert set([m for m in at.multiselect if m.label == "Runs"][0].value) == {source, again}
    fronts = [t["name"] for t in figure(at)["data"] if t["name"].endswith("front")]
    assert len(fronts) == 2 and any("my-laptop" in f for f in fronts)
    assert any(f"`{again}` reproduces `{source}`" in c.value for c in at.caption)


def test_device_pages_restrict_to_one_space_so_the_demo_does_not_mix_in(monkeypatch, tmp_path):
    from lts.decide.points import device_spaces

    db = tmp_path / "spaces.db"
    s = Store(db)
    main = create_run(s, SearchSettings(space=small_space("gpt2"), budget=12, seed=1), FAKE_DEVICE, PROTOCOL)
    SearchRunner(s, main, measure=FakeMeasure()).run_to_end()
    demo = create_run(s, SearchSettings(space=small_space("gpt2", name="demo", n_layer=1, d_model=[16]), budget=4,
                                        seed=2), FAKE_DEVICE, PROTOCOL)
    SearchRunner(s, demo, measure=FakeMeasure()).run_to_end()
    other = create_run(s, SearchSettings(space=small_space("gpt2"), budget=6, seed=3), SLOWER, PROTOCOL)
    SearchRunner(s, other, measure=SlowerDevice()).run_to_end()
    spaces = device_spaces(s, FAKE_DEVICE["device_id"])
    assert set(spaces) == {"demo", "gpt2"}
    assert spaces["demo"] == {r["arch_id"] for r in s.run_rows(demo)}
    everything = len({r["arch_id"] for run in (main, demo) for r in s.run_rows(run)})
    s.close()
    at = page(monkeypatch, db, "views/constraints.py")
    assert any(f"of {everything:,} architectures meet" in c.value for c in at.caption)
    [x for x in at.selectbox if x.label == "Space"][0].set_value("demo").run()
    assert not at.exception and any(f"of {len(spaces['demo']):,} architectures meet" in c.value for c in at.caption)
    at = page(monkeypatch, db, "views/measurements.py")
    [x for x in at.selectbox if x.label == "Space"][0].set_value("gpt2").run()
    assert not at.exception
    assert [m for m in at.metric if m.label == "measurements"][0].value == f"{len(spaces['gpt2']):,}"
    at = page(monkeypatch, db, "views/compare.py")
    picker = [x for x in at.selectbox if x.label == "Space"][0]
    assert picker.options == ["every space", "demo", "gpt2"]
    every = sum(len(values(t["x"])) for t in figure(at)["data"])
    picker.set_value("demo").run()
    assert not at.exception
    assert 0 < sum(len(values(t["x"])) for t in figure(at)["data"]) < every


def test_a_device_and_a_run_keep_their_colour_from_page_to_page(monkeypatch, seeded):
    import sys

    sys.path.insert(0, str(Path(APP).parent))
    from charts import colours

    db, info = seeded
    # the same name keeps its colour whichever other names share the chart
    assert colours(["test-box", "slower-device"])["slower-device"] == colours(["slower-device"])["slower-device"]
    assert len(set(colours([f"d{i}" for i in range(12)]).values())) == 12  # no two of one chart alike

    def colour_of(fig: dict, name: str) -> str:
        got = {t.get("marker", {}).get("color") or t.get("line", {}).get("color")
               for t in fig["data"] if t.get("name", "").startswith(name)}
        got.discard(None)
        assert len(got) == 1, (name, got)
        return got.pop()

    at = page(monkeypatch, db, "views/compare.py")
    [m for m in at.multiselect if m.label == "Devices"][0].set_value([FAKE_DEVICE["device_id"], SLOWER["device_id"]]).run()
    on_compare = colour_of(figure(at), "slower-device")
    at = page(monkeypatch, db, "views/constraints.py")
    [x for x in at.selectbox if x.label == "Device"][0].set_value(SLOWER["device_id"]).run()
    assert colour_of(figure(at), "feasible 2-D front") == on_compare


def _tables():
    import sys

    sys.path.insert(0, str(Path(APP).parent))
    import tables

    return tables


def test_one_place_formats_parameters_times_epochs_and_missing_values():
    import pandas as pd

    tables = _tables()
    frame = pd.DataFrame({"arch_id": ["a", "b"], "decoder_params": [31_541_250, 2_553], "latency_ms": [912.468468, 0.1],
                          "latency_cv": [0.0123, 0.2], "measured_at": [1796152013.6421, 1796152073.0],
                          "infeasible": [None, "out of memory"], "on_frontier": [1, 0], "n_layer": [16, 2],
                          "latency_ms · vm-b4": [3.0, 4.0]})
    shown, config = tables.prepare(frame)
    assert shown["decoder_params"].tolist() == [31.54125, 0.002553]  # millions, "%.3g M": 31.5 M
    assert config["decoder_params"]["type_config"]["format"] == "%.3g M"
    assert config["latency_ms"]["type_config"]["format"] == "%.2f ms"
    assert config["latency_ms"]["label"] == "latency"
    assert config["latency_cv"]["type_config"]["format"] == "percent"  # the fraction shown as a percentage
    assert pd.api.types.is_datetime64_any_dtype(shown["measured_at"])
    assert shown["measured_at"].iloc[0] == pd.Timestamp(1796152013.6421, unit="s", tz="UTC")
    assert config["measured_at"]["label"] == "measured"
    assert shown["infeasible"].tolist() == ["—", "out of memory"]
    assert shown["on_frontier"].tolist() == [True, False] and config["on_frontier"]["type_config"]["type"] == "checkbox"
    assert config["n_layer"]["label"] == "n_layer"  # the config's own name, as in the JSON
    assert config["latency_ms · vm-b4"]["label"] == "latency · vm-b4"
    assert config["latency_ms · vm-b4"]["type_config"]["format"] == "%.2f ms"
    assert frame["decoder_params"].iloc[0] == 31_541_250  # the caller's frame is left as it was


@pytest.mark.parametrize("name", ["views/search.py", "views/compare.py", "views/constraints.py", "views/quality.py",
                                  "views/measurements.py", "views/architecture.py", "views/validation.py"])
def test_every_table_on_a_page_has_words_for_headers_and_a_format_for_numbers(monkeypatch, seeded, name):
    import json

    tables = _tables()
    at = page(monkeypatch, seeded[0], name)
    assert at.dataframe, "the seeded page shows a table"
    for df in at.dataframe:
        columns = {k: v for k, v in json.loads(df.proto.columns).items() if k != "_index"}
        values = df.value
        for col, cfg in columns.items():
            label = cfg.get("label") or ""
            assert "_" not in label or label in tables.HYPERPARAMETERS, (name, col, label)
            if col in values and pd_is_number(values[col]):
                assert (cfg.get("type_config") or {}).get("format"), (name, col, "a number with no format")
            if col.endswith("_at"):
                assert (cfg.get("type_config") or {}).get("type") == "datetime", (name, col, "a Unix epoch shown raw")


def pd_is_number(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def test_every_source_has_one_solid_legend_item_even_when_all_its_points_are_on_its_front():
    import sys

    import pandas as pd

    sys.path.insert(0, str(Path(APP).parent))
    from charts import front_figure

    rows = [{"source": "all-front", "arch_id": f"a{i}", "decoder_params": 10 * (i + 1), "latency_ms": float(i + 1),
             "feasible": 1} for i in range(3)]
    rows += [{"source": "cloud", "arch_id": f"b{i}", "decoder_params": 10 + i % 3, "latency_ms": 5.0 + i,
              "feasible": 1} for i in range(6)]
    fig = front_figure(pd.DataFrame(rows), "latency_ms").to_plotly_json()
    legend = [t for t in fig["data"] if t.get("showlegend", True)]
    assert sorted(t["name"] for t in legend) == ["all-front", "cloud"]
    assert all(t["marker"].get("opacity", 1) == 1 for t in legend)
    # the item toggles every trace of its source
    assert {t["legendgroup"] for t in fig["data"] if t["name"].startswith("cloud")} == {"cloud"}
    assert fig["layout"].get("dragmode") is None  # one drag behaviour on every selecting chart


def test_a_surrogate_holding_out_50000_points_draws_a_bounded_sample_with_its_worst_errors():
    import sys

    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(Path(APP).parent))
    from charts import BACKGROUND, WORST, heldout_scatter

    rng = np.random.default_rng(0)
    measured = rng.uniform(1, 100, 50_000)
    predicted = measured * rng.lognormal(0, 0.05, measured.size)
    pts = pd.DataFrame({"arch_id": [f"a{i}" for i in range(measured.size)], "measured": measured,
                        "predicted": predicted, "std": 0.05 * predicted,
                        "error_pct": (predicted - measured) / measured * 100})
    fig, drawn = heldout_scatter(pts, "latency", "ms")
    held = fig.data[-1]
    assert drawn == len(held.x) == BACKGROUND + WORST
    worst = pts.loc[pts["error_pct"].abs().nlargest(WORST).index, "arch_id"]
    assert set(worst) <= set(held.text)
    small = pts.head(300)
    assert heldout_scatter(small, "latency", "ms")[1] == 300  # a small hold-out is drawn whole


def test_architecture_compare_with_leaves_out_the_one_shown(monkeypatch, seeded):
    at = page(monkeypatch, seeded[0], "views/architecture.py")
    shown = at.query_params["arch"]
    options = [m for m in at.multiselect if m.label.startswith("Compare with")][0].options
    assert options and shown not in options


def test_numbers_that_mislead_carry_a_warning(monkeypatch, seeded):
    import pandas as pd

    from lts.reference import PAPER_CAVEAT
    from lts.validate.page import untrained_warning

    at = page(monkeypatch, seeded[0], "views/frontier.py")
    assert PAPER_CAVEAT not in [w.value for w in at.warning]
    [m for m in at.multiselect if m.label == "LTS paper frontiers"][0].set_value([at.multiselect[1].options[0]]).run()
    assert PAPER_CAVEAT in [w.value for w in at.warning]
    untrained = pd.DataFrame({"status": ["done"] * 3 + ["pending"], "valid_ppl": [510.0, 522.0, 530.0, None]})
    assert "barely trained" in untrained_warning(untrained)
    assert untrained_warning(untrained.assign(valid_ppl=[60.0, 75.0, 90.0, None])) is None
    assert untrained_warning(untrained.iloc[3:]) is None  # nothing trained yet: nothing to say
