"""Two searches on one host: does the host lock keep their latency rankings what each gives alone?

    .venv/bin/python bench/host_lock.py [--budget 20] [--space gpt2|transxl|small|FILE] [--seed 0]

Runs ``lts search`` (random strategy, same space and seed, so both searches evaluate the same
architectures; each its own database, so nothing is reused from a cache) in three phases:

1. **alone**: search A, then search B, one after the other;
2. **together, with the host lock** (the default): A and B launched at the same moment;
3. **together, without it** (``LTS_HOST_LOCK=off``): the contrast.

and prints, per phase, the Kendall tau of each search's latency ranking against its ranking alone,
the tau between the two concurrent searches, the median relative latency change against alone,
wall time, and (phase 2) the highest queue position a search showed while waiting. The tau between
A alone and B alone is the noise floor. Figures only, no pass/fail: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parents[1]
# `--space small`: the dashboard's demo space (1-4 layers, d_model 64/128, 4096 tokens, 64 positions):
# forwards of a few ms, where a neighbour's cache and memory traffic weigh most.
SMALL = {"family": "gpt2", "name": "small", "n_layer": {"min": 1, "max": 4}, "d_model": [64, 128],
         "d_embed": [64, 128], "div_val": [1], "n_head": [2, 4], "d_inner": {"min": 128, "max": 512, "step": 64},
         "vocab_size": 4096, "tgt_len": 64}


def launch(db: Path, args: argparse.Namespace, lock: bool) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if not lock:
        env["LTS_HOST_LOCK"] = "off"
    cmd = [sys.executable, "-m", "lts.cli", "search", "--space", args.space, "--device-name", "bench-host-lock",
           "--budget", str(args.budget), "--strategy", "random", "--seed", str(args.seed), "--db", str(db),
           "--no-progress"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def latencies(db: Path) -> dict[str, float]:
    from lts.store.db import Store

    with Store(db) as s:
        rows = s.query("SELECT arch_id, latency_ms FROM measurements WHERE latency_ms IS NOT NULL")
    return {r["arch_id"]: r["latency_ms"] for r in rows}


def max_queue_position(dbs: list[Path], procs: list[subprocess.Popen]) -> int:
    """Poll the runs' messages while the searches run; the highest "queued (position N)" seen."""
    from lts.search.session import queue_position
    from lts.store.db import Store

    seen = 0
    while any(p.poll() is None for p in procs):
        for db in dbs:
            if db.exists():
                try:
                    with Store(db) as s:
                        for run in s.runs():
                            seen = max(seen, queue_position(run) or 0)
                except Exception:  # the database is being created
                    pass
        time.sleep(0.2)
    return seen


def run_phase(name: str, dbs: list[Path], args: argparse.Namespace, together: bool, lock: bool) -> dict:
    t0 = time.perf_counter()
    position = 0
    if together:
        procs = [launch(db, args, lock) for db in dbs]
        position = max_queue_position(dbs, procs) if lock else 0
    else:
        procs = []
        for db in dbs:
            p = launch(db, args, lock)
            p.wait()
            procs.append(p)
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"{name}: a search failed: {err.strip().splitlines()[-1] if err.strip() else p.returncode}")
    return {"wall_s": time.perf_counter() - t0, "lat": [latencies(db) for db in dbs], "max_position": position}


def tau(a: dict[str, float], b: dict[str, float]) -> tuple[float, int]:
    common = sorted(set(a) & set(b))
    return float(kendalltau([a[k] for k in common], [b[k] for k in common]).statistic), len(common)


def rel_change(now: dict[str, float], alone: dict[str, float]) -> float:
    common = set(now) & set(alone)
    return statistics.median(abs(now[k] / alone[k] - 1) for k in common)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--space", default="gpt2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    load = os.getloadavg()[0]
    space_name = args.space
    with tempfile.TemporaryDirectory(prefix="lts-bench-lock-") as tmp:
        d = Path(tmp)
        if args.space == "small":
            args.space = str(d / "small.json")
            Path(args.space).write_text(json.dumps(SMALL))
        alone = run_phase("alone", [d / "alone_a.db", d / "alone_b.db"], args, together=False, lock=True)
        locked = run_phase("together, locked", [d / "lock_a.db", d / "lock_b.db"], args, together=True, lock=True)
        unlocked = run_phase("together, no lock", [d / "free_a.db", d / "free_b.db"], args, together=True, lock=False)

    floor, n = tau(*alone["lat"])
    out = {"budget": args.budget, "space": space_name, "load_1min_before": round(load, 2),
           "tau_alone_a_vs_alone_b": round(floor, 3), "n_common": n, "alone_wall_s": round(alone["wall_s"], 1)}
    for key, phase in (("locked", locked), ("unlocked", unlocked)):
        out[key] = {
            "tau_a_vs_alone": round(tau(phase["lat"][0], alone["lat"][0])[0], 3),
            "tau_b_vs_alone": round(tau(phase["lat"][1], alone["lat"][1])[0], 3),
            "tau_a_vs_b": round(tau(*phase["lat"])[0], 3),
            "median_rel_change_vs_alone": round(statistics.mean(
                rel_change(phase["lat"][i], alone["lat"][i]) for i in (0, 1)), 4),
            "wall_s": round(phase["wall_s"], 1),
        }
    out["locked"]["max_queue_position_seen"] = locked["max_position"]
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{args.budget} architectures per search ({space_name}, random, seed {args.seed}); "
          f"load before {load:.2f}")
    print(f"noise floor: Kendall tau A alone vs B alone = {out['tau_alone_a_vs_alone_b']:.3f} "
          f"({n} common architectures); both alone took {alone['wall_s']:.0f} s")
    for key, label in (("locked", "together, host lock on "), ("unlocked", "together, host lock off")):
        r = out[key]
        print(f"{label}: tau A vs A alone {r['tau_a_vs_alone']:.3f}, B vs B alone {r['tau_b_vs_alone']:.3f}, "
              f"A vs B {r['tau_a_vs_b']:.3f}; median |latency change| vs alone "
              f"{100 * r['median_rel_change_vs_alone']:.1f}%; wall {r['wall_s']:.0f} s"
              + (f"; highest queue position shown {r['max_queue_position_seen']}" if key == "locked" else ""))


if __name__ == "__main__":
    main()
