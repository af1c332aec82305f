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
PAGES = ["pages/search.py", "pages/frontier.py", "pages/compare.py", "pages/architecture.py",
         "pages/validation.py", "pages/data.py"]


class SlowerDevice(FakeMeasure):
    def __call__(self, cfg):
        m = super().__call__(cfg)
        m["latency_ms"] *= 3
        return m


def seed(path: Path) -> dict:
    s = Store(path)
    a = create_run(s, SearchSettings(space=small_space("gpt2"), budget=30, seed=1), FAKE_DEVICE, "p")
    SearchRunner(s, a, measure=FakeMeasure()).run_to_end()
    other = {**FAKE_DEVICE, "device_id": "fa4edeadbeef0002", "name": "slower-device"}
    b = create_run(s, SearchSettings(space=small_space("gpt2"), budget=30, seed=1), other, "p")
    SearchRunner(s, b, measure=SlowerDevice()).run_to_end()
    front = s.run_rows(a, frontier_only=True)
    s.close()
    return {"runs": (a, b), "front": front}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    path = tmp_path_factory.mktemp("dash") / "lts.db"
    return path, seed(path)


def page(monkeypatch, db: Path, name: str) -> AppTest:
    monkeypatch.setenv("LTS_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=60)
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
    if name in ("pages/search.py",):
        assert any("demo" in b.label.lower() for b in at.button)
    if name in ("pages/frontier.py", "pages/compare.py", "pages/architecture.py"):
        assert at.info, "an empty page should say what to do next"


def test_frontier_page_plots_the_chosen_runs(monkeypatch, seeded):
    at = page(monkeypatch, seeded[0], "pages/frontier.py")
    assert at.get("plotly_chart")
    assert "architectures shown" in " ".join(c.value for c in at.caption)
    at.multiselect[0].set_value([]).run()
    assert at.info  # nothing chosen: a hint instead of an empty chart


def test_architecture_page_shows_the_per_layer_table(monkeypatch, seeded):
    db, info = seeded
    arch = info["front"][0]
    at = page(monkeypatch, db, "pages/architecture.py")
    at.text_input[0].set_value(arch["arch_id"]).run()
    assert not at.exception and not at.error
    assert at.metric[0].value == f"{arch['decoder_params']:,}"
    layers = at.dataframe[0].value
    assert len(layers) == arch["n_layer"] and list(layers.columns) == ["layer", "n_head", "d_head", "d_inner"]
    at.text_input[0].set_value("0123456789abcdef").run()
    assert at.error and "no architecture" in at.error[0].value


def test_compare_page_reports_ratios(monkeypatch, seeded):
    at = page(monkeypatch, seeded[0], "pages/compare.py")
    assert any(m.label == "median latency ratio" and m.value == "3.00x" for m in at.metric)


def test_search_form_launches_a_background_search(monkeypatch, tmp_path):
    db = tmp_path / "live.db"
    at = page(monkeypatch, db, "pages/search.py")
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
