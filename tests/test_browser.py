"""One real-browser test: Playwright drives Debian's Chromium against `streamlit run` on 127.0.0.1.

Clicks through every page, selects a frontier point, downloads its JSON and checks the content.
Screenshots land in results/screenshots/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_dashboard import seed

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SHOTS = REPO / "results" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason=f"{CHROMIUM} not installed (.ci/run installs it with apt-get)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser") / "lts.db"
    info = seed(db)
    port = free_port()
    env = {**os.environ, "LTS_DB": str(db)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboard" / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
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
    yield url, info
    proc.terminate()
    proc.wait(10)


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
    url, info = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(url)
    page.get_by_role("heading", name="Search").wait_for(timeout=30_000)
    wait_idle(page)
    page.screenshot(path=str(SHOTS / "search.png"), full_page=True)

    for title in ["Compare devices", "Validation", "Data", "Architecture"]:
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
    # box-select the whole plot area: every drawn point, front included
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
    from lts.proxies.params import decoder_params
    from lts.space.config import config_from_dict

    cfg = config_from_dict(arch["config"])
    assert cfg.arch_id == arch["arch_id"]
    assert arch["proxies"]["decoder_params"] == decoder_params(cfg)
    assert arch["measurements"] and arch["measurements"][0]["latency_ms"] > 0
