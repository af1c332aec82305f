"""Wall time of a GPT-2 search with real on-device latency and memory, and evolution vs random.

    .venv/bin/python bench/search_speed.py [--budget 300] [--db /tmp/bench.db] [--skip-random]

Runs the LTS search (evolution) on the default GPT-2 space, measuring every candidate on this
machine, then a random search with the same budget and device; prints the wall time, seconds per
evaluated architecture, and the hypervolume of both under one shared reference (ratio printed).
Targets: >= 300 measured candidates in under 15 minutes on 2 cores (LTS: under 3 hours on a
laptop), evolution ahead of random. Archai's per-architecture cost is measured against ours in
one run by ``bench/archai_peer.py`` (a constant here would go stale).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from lts.search.runner import common_scales, run_hypervolume
from lts.search.session import new_run, open_runner
from lts.space.ranges import SearchSpace
from lts.store.db import Store

OBJECTIVES = ("proxy", "latency", "memory")


def one(store: Store, strategy: str, budget: int, seed: int) -> tuple[str, float]:
    run_id = new_run(store, "gpt2", "bench-cpu", budget=budget, strategy=strategy, seed=seed,
                     objectives=",".join(OBJECTIVES))
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        runner = open_runner(store, run_id, stack)

        def progress(p):
            if p.n_evaluated % 25 == 0:
                print(f"  {strategy}: {p.n_evaluated}/{budget} in {time.perf_counter() - t0:.0f} s,"
                      f" frontier {p.frontier_size}", flush=True)

        runner.on_progress = progress
        runner.run_to_end()
    return run_id, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--db", default=None)
    ap.add_argument("--skip-random", action="store_true")
    args = ap.parse_args()
    db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="lts-bench-")) / "bench.db"
    store = Store(db)
    evo, evo_s = one(store, "evolution", args.budget, args.seed)
    rows = {"evolution": store.run_rows(evo)}
    measured = store.query("SELECT COUNT(*) AS n, SUM(seconds) AS s FROM measurements")[0]
    print(f"evolution: {args.budget} architectures in {evo_s:.0f} s = {evo_s / args.budget:.2f} s per evaluated "
          f"architecture ({measured['n']} measured, {measured['s'] / max(measured['n'], 1):.2f} s measuring each); "
          f"front {store.run(evo)['frontier_size']}")
    if not args.skip_random:
        rnd, rnd_s = one(store, "random", args.budget, args.seed)
        rows["random"] = store.run_rows(rnd)
        print(f"random:    {args.budget} architectures in {rnd_s:.0f} s = {rnd_s / args.budget:.2f} s each")
        scales = common_scales(list(rows.values()), OBJECTIVES, SearchSpace.default("gpt2"))
        hv = {k: run_hypervolume(v, OBJECTIVES, scales) for k, v in rows.items()}
        for k in range(50, args.budget + 1, 50):
            part = {name: run_hypervolume(v[:k], OBJECTIVES, scales) for name, v in rows.items()}
            print(f"  after {k:4d}: hypervolume evolution {part['evolution']:.4f}  random {part['random']:.4f}"
                  f"  ratio {part['evolution'] / max(part['random'], 1e-12):.3f}")
        print(f"hypervolume at {args.budget} evaluations: evolution {hv['evolution']:.4f}, random {hv['random']:.4f}, "
              f"ratio {hv['evolution'] / max(hv['random'], 1e-12):.3f}  (reference {scales})")
    print(f"database: {db}")


if __name__ == "__main__":
    main()
