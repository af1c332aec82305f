"""Page render time of the dashboard with 50,000 architectures in the database.

    .venv/bin/python bench/dashboard_speed.py [--n 50000] [--db /tmp/lts-50k.db]

Seeds a database with two devices and a run of ``n`` measured architectures per device (latency
and memory from a deterministic cost model: this benchmark is about the dashboard, not the
device), then renders every page with Streamlit's AppTest and prints the seconds per page
(a cold first render, then the median of warm re-renders). Target: under 2 s per page.
optuna-dashboard, for comparison: 11.2 s to draw a 2,000-trial Pareto front on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path


from lts.space.counts import forward_flops, total_params
from lts.objectives import objective_matrix
from lts.pareto import pareto_mask
from lts.space.ranges import SearchSpace
from lts.store.db import Store

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGES = ["views/search.py", "views/frontier.py", "views/compare.py", "views/constraints.py", "views/quality.py",
         "views/measurements.py", "views/architecture.py", "views/validation.py", "views/data.py"]


def seed(path: Path, n: int) -> None:
    store = Store(path)
    if store.db["architectures"].count >= n:
        return
    space = SearchSpace.default("gpt2")
    rng = random.Random(0)
    cfgs, seen = [], set()
    while len(cfgs) < n:
        c = space.sample(rng)
        if c.arch_id not in seen:
            seen.add(c.arch_id)
            cfgs.append(c)
    now = time.time()
    for k, (dev, speed) in enumerate((("bench-a", 1.0), ("bench-b", 2.7))):
        device = {"device_id": f"{k:016x}", "name": dev, "kind": "cpu", "cpu_model": "synthetic", "cores": 2,
                  "ram_gb": 24, "gpu": None, "torch_version": "-", "threads": 1}
        rows = [{"arch_id": c.arch_id, "decoder_params": 0, "latency_ms": forward_flops(c) / 4e8 * speed,
                 "peak_memory_mb": 4 * total_params(c) / 2**20} for c in cfgs]
        from lts.space.counts import decoder_params

        for r, c in zip(rows, cfgs):
            r["decoder_params"] = decoder_params(c)
        front = pareto_mask(objective_matrix(rows, ("proxy", "latency", "memory")))
        run_id = f"bench{k}"
        with store.write() as conn:
            store.upsert_device(conn, device)
            for c in cfgs if k == 0 else []:
                store.upsert_architecture(conn, c)
            conn.execute(
                "INSERT INTO runs (run_id, family, space_json, strategy, objectives_json, constraints_json, seed,"
                " budget, device_id, protocol, status, n_evaluated, frontier_size, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (run_id, "gpt2", json.dumps(space.to_dict()), "evolution", '["proxy","latency","memory"]', "{}", 0,
                 n, device["device_id"], "bench", "finished", n, int(front.sum()), now, now))
            conn.executemany(
                "INSERT INTO measurements (arch_id, device_id, protocol, latency_ms, latency_cv, repeats,"
                " peak_memory_mb, infeasible, seconds, measured_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(r["arch_id"], device["device_id"], "bench", r["latency_ms"], 0.01, 5, r["peak_memory_mb"], None, 1.0, now)
                 for r in rows])
            conn.executemany(
                "INSERT INTO run_members (run_id, arch_id, eval_index, generation, feasible, on_frontier)"
                " VALUES (?,?,?,?,?,?)",
                [(run_id, r["arch_id"], i, i // 10, 1, int(f)) for i, (r, f) in enumerate(zip(rows, front))])
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--db", default="/tmp/lts-bench-dashboard.db")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    seed(Path(args.db), args.n)
    print(f"database with {args.n:,} architectures x 2 devices ready in {time.perf_counter() - t0:.1f} s")
    os.environ["LTS_DB"] = args.db
    from streamlit.testing.v1 import AppTest

    print(f"{'page':24} {'cold s':>8} {'warm median s':>14}")
    for name in PAGES:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        t = time.perf_counter()
        at.switch_page(name)
        at.run()
        cold = time.perf_counter() - t
        assert not at.exception, [e.value for e in at.exception]
        warm = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - t)
        print(f"{name:24} {cold:8.2f} {statistics.median(warm):14.2f}")


if __name__ == "__main__":
    main()
