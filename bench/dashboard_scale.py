"""Time to a drawn front on each dashboard page, in Chromium, with N architectures on each of 3 devices.

    .venv/bin/python bench/dashboard_scale.py [--sizes 2000 50000] [--repeats 3] [--shots results/screenshots/scale]

For each size, seeds a database (``/tmp/lts-scale-N.db``, reused when present) with N architectures
measured on 3 synthetic devices (a CPU, a slower ARM-like CPU whose latency also grows with the FFN
width, and a GPU whose latency is set by depth: it reorders architectures), an evolution run per
device and a random-search run on the first, then serves the dashboard with ``streamlit run`` and
drives Debian's Chromium (Playwright, headless). Per page:

* **first visit**: a fresh browser context (empty cache) on a warm server (the page was opened once
  before in another context, so the server's caches are filled);
* **warm**: the median of ``--repeats`` reloads in that context (warm server and browser).

The clock runs from navigation to the moment the page's chart has drawn its front (the SVG line of
a front or of a curve, the marker layer, or the heatmap) and the script has finished. Targets, on
every page at 50,000: under 2 s warm and under 3 s on a first visit (the table marks each over).
Besides the seeded runs, the database holds a finished 40-model validation run with learning curves
and a cost surrogate fitted on 200 of the first device's measurements (49,800 held out). Screenshots of every page at the
largest size go to ``--shots``. Costs are a deterministic model with seeded noise: this benchmark is
about the dashboard, not about a device.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lts.space.counts import decoder_params, forward_flops, total_params  # noqa: E402
from lts.objectives import objective_matrix  # noqa: E402
from lts.pareto import pareto_mask  # noqa: E402
from lts.space.ranges import SearchSpace  # noqa: E402
from lts.store.db import Store  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TARGET_WARM_S, TARGET_FIRST_S = 2.0, 3.0  # every page, at 3 x 50,000 architectures
PROTOCOL = "torch-cpu-b1-sdefault-t1"
LINE = ".js-plotly-plot .scatterlayer .js-line"
# url path, heading, what "drawn" means on that page
PAGES = [
    ("frontier", "Frontier explorer", LINE),
    ("compare", "Compare devices", LINE),
    ("constraints", "Pick under constraints", LINE),
    ("quality", "Front quality", LINE),
    ("measurements", "Measurements", ".js-plotly-plot .scatterlayer .points path"),
    ("architecture", "Architecture", ".js-plotly-plot .heatmaplayer .hm"),
    ("surrogates", "Cost surrogates", ".js-plotly-plot .scatterlayer .points path"),
    ("validation", "Validation", ".js-plotly-plot .scatterlayer .points path"),
    ("darts", "DARTS search", None),
    ("search", "Search", None),
    ("data", "Data", None),
    ("audit", "Audit", None),
]
VALIDATION_ARCHS, CHECKPOINTS = 40, 8  # a large own validation run: 40 models, a held-out loss every 500 steps
DEVICES = [
    {"name": "laptop-cpu", "kind": "cpu", "cpu_model": "synthetic x86 (4 cores)", "cores": 4, "gpu": None},
    {"name": "arm-edge", "kind": "cpu", "cpu_model": "synthetic ARM (8 cores)", "cores": 8, "gpu": None},
    {"name": "gpu-server", "kind": "cuda", "cpu_model": "synthetic x86 (32 cores)", "cores": 32,
     "gpu": "synthetic GPU (80 GiB)"},
]


def costs(k: int, cfgs: list, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(latency ms, peak memory MB) of every config on device k, with seeded noise."""
    flops = np.array([forward_flops(c) for c in cfgs], dtype=float)
    weights = np.array([4 * total_params(c) / 2**20 for c in cfgs])
    layers = np.array([c.n_layer for c in cfgs], dtype=float)
    ffn = np.array([np.mean(c.d_inner) for c in cfgs])
    act = np.array([c.n_layer * c.d_model * c.tgt_len * 16 / 2**20 for c in cfgs])
    if k == 0:
        lat, mem = flops / 4e8, weights + act + 30
    elif k == 1:
        lat, mem = 2.7 * flops / 4e8 * (1 + 0.4 * ffn / 2048), weights + 1.3 * act + 12
    else:
        lat, mem = 0.6 + 0.35 * layers + flops / 4e10, weights + act + 420
    return lat * rng.lognormal(0, 0.03, len(cfgs)), mem * rng.lognormal(0, 0.005, len(cfgs))


