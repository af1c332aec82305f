"""ONNX Runtime against torch, on the same architectures, in one run.

    .venv/bin/python bench/ort_vs_torch.py [--n 12] [--seed 0] [--space gpt2|transxl]

Measures ``--n`` architectures of a default space (seeded) with ``backend="torch"`` and
``backend="onnxruntime"`` (forward, 1 thread) and prints seconds per measurement, the latency and
peak-memory ratios torch / ORT (median and range), the weights' resident memory both ways and the
Kendall tau between the two latency and memory rankings: does a search timed in torch pick what is
fastest in ONNX Runtime? Figures only: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import random
import statistics

from scipy.stats import kendalltau

from lts.cost import Measurer, Protocol, detect_device
from lts.space.ranges import load_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--space", default="gpt2")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cfgs = [load_space(args.space).sample(rng) for _ in range(args.n)]
    device = detect_device("bench")
    got = {}
    for backend in ("torch", "onnxruntime"):
        with Measurer(device, Protocol(backend=backend)) as m:
            got[backend] = [m.measure(c) for c in cfgs]
    t, o = got["torch"], got["onnxruntime"]
    ok = [i for i in range(len(cfgs)) if not t[i].infeasible and not o[i].infeasible]

    def spread(xs: list[float]) -> str:
        return f"median {statistics.median(xs):.2f}x (range {min(xs):.2f}-{max(xs):.2f})"

    print(f"{len(ok)} of {len(cfgs)} architectures of the default {args.space} space (seed {args.seed}), forward, 1 thread")
    for name, rows in got.items():
        print(f"{name:>12}: {statistics.median(r.seconds for r in rows):.2f} s per measurement, weights "
              f"{statistics.median(rows[i].weights_memory_mb for i in ok):.0f} MB median")
    print("latency torch / ORT:", spread([t[i].latency_ms / o[i].latency_ms for i in ok]))
    print("peak memory torch / ORT:", spread([t[i].peak_memory_mb / o[i].peak_memory_mb for i in ok]))
    for f in ("latency_ms", "peak_memory_mb"):
        tau = kendalltau([getattr(t[i], f) for i in ok], [getattr(o[i], f) for i in ok]).statistic
        print(f"Kendall tau torch vs ORT, {f}: {tau:.3f}")
    for i, c in enumerate(cfgs):
        if t[i].infeasible or o[i].infeasible:
            print(f"  {c.arch_id}: torch {t[i].infeasible or 'ok'}; ORT {o[i].infeasible or 'ok'}")


if __name__ == "__main__":
    main()
