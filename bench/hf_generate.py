"""Greedy generation through transformers' ``generate()`` with and without lts's cache, per family.

    .venv/bin/python bench/hf_generate.py [--new-tokens 128] [--repeats 3] [--device cpu|cuda]

Models: the default search space's GPT-2 midpoint (8 layers of d_model 512, per-layer widths,
adaptive softmax over 50,264 tokens) and Transformer-XL's (mem_len 192, 267,735 tokens), at lts's
seeded init; batch 1, a 16-token prompt, ``--new-tokens`` new ones (GPT-2: at most tgt_len in all).
Prints tokens per second with the cache (GPT-2: the KV cache; XL: the recurrence memory) and without
(every step recomputes the sequence), their ratio, and whether the two greedy outputs are equal.
No pass/fail: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def configs():
    from lts.space.config import GPT2Config, TransXLConfig

    heads, inner = [8, 4, 8, 2, 8, 4, 8, 4], [2048, 1024, 1536, 2048, 1024, 2048, 1536, 1024]
    return {
        "gpt2": GPT2Config(n_layer=8, d_model=512, d_embed=512, n_head=heads, d_inner=inner),
        "transxl": TransXLConfig(n_layer=8, d_model=512, d_embed=512, n_head=heads, d_inner=inner),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.utils.logging.disable_progress_bar()
    from lts.models import build_model
    from lts.models.hf import hf_model

    print("| family | new tokens | with cache (tok/s) | without (tok/s) | speed-up | same greedy output |")
    print("| --- | --- | --- | --- | --- | --- |")
    for family, cfg in configs().items():
        model = hf_model(cfg, build_model(cfg, seed=0)).to(args.device)
        new = min(args.new_tokens, cfg.tgt_len - 16) if family == "gpt2" else args.new_tokens
        prompt = torch.randint(0, cfg.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0)).to(args.device)
        outs, rates = {}, {}
        for cached in (True, False):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                with torch.no_grad():
                    outs[cached] = model.generate(prompt, max_new_tokens=new, min_new_tokens=new,
                                                  do_sample=False, use_cache=cached)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            rates[cached] = new / statistics.median(times)
        same = torch.equal(outs[True], outs[False])
        print(f"| {family} | {new} | {rates[True]:.1f} | {rates[False]:.1f} | {rates[True] / rates[False]:.2f}x | {same} |")


if __name__ == "__main__":
    main()
