"""One real-browser test: Playwright drives Debian's Chromium against `streamlit run` on 127.0.0.1.

Clicks through every page, selects a frontier point, downloads its JSON and checks the content.
Screenshots land in results/screenshots/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from test_dashboard import seed

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "results" / "screenshots"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                 reason=f"{CHROMIUM} not installed (.ci/run installs it with apt-get)")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(db: Path, secrets: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run dashboard/app.py` on 127.0.0.1 with its own secrets file (none: no sign-in)."""
    port = free_port()
    env = {**os.environ, "LTS_DB": str(db)}
    env.pop("LTS_ALLOW_UNAUTHENTICATED", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--secrets.files", str(secrets)],  # not the working folder's .streamlit/secrets.toml
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not become healthy: " + proc.stdout.read().decode()[-2000:])
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    db = tmp / "lts.db"
    info = seed(db)
    proc, url = start_streamlit(db, tmp / "no-secrets.toml")
    yield url, info, db
    stop(proc)


@pytest.fixture(scope="module")
def team_server(tmp_path_factory):
    """A server whose secrets file holds one password user, the operator otto."""
    from lts.team.auth import hash_password

    tmp = tmp_path_factory.mktemp("team")
    secrets = tmp / "secrets.toml"
    secrets.write_text(f'[lts.users.otto]\nrole = "operator"\npassword_hash = "{hash_password("otto-secret-1")}"\n')
    proc, url = start_streamlit(tmp / "lts.db", secrets)
    yield url
    stop(proc)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


def wait_idle(page) -> None:
    """Streamlit shows a 'running' widget while a script runs; wait for it to go away."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000)


def test_click_through_select_a_point_and_download_it(server, browser, tmp_path):
    url, info, _ = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(url)
    page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
    wait_idle(page)
    page.screenshot(path=str(SHOTS / "search.png"), full_page=True)

    for title in ["Compare devices", "Pick under constraints", "Front quality", "Measurements", "Validation", "Data",
                  "Architecture"]:
        page.get_by_role("link", name=title).first.click()
        page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
        wait_idle(page)
        assert page.locator("[data-testid='stException']").count() == 0, title
        page.screenshot(path=str(SHOTS / f"{title.lower().replace(' ', '_')}.png"), full_page=True)

    page.get_by_role("link", name="Frontier explorer").first.click()
    page.get_by_role("heading", name="Frontier explorer").wait_for(timeout=30_000)
    wait_idle(page)
    points = page.locator(".js-plotly-plot .scatterlayer .trace .points path")
    points.first.wait_for(timeout=30_000)
    page.screenshot(path=str(SHOTS / "frontier.png"), full_page=True)
    # box-select the whole plot area with the toolbar's box select (a drag zooms, as on every selecting
    # chart): every drawn point, front included
    page.locator(".js-plotly-plot").first.hover()
    page.locator(".js-plotly-plot .modebar-btn[data-val='select']").first.click()
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + 3, box["y"] + 3)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] - 3, steps=5)
    page.mouse.up()
    page.get_by_text("Selected (").wait_for(timeout=30_000)
    wait_idle(page)
    page.screenshot(path=str(SHOTS / "frontier_selected.png"), full_page=True)

    with page.expect_download() as dl:
        page.get_by_role("button", name="Download selection (JSON)").click()
    path = tmp_path / "selection.json"
    dl.value.save_as(path)
    data = json.loads(path.read_text())
    assert len(data["architectures"]) >= 1
    arch = data["architectures"][0]
    assert len(arch["arch_id"]) == 16 and arch["config"]["family"] == "gpt2"
    from lts.space.counts import decoder_params
    from lts.space.config import config_from_dict

    cfg = config_from_dict(arch["config"])
    assert cfg.arch_id == arch["arch_id"]
    assert arch["proxies"]["decoder_params"] == decoder_params(cfg)
    assert arch["measurements"] and arch["measurements"][0]["latency_ms"] > 0


FRONT_POINT = """([chart, trace, where]) => {
  const gd = document.querySelectorAll('.js-plotly-plot')[chart];
  const t = gd._fullData.find(d => d.name === trace);
  if (!t) return null;
  const i = Math.floor(where * (t.x.length - 1));
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(xa.d2l(t.x[i])), y: box.top + ya._offset + ya.l2p(ya.d2l(t.y[i])),
          id: t.customdata[i][0], value: t.x[i]};
}"""
TRACE = """([chart, trace]) => {
  const gd = document.querySelectorAll('.js-plotly-plot')[chart];
  const t = gd && gd._fullData && gd._fullData.find(d => d.name === trace);  // decoded arrays (data has base64)
  return t ? {x: Array.from(t.x), ids: (t.customdata || []).map(c => c[0]), sources: (t.customdata || []).map(c => c[1])} : null;
}"""


def open_page(page, title: str) -> None:
    page.get_by_role("link", name=title).first.click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
    wait_idle(page)
    page.locator(".js-plotly-plot .scatterlayer .trace .points path").first.wait_for(timeout=30_000)


def test_constraint_slider_redraws_the_front(server, browser):
    url, _, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
    open_page(page, "Pick under constraints")
    before = page.evaluate(TRACE, [0, "feasible 2-D front"])
    slider = page.locator("[data-testid='stSlider']", has_text="Max latency (ms)").get_by_role("slider")
    slider.focus()
    for _ in range(25):  # from "no limit" down the geometric steps
        slider.press("ArrowLeft")
    # Each key press may rerun the page: wait for the chart of the slider's final value, not the first redraw.
    page.wait_for_function("""(n) => { const gd = document.querySelector('.js-plotly-plot');
        const t = gd && gd._fullData && gd._fullData.find(d => d.name === 'feasible 2-D front');
        const thumb = document.querySelector("[data-testid='stSliderThumbValue']");
        const limit = thumb && parseFloat(thumb.innerText);
        return t && t.x.length !== n && Math.max(...t.x) <= limit; }""", arg=len(before["x"]), timeout=30_000)
    wait_idle(page)
    after = page.evaluate(TRACE, [0, "feasible 2-D front"])
    limit = float(page.locator("[data-testid='stSlider']", has_text="Max latency (ms)")
                  .get_by_test_id("stSliderThumbValue").inner_text())
    assert len(after["x"]) < len(before["x"]) and max(after["x"]) <= limit < max(before["x"])
    assert page.get_by_text("Best proxy:").count() == 1
    page.screenshot(path=str(SHOTS / "constraints_moved.png"), full_page=True)


def test_selecting_a_point_highlights_it_on_every_device(server, browser):
    url, info, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(url)
    page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
    open_page(page, "Compare devices")
    assert page.evaluate(TRACE, [0, "selected"]) is None
    # a point of the first device's front that the other two devices measured too
    from lts.store.db import Store

    everywhere = {r["arch_id"] for r in Store(server[2]).query(
        "SELECT arch_id FROM measurements GROUP BY arch_id HAVING COUNT(DISTINCT device_id) = 3")}
    for where in np.linspace(0, 1, 21):
        point = page.evaluate(FRONT_POINT, [0, "fake-device front", float(where)])
        if point["id"] in everywhere:
            break
    assert point["id"] in everywhere
    page.mouse.move(point["x"], point["y"])
    page.wait_for_timeout(300)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function("() => { const gd = document.querySelector('.js-plotly-plot');"
                           " return gd && gd.data.some(d => d.name === 'selected'); }", timeout=30_000)
    wait_idle(page)
    ringed = page.evaluate(TRACE, [0, "selected"])
    assert set(ringed["ids"]) == {point["id"]}
    assert set(ringed["sources"]) == {"fake-device", "slower-device", "depth-bound"}  # ringed on every device
    page.get_by_text("Selected architectures on each device").wait_for(timeout=10_000)
    page.screenshot(path=str(SHOTS / "compare_selected.png"), full_page=True)
    # the selection follows to the other deciding pages
    open_page(page, "Pick under constraints")
    assert page.evaluate(TRACE, [0, "selected"])["ids"] == [point["id"]]


def test_download_a_bundle_and_import_another(server, browser, tmp_path):
    from helpers import FakeMeasure
    from lts.search.runner import SearchRunner, SearchSettings, create_run
    from lts.store.bundle import write_bundle
    from lts.store.db import Store

    from conftest import small_space
    from test_dashboard import FAKE_DEVICE, PROTOCOL

    url, info, _ = server
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.goto(url)
    page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
    page.get_by_role("link", name="Data").first.click()
    page.get_by_role("heading", name="Data").first.wait_for(timeout=30_000)
    wait_idle(page)
    page.locator("[data-testid='stMultiSelect']", has_text="Runs").click()
    page.get_by_role("option").filter(has_text=info["runs"][0]).click()
    page.keyboard.press("Escape")
    wait_idle(page)
    with page.expect_download() as dl:
        page.get_by_role("button", name="Download bundle").click()
    mine = tmp_path / "mine.json"
    dl.value.save_as(mine)
    bundle = json.loads(mine.read_text())
    entry = bundle["reproduce"][0]
    assert entry["run_id"] == info["runs"][0] and entry["settings"]["seed"] == 1 and entry["packages"]["plotly"]
    assert len(bundle["members"]) == 30 and entry["front"]

    # their machine: another device, its own run, exported there and imported here
    theirs = Store(tmp_path / "theirs.db")
    other = {**FAKE_DEVICE, "device_id": "fa4edeadbeef00aa", "name": "their-laptop"}
    run = create_run(theirs, SearchSettings(space=small_space("gpt2"), budget=20, seed=7), other, PROTOCOL)
    SearchRunner(theirs, run, measure=FakeMeasure()).run_to_end()
    write_bundle(theirs, [run], tmp_path / "theirs.json")
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(tmp_path / "theirs.json"))
    page.get_by_role("button", name="Import").click()
    page.get_by_text("Imported: 1 new runs").wait_for(timeout=30_000)
    page.get_by_text("Re-run an imported run on this machine").wait_for(timeout=10_000)
    page.screenshot(path=str(SHOTS / "data_imported.png"), full_page=True)


def sign_in(page, name: str, password: str) -> None:
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_through_the_password_form(team_server, browser):
    url = team_server
    SHOTS.mkdir(parents=True, exist_ok=True)
    # The server's first request is a deep link: Streamlit runs views/data.py without app.py (its older
    # multipage mode); the page meets the gate itself.
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{url}/data")
    page.get_by_role("heading", name="Sign in").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.get_by_role("heading", name="Data").count() == 0
    page.screenshot(path=str(SHOTS / "sign_in.png"), full_page=True)
    sign_in(page, "otto", "wrong-password")
    page.get_by_text("Wrong user name or password.").wait_for(timeout=30_000)
    sign_in(page, "otto", "otto-secret-1")
    page.get_by_role("heading", name="Data").first.wait_for(timeout=30_000)

    # A new browser session at the root: signed out again, the navigation hidden until signed in.
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_role("heading", name="Sign in").wait_for(timeout=30_000)
    wait_idle(page)
    assert page.get_by_role("link", name="Audit").count() == 0
    sign_in(page, "otto", "otto-secret-1")
    page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
    wait_idle(page)
    page.get_by_text("Signed in as otto (operator)").wait_for(timeout=10_000)
    page.get_by_text("Run a demo search").wait_for(timeout=10_000)  # an operator's control
    page.screenshot(path=str(SHOTS / "signed_in_search.png"), full_page=True)
    page.get_by_role("link", name="Audit").first.click()
    page.get_by_role("heading", name="Audit").first.wait_for(timeout=30_000)
    page.get_by_text("Nothing audited yet").wait_for(timeout=10_000)
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in").wait_for(timeout=30_000)


def test_a_validation_that_finishes_appears_without_a_reload(browser, tmp_path):
    from lts.store.db import Store
    from lts.text.corpus import load_corpus
    from lts.text.tokenizer import TokenizerSpec
    from lts.validate.recipe import Recipe
    from lts.validate.runner import ValidationRunner
    from lts.validate.session import ValidationSettings, create_validation
    from test_export import TINY_SPACE

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "book.txt").write_text(load_corpus().documents[0].text[5000:45000])
    db = tmp_path / "v.db"
    s = Store(db)
    recipe = Recipe(steps=20, batch_size=8, seq_len=32, lr=3e-3, warmup_steps=4, eval_sequences=16)
    vid = create_validation(s, ValidationSettings(space=TINY_SPACE, n_archs=3, seed=1, corpus=str(corpus),
                                                  tokenizer=TokenizerSpec("byte", 256), recipe=recipe), tmp_path / "cache")
    proc, url = start_streamlit(db, tmp_path / "no-secrets.toml")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
        open_page(page, "Validation")
        page.get_by_text("0 / 3 trained").wait_for(timeout=30_000)  # the live card of the created run
        page.get_by_text("0 of 3 architectures trained so far").wait_for(timeout=10_000)
        ValidationRunner(s, vid).run_to_end()  # trained here, while the page stays open
        page.get_by_text("Spearman · decoder_params").first.wait_for(timeout=30_000)  # no reload
        page.get_by_text("3 / 3 trained").wait_for(state="detached", timeout=15_000)  # the card goes with the job
        page.get_by_text("0 / 3 trained").wait_for(state="detached", timeout=15_000)
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        s.close()
        stop(proc)


COLOUR_OF = """([name]) => {
  const gd = document.querySelector('.js-plotly-plot');
  const got = new Set(gd._fullData.filter(d => d.name === name || d.name === name + ' front'
                                          || d.name === 'feasible 2-D front')
                                   .map(d => (d.line && d.mode && d.mode.includes('lines')) ? d.line.color : d.marker.color));
  return [...got];
}"""


def test_a_device_has_the_same_colour_on_compare_and_on_pick(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(server[0])
    page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
    open_page(page, "Pick under constraints")
    # the second device of Compare's legend: a colour by position would differ between the pages
    box = page.get_by_role("combobox", name="Device").first
    box.click()
    page.get_by_role("option", name="slower-device").first.click()
    page.wait_for_function("() => document.querySelector('input[aria-label=\"Device\"]').value.startsWith('slower')",
                           timeout=30_000)
    wait_idle(page)
    page.locator(".js-plotly-plot .scatterlayer .trace .points path").first.wait_for(timeout=30_000)
    device = box.input_value().split(" (")[0]  # "slower-device (fa4edead)"
    on_pick = page.evaluate(COLOUR_OF, [device])
    open_page(page, "Compare devices")
    page.wait_for_function("(n) => document.querySelector('.js-plotly-plot')._fullData.some(d => d.name === n + ' front')",
                           arg=device, timeout=30_000)
    on_compare = page.evaluate("""([name]) => [...new Set(document.querySelector('.js-plotly-plot')._fullData
        .filter(d => d.name === name + ' front').map(d => d.line.color))]""", [device])
    assert len(on_pick) == 1 and on_pick == on_compare, (device, on_pick, on_compare)


def test_two_running_searches_show_side_by_side_and_each_cancels(browser, tmp_path):
    from conftest import small_space
    from helpers import FAKE_DEVICE
    from lts.search.runner import SearchSettings, create_run
    from lts.store.db import Store

    db = tmp_path / "live.db"
    s = Store(db)
    runs = []
    for budget in (10, 20):
        run_id = create_run(s, SearchSettings(space=small_space("gpt2"), budget=budget), FAKE_DEVICE, "fake-b1")
        with s.write() as conn:  # alive: this test's process stands in for each search's process
            conn.execute("UPDATE runs SET status = 'running', pid = ?, n_evaluated = ?, updated_at = ? WHERE run_id = ?",
                         (os.getpid(), budget // 2, time.time(), run_id))
        runs.append(run_id)
    proc, url = start_streamlit(db, tmp_path / "no-secrets.toml")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("heading", name="Running (2)").wait_for(timeout=30_000)
        wait_idle(page)
        for run_id in runs:
            page.get_by_text(run_id).first.wait_for(timeout=10_000)
        cancel = page.get_by_role("button", name="Cancel")
        assert cancel.count() == 2
        page.screenshot(path=str(SHOTS / "two_searches.png"), full_page=True)
        cancel.first.click()
        deadline = time.time() + 30
        while time.time() < deadline and not any(s.run(r)["status"] == "cancelling" for r in runs):
            time.sleep(0.3)
        assert sorted(s.run(r)["status"] for r in runs) == ["cancelling", "running"]
        assert page.locator("[data-testid='stException']").count() == 0
    finally:
        s.close()
        stop(proc)
