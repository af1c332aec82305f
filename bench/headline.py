"""LTS's headline on this machine: the 16-layer GPT-2 baseline against the fastest architecture a search
finds with at least its decoder parameters, per measurement protocol, in one run.

    .venv/bin/python bench/headline.py [--budget 16] [--seed 0] [--spaces gpt2,wide] [--rounds 2]

The baseline is LTS's (16 layers, d_model 512, 8 heads, d_inner 2048, d_embed 512, div_val 1) on
the space's vocabulary. For each space and protocol (torch forward at 1 and 2 threads, ONNX Runtime
forward at 1 thread, generate 64 + 32 tokens at 1 thread) a search with ``--min-params`` = the baseline's decoder parameters and
objectives proxy, latency, memory runs ``--budget`` evaluations; its fastest feasible member is the
winner. Baseline and winner are then measured again side by side (``--rounds`` times each,
alternating) and the latency and peak-memory ratios baseline / winner printed.

Spaces: ``gpt2`` is lts's default (the ranges of LTS's published random sets: d_model <= 512,
d_inner <= 2048, so the baseline is the space's largest model and only heads, d_embed and div_val
are free at its size); ``wide`` widens d_model to 1024 and d_inner to 4096 (the paper's GPT-2
space is of that kind), where shallower, wider models reach the same parameter count.
Figures only: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from lts.cost import Measurer, Protocol, detect_device
from lts.objectives import Constraints
from lts.search.session import new_run, open_runner
from lts.space.config import GPT2Config, config_from_json
from lts.space.counts import decoder_params
from lts.space.ranges import SearchSpace, load_space
from lts.store.db import Store

WIDE = {"family": "gpt2", "name": "wide", "n_layer": {"min": 2, "max": 16}, "d_model": [256, 512, 768, 1024],
        "d_embed": [128, 256, 512], "div_val": [1, 2, 4], "n_head": [2, 4, 8], "d_inner": {"min": 512, "max": 4096},
        "vocab_size": 50264, "cutoffs": [19997, 39997], "tgt_len": 192}
PROTOCOLS = {"forward-t1": dict(threads=1), "forward-t2": dict(threads=2),
             "forward-ort": dict(threads=1, backend="onnxruntime"),
             "generate-t1": dict(threads=1, workload="generate", prompt_len=64, new_tokens=32)}


def baseline(space: SearchSpace) -> GPT2Config:
    return GPT2Config(n_layer=16, d_model=512, d_embed=512, div_val=1, n_head=8, d_inner=2048, **space.fixed)


def search(store: Store, space: SearchSpace, base: GPT2Config, proto: dict, budget: int, seed: int) -> GPT2Config:
    run_id = new_run(store, space, "headline", budget=budget, seed=seed, population=max(4, budget // 2),
                     generation=max(2, budget // 4), objectives="proxy,latency,memory",
                     constraints=Constraints(min_params=decoder_params(base)), **proto)
    with contextlib.ExitStack() as stack:
        open_runner(store, run_id, stack).run_to_end()
    rows = [r for r in store.run_rows(run_id) if r["feasible"] and r["decoder_params"] >= decoder_params(base)]
    if not rows:
        raise SystemExit(f"{space.name}: the search found no feasible architecture with the baseline's parameters")
    return config_from_json(min(rows, key=lambda r: r["latency_ms"])["config_json"])


def head_to_head(base: GPT2Config, win: GPT2Config, proto: Protocol, rounds: int) -> dict[str, float]:
    device = detect_device("headline", threads=proto.threads)
    got: dict[str, list] = {"base": [], "win": []}
    with Measurer(device, proto) as m:
        for r in range(rounds):
            for name, cfg in ((("base", base), ("win", win)) if r % 2 == 0 else (("win", win), ("base", base))):
                got[name].append(m.measure(cfg))
    med = {k: {f: statistics.median(getattr(x, f) for x in v) for f in ("latency_ms", "peak_memory_mb")}
           for k, v in got.items()}
    return {"base_ms": med["base"]["latency_ms"], "win_ms": med["win"]["latency_ms"],
            "base_mb": med["base"]["peak_memory_mb"], "win_mb": med["win"]["peak_memory_mb"]}


def describe(cfg: GPT2Config) -> str:
    heads = sorted(set(cfg.n_head))
    inner = sorted(set(cfg.d_inner))
    return (f"{cfg.n_layer} layers, d_model {cfg.d_model}, d_embed {cfg.d_embed}, div_val {cfg.div_val}, "
            f"heads {heads}, d_inner {inner[0]}-{inner[-1]}, {decoder_params(cfg) / 1e6:.1f}M decoder params")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--spaces", default="gpt2,wide")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    store = Store(Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="lts-headline-")) / "headline.db")
    rows = []
    t0 = time.perf_counter()
    for name in args.spaces.split(","):
        space = SearchSpace.from_dict(WIDE) if name == "wide" else load_space(name)
        base = baseline(space)
        print(f"{space.name}: baseline {describe(base)}", flush=True)
        for pname in args.protocols.split(","):
            proto = PROTOCOLS[pname]
            win = search(store, space, base, proto, args.budget, args.seed)
            figures = head_to_head(base, win, Protocol(**proto), args.rounds)
            rows.append((space.name, pname, win, figures))
            print(f"  {pname}: winner {describe(win)}; latency {figures['base_ms']:.1f} / {figures['win_ms']:.1f} ms "
                  f"= {figures['base_ms'] / figures['win_ms']:.2f}x, peak memory {figures['base_mb']:.0f} / "
                  f"{figures['win_mb']:.0f} MB = {figures['base_mb'] / figures['win_mb']:.2f}x "
                  f"({time.perf_counter() - t0:.0f} s so far)", flush=True)
    print()
    print(f"{'space':6} {'protocol':12} {'latency base/win':>17} {'memory base/win':>16}")
    for space_name, pname, _, f in rows:
        print(f"{space_name:6} {pname:12} {f['base_ms'] / f['win_ms']:16.2f}x {f['base_mb'] / f['win_mb']:15.2f}x")
    print(f"whole run {time.perf_counter() - t0:.0f} s; paper (its devices, LM1B-trained): up to 1.5x latency, 1.2x memory")


if __name__ == "__main__":
    main()
