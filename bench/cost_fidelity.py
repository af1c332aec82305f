"""Fidelity and cost of on-device measurement: the same architectures measured twice in one run.

    .venv/bin/python bench/cost_fidelity.py [--n 20] [--seed 0] [--threads 1] [--space gpt2]

Samples ``--n`` architectures from the default GPT-2 space (seeded), measures each one, then
measures them all again in a shuffled order (so that slow drift of the machine does not line up
with the order of the list), and prints:

* Kendall tau between the two latency rankings (target >= 0.9; Archai: 0.905),
* the median CV of the timed repeats over all measurements (target <= 3%; Archai: 4.0%),
* seconds per measurement, latency and peak memory included (budget <= 2.4 s per architecture;
  Archai: 4.3 s per latency measurement), and the one-time worker start-up,
* how well peak memory reproduces (largest relative difference between the two passes),
* tau and CV by each clock (thread CPU time, elapsed time), and where the seconds go.

Figures only, no pass/fail: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

from scipy.stats import kendalltau

from lts.cost import Measurer, Protocol, detect_device
from lts.space.ranges import load_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--space", default="gpt2")
    ap.add_argument("--threads", type=int, default=None, help="default: the protocol default")
    ap.add_argument("--rel-ci", type=float, default=None)
    ap.add_argument("--min-repeats", type=int, default=None)
    ap.add_argument("--max-seconds", type=float, default=None)
    ap.add_argument("--clock", choices=["wall", "cpu"], default=None)
    ap.add_argument("--no-overlap", action="store_true", help="memory and latency workers strictly in turn")
    ap.add_argument("--late-timing", action="store_true",
                    help="time only once the memory measurement is done (before 2026-12-03: 0.93 s per measurement)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every measurement")
    args = ap.parse_args()

    space = load_space(args.space)
    rng = random.Random(args.seed)
    cfgs = [space.sample(rng) for _ in range(args.n)]
    device = detect_device("bench", threads=args.threads)
    over = {k: v for k, v in (("rel_ci", args.rel_ci), ("min_repeats", args.min_repeats),
                               ("max_seconds", args.max_seconds), ("clock", args.clock)) if v is not None}
    protocol = Protocol(threads=device.threads, **over)

    load_before = os.getloadavg()[0]
    runs: list[dict[str, object]] = [{}, {}]
    extra: list[dict[str, dict]] = [{}, {}]
    t_all = time.perf_counter()
    with Measurer(device, protocol, overlap=not args.no_overlap, time_early=not args.late_timing) as m:
        for p in (0, 1):
            order = list(range(len(cfgs)))
            if p == 1:
                random.Random(args.seed + 1).shuffle(order)
            for i in order:
                r = m.measure(cfgs[i])
                runs[p][cfgs[i].arch_id] = r
                extra[p][cfgs[i].arch_id] = m.last_reply
                if args.verbose:
                    print(f"pass {p + 1} #{i:2d} {r.arch_id} lat={r.latency_ms or 0:8.2f} ms "
                          f"cv={100 * (r.latency_cv or 0):5.2f}% n={r.repeats:2d} "
                          f"peak={r.peak_memory_mb or 0:7.1f} MB {r.seconds:5.2f} s {r.infeasible or ''}")
        startup = m.startup_seconds
    wall = time.perf_counter() - t_all
    load_after = os.getloadavg()[0]

    ids = [c.arch_id for c in cfgs]
    a = [runs[0][i] for i in ids]
    b = [runs[1][i] for i in ids]
    bad = [r for r in a + b if r.infeasible]
    ok = [i for i, (x, y) in enumerate(zip(a, b)) if not x.infeasible and not y.infeasible]
    tau = kendalltau([a[i].latency_ms for i in ok], [b[i].latency_ms for i in ok]).statistic
    cvs = [r.latency_cv for r in a + b if r.latency_cv is not None]
    secs = [r.seconds for r in a + b]
    reps = [r.repeats for r in a + b if not r.infeasible]
    lat_diff = [abs(a[i].latency_ms - b[i].latency_ms) / a[i].latency_ms for i in ok]
    mem_diff = [abs(a[i].peak_memory_mb - b[i].peak_memory_mb) / a[i].peak_memory_mb for i in ok]
    mem_tau = kendalltau([a[i].peak_memory_mb for i in ok], [b[i].peak_memory_mb for i in ok]).statistic
    lats = [a[i].latency_ms for i in ok]
    xa = [extra[0][i] for i in ids]
    xb = [extra[1][i] for i in ids]
    clocks = {}
    for clock in ("wall", "cpu"):
        t = kendalltau([xa[i][f"{clock}_ms"] for i in ok], [xb[i][f"{clock}_ms"] for i in ok]).statistic
        c = statistics.median([x[f"{clock}_cv"] for x in xa + xb if f"{clock}_cv" in x])
        clocks[clock] = (t, c)
    mean_s = statistics.fmean(secs)

    print(f"device {device.device_id}: {device.cpu_model}, {device.cores} cores, {device.threads} thread(s), "
          f"torch {device.torch_version}; protocol {protocol.key} (rel_ci {protocol.rel_ci:.0%}, "
          f"min {protocol.min_repeats} / max {protocol.max_repeats} repeats, {protocol.max_seconds:g} s cap)")
    print(f"load average (1 min) {load_before:.2f} before, {load_after:.2f} after, on {os.cpu_count()} cores "
          "(other processes share this machine)")
    print(f"{args.n} architectures of '{space.name}' (seed {args.seed}), latency "
          f"{min(lats):.1f}..{max(lats):.1f} ms, measured twice; infeasible: {len(bad)}")
    print()
    print(f"{'figure':44} {'lts':>10} {'Archai':>8} {'target':>8}")
    print(f"{'Kendall tau, latency ranking run 1 vs run 2':44} {tau:10.3f} {0.905:8.3f} {'>= 0.9':>8}")
    print(f"{'median CV of repeats':44} {100 * statistics.median(cvs):9.2f}% {'4.0%':>8} {'<= 3%':>8}")
    print(f"{'s per measurement (latency + peak memory)':44} {mean_s:10.2f} {4.3:8.1f} {'<= 2.4':>8}")
    print(f"{'  median / max s per measurement':44} {statistics.median(secs):5.2f} / {max(secs):4.2f}")
    print(f"{'  speed-up vs Archai (latency only there)':44} {4.3 / mean_s:9.1f}x")
    print(f"{'repeats per measurement, median (min-max)':44} {statistics.median(reps):6.0f} ({min(reps)}-{max(reps)})")
    print(f"{'median |run1-run2| latency difference':44} {100 * statistics.median(lat_diff):9.2f}%")
    print(f"{'peak memory: Kendall tau run 1 vs run 2':44} {mem_tau:10.3f}")
    print(f"{'peak memory: largest run1-run2 difference':44} {100 * max(mem_diff):9.2f}%")
    for clock, (t, c) in clocks.items():
        print(f"{'  ' + clock + ' clock: tau / median CV':44} {t:10.3f} {100 * c:7.2f}%")
    parts = ["memory_build_s", "memory_s", "latency_build_s", "warmup_s", "timing_s"]
    means = {k: statistics.fmean(x.get(k, 0.0) for x in xa + xb) for k in parts}
    print(f"{'  mean s: ' + ', '.join(k[:-2] for k in parts):44} " + " ".join(f"{v:.2f}" for v in means.values()))
    print(f"{'worker start-up (once per Measurer), s':44} {statistics.fmean(startup):10.2f}")
    print(f"{'whole run, s':44} {wall:10.1f}")


if __name__ == "__main__":
    main()
