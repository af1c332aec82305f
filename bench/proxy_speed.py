"""Configs per second for the analytic proxy, against building the model and counting it.

    .venv/bin/python bench/proxy_speed.py [--n 20000] [--build-n 30]

Prints figures and ratios (no pass/fail: these machines are shared and noisy). Target: >= 10,000
configs/s analytic. "Build" is the slow path other tools take: build the model with weights and
count its parameters (Archai's proxy path: 0.44 s per config on these machines).
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from lts.models import build_model, count_parameters
from lts.space.counts import decoder_params, proxy_values
from lts.space.ranges import SearchSpace


def rate(fn, items) -> float:
    t0 = time.perf_counter()
    for it in items:
        fn(it)
    return len(items) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--build-n", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"{'family':8} {'decoder_params/s':>17} {'all 3 proxies/s':>16} {'meta build/s':>13} {'full build/s':>13} {'ratio':>9}")
    for family in ("gpt2", "transxl"):
        space = SearchSpace.default(family)
        rng = random.Random(0)
        cfgs = [space.sample(rng) for _ in range(args.n)]
        analytic = rate(decoder_params, cfgs)
        all_proxies = rate(proxy_values, cfgs)
        meta = rate(lambda c: count_parameters(build_model(c, device="meta")), cfgs[: args.build_n * 5])
        full = rate(lambda c: count_parameters(build_model(c)), cfgs[: args.build_n])
        print(f"{family:8} {analytic:17,.0f} {all_proxies:16,.0f} {meta:13,.1f} {full:13,.2f} {analytic / full:8,.0f}x")
    print("ratio = analytic decoder_params rate / (build with weights + count) rate")


if __name__ == "__main__":
    main()
