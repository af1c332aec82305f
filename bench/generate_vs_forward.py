"""Generation cost against forward cost, on the same architectures and device, in one run.

    .venv/bin/python bench/generate_vs_forward.py [--n 12] [--seed 0] [--prompt-len 64] [--new-tokens 32]

Samples ``--n`` architectures of the default GPT-2 space (seeded), measures each with the forward
protocol (one forward over tgt_len tokens, all positions' log-probs) and the generate protocol
(prefill of the prompt, then one token at a time with the KV cache), and prints per architecture
the forward latency, prefill, decode per token (median, p90) and tokens/s, then the Kendall tau
between the forward ranking and each generation figure, and the seconds per measurement of each
protocol. Figures only: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import random
import statistics

from scipy.stats import kendalltau

from lts.cost import Measurer, Protocol, detect_device
from lts.space.counts import decoder_params
from lts.space.ranges import load_space


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    space = load_space("gpt2")
    cfgs = [space.sample(rng) for _ in range(args.n)]
    device = detect_device("bench")
    forward = Protocol(threads=device.threads)
    generate = Protocol(threads=device.threads, workload="generate", prompt_len=args.prompt_len,
                        new_tokens=args.new_tokens)
    results = {}
    for proto in (forward, generate):
        with Measurer(device, proto) as m:
            results[proto.key] = [m.measure(c) for c in cfgs]
    fw, gen = results[forward.key], results[generate.key]
    ok = [i for i in range(len(cfgs)) if not fw[i].infeasible and not gen[i].infeasible]
    print(f"{len(cfgs)} architectures of the default GPT-2 space (seed {args.seed}); {forward.key} vs {generate.key}")
    print(f"{'arch_id':18} {'decoder':>8} {'forward':>9} {'prefill':>9} {'decode':>8} {'p90':>8} {'tok/s':>7}")
    for i in ok:
        f, g = fw[i], gen[i]
        print(f"{cfgs[i].arch_id:18} {decoder_params(cfgs[i]) / 1e6:7.1f}M {f.latency_ms:8.1f}ms {g.prefill_ms:8.1f}ms "
              f"{g.decode_ms_per_token:6.2f}ms {g.decode_p90_ms:6.2f}ms {g.tokens_per_s:7.1f}")
    lat = [fw[i].latency_ms for i in ok]
    for name in ("prefill_ms", "decode_ms_per_token", "latency_ms"):
        tau = kendalltau(lat, [getattr(gen[i], name) for i in ok]).statistic
        print(f"Kendall tau, forward latency vs generate {name}: {tau:.3f}")
    for proto, rows in ((forward, fw), (generate, gen)):
        print(f"s per measurement, {proto.key}: {statistics.fmean(r.seconds for r in rows):.2f}")


if __name__ == "__main__":
    main()
