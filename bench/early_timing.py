"""Does timing while the memory worker still runs bias latency? A paired check, in one run.

    .venv/bin/python bench/early_timing.py [--n 20] [--rounds 2] [--seed 0]

The same ``Measurer`` measures each architecture of the default GPT-2 space (seeded) with
``time_early`` on (timing starts as soon as the latency worker is warm, beside the memory worker's
forward) and off (timing waits for the memory measurement), back to back in alternating order, so
that the machine's drift falls on both alike. Prints the median and mean paired latency ratio
early / late with its spread, and per mode the seconds per measurement, the median CV of the
timed forwards and the mean number of them. Figures only.
"""

from __future__ import annotations

import argparse
import random
import statistics

from lts.cost import Measurer, Protocol, detect_device
from lts.space.ranges import load_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    space = load_space("gpt2")
    cfgs = [space.sample(rng) for _ in range(args.n)]
    device = detect_device("bench")
    ratios: list[float] = []
    secs: dict[bool, list[float]] = {True: [], False: []}
    cvs: dict[bool, list[float]] = {True: [], False: []}
    reps: dict[bool, list[int]] = {True: [], False: []}
    with Measurer(device, Protocol(threads=device.threads)) as m:
        for r in range(args.rounds):
            for i, cfg in enumerate(cfgs):
                got = {}
                for early in ((True, False) if (i + r) % 2 == 0 else (False, True)):
                    m.time_early = early
                    got[early] = res = m.measure(cfg)
                    secs[early].append(res.seconds)
                    if res.latency_cv is not None:
                        cvs[early].append(res.latency_cv)
                        reps[early].append(res.repeats)
                if got[True].latency_ms and got[False].latency_ms:
                    ratios.append(got[True].latency_ms / got[False].latency_ms)
    q = statistics.quantiles(ratios, n=4)
    print(f"{len(ratios)} pairs ({args.n} architectures x {args.rounds} rounds), protocol {Protocol().key}")
    print(f"latency early / late: median {statistics.median(ratios):.4f}, mean {statistics.fmean(ratios):.4f}, "
          f"quartiles {q[0]:.3f}..{q[2]:.3f}")
    for early in (True, False):
        print(f"s per measurement, time_early={early}: mean {statistics.fmean(secs[early]):.3f}, "
              f"median {statistics.median(secs[early]):.3f}; median CV of repeats "
              f"{100 * statistics.median(cvs[early]):.2f}%, mean repeats {statistics.fmean(reps[early]):.1f}")


if __name__ == "__main__":
    main()
