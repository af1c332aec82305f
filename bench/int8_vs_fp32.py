"""Dynamic int8 (the decoder's Linear layers) against fp32, on the same architectures, in one run.

    .venv/bin/python bench/int8_vs_fp32.py [--n 12] [--seed 0] [--workload forward|generate]

Measures ``--n`` architectures of the default GPT-2 space (seeded) with ``quant="none"`` and
``quant="int8"`` (same workload, 1 thread) and prints the latency and peak-memory ratios fp32 / int8
(median and range) and the Kendall tau between the two latency rankings: does searching in fp32
pick what is fastest in int8? Accuracy is not measured (see lts.models.quantize). Figures only.
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
    ap.add_argument("--workload", choices=["forward", "generate"], default="forward")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cfgs = [load_space("gpt2").sample(rng) for _ in range(args.n)]
    device = detect_device("bench")
    got = {}
    for quant in ("none", "int8"):
        with Measurer(device, Protocol(workload=args.workload, quant=quant)) as m:
            got[quant] = [m.measure(c) for c in cfgs]
    ok = [i for i in range(len(cfgs)) if not got["none"][i].infeasible and not got["int8"][i].infeasible]
    lat = [got["none"][i].latency_ms / got["int8"][i].latency_ms for i in ok]
    mem = [got["none"][i].peak_memory_mb / got["int8"][i].peak_memory_mb for i in ok]
    tau = kendalltau([got["none"][i].latency_ms for i in ok], [got["int8"][i].latency_ms for i in ok]).statistic
    print(f"{len(ok)} architectures of the default GPT-2 space (seed {args.seed}), workload {args.workload}, 1 thread")
    print(f"latency fp32 / int8: median {statistics.median(lat):.2f}x (range {min(lat):.2f}-{max(lat):.2f}x)")
    print(f"peak memory fp32 / int8: median {statistics.median(mem):.2f}x (range {min(mem):.2f}-{max(mem):.2f}x)")
    print(f"Kendall tau, fp32 vs int8 latency ranking: {tau:.3f}")
    for quant in ("none", "int8"):
        print(f"s per measurement, quant={quant}: {statistics.fmean(r.seconds for r in got[quant]):.2f}")


if __name__ == "__main__":
    main()
