"""The CUDA measurement path, checked on a machine with a GPU in well under 5 minutes.

    bash bench/cuda_check.sh            # or: python bench/cuda_check.py [--n 5]

Measures ``--n`` architectures of the default GPT-2 space (seeded) with ``kind="cuda"``, forward and
generate workloads, and checks what can be checked without a reference device:

* the allocator's weights figure equals the fp32 weights' size (4 bytes per parameter, within 1%
  plus the allocator's 2 MiB rounding per tensor block),
* peak memory is at least the weights, and a known tensor (a 256 MiB buffer allocated inside the
  timed region of a probe) shows up in the allocator's peak,
* synchronised timing: the median CV of the timed forwards (printed; a healthy GPU gives < 5%),
* decode per token < prefill of 64 tokens.
Prints one line per check and exits 1 if one fails, 2 if torch sees no CUDA device.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("cuda_check: torch sees no CUDA device (torch", torch.__version__, ")")
        return 2
    from lts.cost import Measurer, Protocol, detect_device
    from lts.space.counts import total_params
    from lts.space.ranges import load_space

    space = load_space("gpt2")
    rng = random.Random(args.seed)
    cfgs = [space.sample(rng) for _ in range(args.n)]
    device = detect_device("cuda-check", kind="cuda")
    failed = 0

    def check(ok: bool, text: str) -> None:
        nonlocal failed
        failed += not ok
        print(("ok   " if ok else "FAIL ") + text, flush=True)

    print(f"device: {device.gpu} ({device.device_id}), torch {torch.__version__}")
    with Measurer(device, Protocol(kind="cuda")) as m:
        rows = [(c, m.measure(c)) for c in cfgs]
    for c, r in rows:
        if r.infeasible:
            check(False, f"{c.arch_id}: {r.infeasible}")
            continue
        want = 4 * total_params(c) / 2**20
        check(abs(r.weights_memory_mb - want) <= 0.01 * want + 2.0,
              f"{c.arch_id}: allocator weights {r.weights_memory_mb:.1f} MiB vs 4 B/param {want:.1f} MiB")
        check(r.peak_memory_mb >= r.weights_memory_mb, f"{c.arch_id}: peak {r.peak_memory_mb:.1f} >= weights")
    cvs = [r.latency_cv for _, r in rows if r.latency_cv is not None]
    if cvs:
        print(f"info synchronised timing: median CV {100 * statistics.median(cvs):.2f}% over {len(cvs)} architectures, "
              f"latency {min(r.latency_ms for _, r in rows if r.latency_ms):.2f}.."
              f"{max(r.latency_ms for _, r in rows if r.latency_ms):.2f} ms")
    # a known tensor: 256 MiB allocated and freed between reset and read of the peak
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    buf = torch.empty(64 * 2**20, dtype=torch.float32, device="cuda")
    del buf
    torch.cuda.synchronize()
    seen = (torch.cuda.max_memory_allocated() - before) / 2**20
    check(abs(seen - 256) < 1, f"a 256 MiB tensor reads as {seen:.1f} MiB in the allocator's peak")
    with Measurer(device, Protocol(kind="cuda", workload="generate")) as m:
        for c in cfgs[:2]:
            r = m.measure(c)
            check(r.infeasible is None and r.decode_ms_per_token < r.prefill_ms,
                  f"{c.arch_id}: generate prefill {r.prefill_ms} ms, decode {r.decode_ms_per_token} ms/token "
                  f"{r.infeasible or ''}")
    print("cuda_check:", "all checks passed" if not failed else f"{failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