def seed(path: Path, n: int) -> None:
    """Seed ``path`` once (a database that already holds n architectures is kept)."""
    store = Store(path)
    if store.db["architectures"].count >= n:
        store.close()
        return
    space = SearchSpace.default("gpt2")
    rng_cfg = random.Random(0)
    cfgs, seen = [], set()
    while len(cfgs) < n:
        c = space.sample(rng_cfg)
        if c.arch_id not in seen:
            seen.add(c.arch_id)
            cfgs.append(c)
    params = np.array([decoder_params(c) for c in cfgs])
    start = time.time() - 86400
    with store.write() as conn:
        for c in cfgs:
            store.upsert_architecture(conn, c)
    for k, spec in enumerate(DEVICES):
        rng = np.random.default_rng(k)
        device = {**spec, "device_id": hashlib.sha256(spec["name"].encode()).hexdigest()[:16], "ram_gb": 64,
                  "torch_version": "2.13.0", "threads": 1}
        lat, mem = costs(k, cfgs, rng)
        cv = np.clip(rng.gamma(2.0, 0.008, n), 0.002, None)  # median ~1.3%, a few % above 5%
        repeats = rng.integers(3, 51, n)
        # evolution finds efficient architectures earlier than chance: order by efficiency plus noise
        eff = np.argsort(np.argsort(-params / lat)) / n
        order = np.argsort(0.6 * eff + 0.4 * rng.random(n))
        t_eval = np.empty(n)
        t_eval[order] = start + 1.5 * np.arange(1, n + 1)
        rows = [{"decoder_params": int(p), "latency_ms": float(x), "peak_memory_mb": float(m)}
                for p, x, m in zip(params, lat, mem)]
        F = objective_matrix(rows, ("proxy", "latency", "memory"))
        runs = [(f"evo{k}", "evolution", order, start, start + 1.5 * n)]
        if k == 0:
            runs.append(("rnd0", "random", rng.permutation(n), start + 1.5 * n + 60, start + 3.0 * n + 60))
        with store.write() as conn:
            store.upsert_device(conn, device)
            conn.executemany(
                "INSERT INTO measurements (arch_id, device_id, protocol, latency_ms, latency_cv, repeats,"
                " peak_memory_mb, infeasible, seconds, measured_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(c.arch_id, device["device_id"], PROTOCOL, float(lat[i]), float(cv[i]), int(repeats[i]),
                  float(mem[i]), None, 1.5, float(t_eval[i])) for i, c in enumerate(cfgs)])
            for run_id, strategy, ord_, created, updated in runs:
                front = np.zeros(n, dtype=bool)
                front[pareto_mask(F)] = True
                hv_scales = {"proxy": float(params.max()), "latency": 1.5 * float(lat.max()),
                             "memory": 1.5 * float(mem.max())}
                conn.execute(
                    "INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed,"
                    " budget, device_id, protocol, status, n_evaluated, frontier_size, elapsed, state_json,"
                    " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, "gpt2", json.dumps(space.to_dict()), strategy, '["proxy","latency","memory"]', "{}", 0,
                     n, device["device_id"], PROTOCOL, "finished", n, int(front.sum()), updated - created,
                     json.dumps({"hv_scales": hv_scales}), created, updated))
                conn.executemany(
                    "INSERT INTO run_members (run_id, arch_id, eval_index, generation, feasible, on_frontier)"
                    " VALUES (?,?,?,?,?,?)",
                    [(run_id, cfgs[i].arch_id, j, j // 10, 1, int(front[i])) for j, i in enumerate(ord_)])
    store.close()


def seed_extras(path: Path) -> None:
    """Once per database: a finished validation run of VALIDATION_ARCHS architectures with learning
    curves (perplexity falling with decoder params, with noise) and a cost surrogate of the first device
    fitted on 200 of its measurements (every other one held out: the Cost surrogates page's scatter)."""
    from lts.store import validations
    from lts.store.reads import has_table
    from lts.space.config import config_from_dict
    from lts.surrogate.fit import fit_surrogate
    from lts.validate.recipe import RECIPES

    store = Store(path)
    try:
        if not validations.has_tables(store) or not validations.list_all(store):
            rows = store.query("SELECT config_json FROM architectures ORDER BY arch_id LIMIT ?", (VALIDATION_ARCHS,))
            cfgs = [config_from_dict(json.loads(r["config_json"])) for r in rows]
            corpus = {"source": "builtin:austen", "documents": ["synthetic"] * 6, "bytes": 4_000_000,
                      "valid_fraction": 0.1, "sha256": "0" * 64}
            tokenizer = {"kind": "bpe", "vocab_size": 4096, "train_tokens": 960_000, "valid_tokens": 107_000,
                         "bytes_per_token": 3.8}
            validations.insert(store, validations.NewValidation(
                "scale-val", "gpt2", {"family": "gpt2"}, corpus, tokenizer, RECIPES["lts-v2"].to_dict(), 0, None),
                [(c, None) for c in cfgs])
            rng = np.random.default_rng(7)
            for i, c in enumerate(cfgs):
                final = 6.0 - 0.25 * np.log(decoder_params(c)) + rng.normal(0, 0.05)
                curve = [{"step": 500 * k, "tokens": 500 * k * 16 * 192,
                          "valid_loss": float(final + 1.5 / k + rng.normal(0, 0.03))} for k in range(1, CHECKPOINTS + 1)]
                validations.record_result(store, "scale-val", c.arch_id, {
                    "valid_ppl": float(np.exp(curve[-1]["valid_loss"])), "valid_loss": curve[-1]["valid_loss"],
                    "train_loss": curve[-1]["valid_loss"] - 0.1, "wall_seconds": 600.0, "tokens_per_second": 17000.0,
                    "curve": curve}, None, 600.0 * (i + 1))
            with store.write() as conn:
                conn.execute("UPDATE validation_runs SET status = 'finished' WHERE validation_id = 'scale-val'")
        if not has_table(store, "surrogates") or not store.query("SELECT 1 FROM surrogates LIMIT 1"):
            device_id = hashlib.sha256(DEVICES[0]["name"].encode()).hexdigest()[:16]
            fit_surrogate(store, device_id, PROTOCOL, "latency", n_train=200, kinds=("gbm",))
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BASELINE_APP = """import plotly.graph_objects as go
import streamlit as st

st.set_page_config(layout="wide")
st.title("Baseline")
st.plotly_chart(go.Figure(go.Scatter(x=list(range(100)), y=[i * i for i in range(100)], mode="lines")))
"""


def serve(db: Path, app: Path = REPO / "dashboard" / "app.py") -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO, env={**os.environ, "LTS_DB": str(db)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("streamlit did not start")


# The sidebar check makes sure the app ran through app.py's st.navigation (see serve()).
DRAWN = """([sel, heading]) => {
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  const nav = document.querySelector('[data-testid="stSidebarNav"]');
  if (heading !== 'Baseline' && (!nav || !nav.textContent.includes('Pick under constraints'))) return false;
  const h = [...document.querySelectorAll('h1')].some(e => e.textContent.trim().startsWith(heading));
  if (!h) return false;
  return !sel || document.querySelectorAll(sel).length > 0;
}"""


def visit(page, url: str, heading: str, selector: str | None, reload: bool = False) -> float:
    t0 = time.perf_counter()
    if reload:
        page.reload(wait_until="commit")
    else:
        page.goto(url, wait_until="commit")
    page.wait_for_timeout(150)  # let the previous page's DOM go before testing for the new one
    page.wait_for_function(DRAWN, arg=[selector, heading], timeout=120_000, polling=25)
    return time.perf_counter() - t0


FRONT_POINT = """([trace, where]) => {
  const gd = document.querySelector('.js-plotly-plot');
  const t = gd._fullData.find(d => d.name === trace);
  const i = Math.floor(where * (t.x.length - 1));
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(xa.d2l(t.x[i])), y: box.top + ya._offset + ya.l2p(ya.d2l(t.y[i]))};
}"""


def decide_shots(browser, url: str, shots: Path, n: int) -> None:
    """Screenshots of the deciding views in use, in one session: a point selected on the linked fronts,
    a latency limit, the best-proxy and knee points selected and compared layer by layer."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()

    def go(title: str, selector: str | None = LINE) -> None:
        page.get_by_role("link", name=title).first.click()
        page.wait_for_timeout(300)
        page.wait_for_function(DRAWN, arg=[selector, title], timeout=120_000)

    def shot(name: str) -> None:
        page.set_viewport_size({"width": 1400, "height": 2600})
        page.wait_for_timeout(1500)
        page.screenshot(path=str(shots / f"{name}_{n}.png"))
        page.set_viewport_size({"width": 1400, "height": 1000})

    visit(page, url, "Search", None)
    go("Compare devices")
    point = page.evaluate(FRONT_POINT, [f"{DEVICES[2]['name']} front", 0.6])
    page.mouse.move(point["x"], point["y"])
    page.wait_for_timeout(300)
    page.mouse.click(point["x"], point["y"])
    page.wait_for_function("() => document.querySelector('.js-plotly-plot')._fullData.some(d => d.name === 'selected')",
                           timeout=60_000)
    page.wait_for_function(DRAWN, arg=[LINE, "Compare devices"], timeout=60_000)
    shot("compare_selected")
    go("Pick under constraints")
    slider = page.locator("[data-testid='stSlider']", has_text="Max latency (ms)").get_by_role("slider")
    slider.focus()
    for _ in range(22):
        slider.press("ArrowLeft")
    page.wait_for_timeout(1500)
    page.wait_for_function(DRAWN, arg=[LINE, "Pick under constraints"], timeout=60_000)
    page.get_by_role("button", name="Select the best-proxy and knee points").click()
    page.wait_for_timeout(1500)
    page.wait_for_function(DRAWN, arg=[LINE, "Pick under constraints"], timeout=60_000)
    shot("constraints_limited")
    go("Architecture", ".js-plotly-plot .heatmaplayer .hm")
    page.get_by_text("Measurements and perplexity").wait_for(timeout=60_000)
    shot("architecture_diff")
    go("Measurements", ".js-plotly-plot .scatterlayer .points path")
    shot("measurements_selected")
    ctx.close()


def bench_size(browser, n: int, repeats: int, shots: Path | None, max_size: int) -> list[dict]:
    db = Path(f"/tmp/lts-scale-{n}.db")
    t0 = time.perf_counter()
    seed(db, n)
    seed_extras(db)
    print(f"\n{n:,} architectures x {len(DEVICES)} devices: database ready in {time.perf_counter() - t0:.0f} s "
          f"({db.stat().st_size / 2**20:.0f} MB)", flush=True)
    proc, url = serve(db)
    out = []
    try:
        # Until app.py has run once, Streamlit serves a deep link (/compare) from a pages/ folder (none here: dashboard/views/)
        # directly (its v1 multipage mode, without app.py); a first visit to the root switches it over.
        root = browser.new_context()
        visit(root.new_page(), url, "Search", None)
        root.close()
        for path, heading, selector in PAGES:
            warmup = browser.new_context(viewport={"width": 1400, "height": 1000})
            visit(warmup.new_page(), f"{url}/{path}", heading, selector)  # fills the server's caches
            warmup.close()
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            first = visit(page, f"{url}/{path}", heading, selector)
            warm = [visit(page, f"{url}/{path}", heading, selector, reload=True) for _ in range(repeats)]
            if shots is not None:  # a tall viewport: Streamlit scrolls inside the page, full_page alone is not enough
                page.set_viewport_size({"width": 1400, "height": 2600})
                page.wait_for_timeout(1500)
                page.screenshot(path=str(shots / f"{path}_{n}.png"))
            ctx.close()
            row = {"n": n, "page": heading, "first_visit_s": first, "warm_s": statistics.median(warm),
                   "warm_max_s": max(warm)}
            out.append(row)
            print(f"  {heading:24} first visit {first:5.2f} s   warm {row['warm_s']:5.2f} s (max {max(warm):.2f})",
                  flush=True)
        if shots is not None and n == max_size:
            decide_shots(browser, url, shots, n)
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def baseline(browser, repeats: int) -> dict:
    """Streamlit + Plotly alone (one 100-point line chart): the floor under the machine's current load."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "baseline.py"
        app.write_text(BASELINE_APP)
        proc, url = serve(Path(tmp) / "unused.db", app)
        try:
            warmup = browser.new_context()
            visit(warmup.new_page(), url, "Baseline", LINE)
            warmup.close()
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = ctx.new_page()
            first = visit(page, url, "Baseline", LINE)
            warm = [visit(page, url, "Baseline", LINE, reload=True) for _ in range(repeats)]
            ctx.close()
        finally:
            proc.terminate()
            proc.wait(10)
    row = {"n": 0, "page": "Streamlit + Plotly alone", "first_visit_s": first, "warm_s": statistics.median(warm),
           "warm_max_s": max(warm)}
    print(f"  {row['page']:24} first visit {first:5.2f} s   warm {row['warm_s']:5.2f} s (max {max(warm):.2f})",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 50_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shots", default=str(REPO / "results" / "screenshots" / "scale"))
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    shots = Path(args.shots) if args.shots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                          "--disable-background-networking", "--disable-component-update"])
        base = baseline(browser, args.repeats)
        for n in args.sizes:
            rows += bench_size(browser, n, args.repeats, shots, max(args.sizes))
        base_after = baseline(browser, args.repeats)  # load on a shared machine drifts: measure it twice
        browser.close()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    print("\n| page | " + " | ".join(f"{n:,}: first visit s | {n:,}: warm s" for n in args.sizes) + " |")
    print("| --- | " + " | ".join("--- | ---" for _ in args.sizes) + " |")
    for _, heading, _ in PAGES:
        cells = []
        for n in args.sizes:
            r = next(r for r in rows if r["n"] == n and r["page"] == heading)
            cells.append(f"{r['first_visit_s']:.2f}{'' if r['first_visit_s'] < TARGET_FIRST_S else ' (over)'} | "
                         f"{r['warm_s']:.2f}{'' if r['warm_s'] < TARGET_WARM_S else ' (over)'}")
        print(f"| {heading} | " + " | ".join(cells) + " |")
    print("| Streamlit + Plotly alone (before / after) | " + " | ".join(
        f"{base['first_visit_s']:.2f} / {base_after['first_visit_s']:.2f} | {base['warm_s']:.2f} / {base_after['warm_s']:.2f}"
        for _ in args.sizes) + " |")
    last = [r for r in rows if r["n"] == max(args.sizes)]
    print(f"\ntargets at {max(args.sizes):,}: warm under {TARGET_WARM_S:.0f} s on "
          f"{sum(r['warm_s'] < TARGET_WARM_S for r in last)} of {len(last)} pages, first visit under "
          f"{TARGET_FIRST_S:.0f} s on {sum(r['first_visit_s'] < TARGET_FIRST_S for r in last)} of {len(last)} "
          f"(Streamlit + Plotly alone: first visit {base['first_visit_s']:.2f} s, warm {base['warm_s']:.2f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows + [base, base_after], indent=2))


if __name__ == "__main__":
    main()
