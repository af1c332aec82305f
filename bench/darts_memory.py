"""Peak memory of one differentiable-search step: backprop by reconstruction against ordinary DARTS.

    .venv/bin/python bench/darts_memory.py [--layers 4 8 16] [--d-model 256] [--batch 8] [--seq-len 128]

One step = an architecture-weight update and an operation-weight update on the full supernet (13
candidate operations per split, 2 splits per layer). Each setting runs in a fresh process; the
figure is the resident-set peak above the built supernet with its optimiser state and gradient
buffers (allocated by a first step), i.e. what the step itself needs. Prints figures and ratios;
target: flat in depth, and >= 3x less than ordinary DARTS at 16 layers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, sys, torch
torch.set_num_threads({threads})
from lts.darts.search import step_peak_memory
from lts.darts.supernet import SupernetSpec
spec = SupernetSpec(n_layer={layers}, d_model={d_model}, n_split={splits}, vocab_size={vocab}, tgt_len={seq_len})
print(json.dumps(step_peak_memory(spec, {batch}, {reconstruct})))
"""


def measure(layers: int, reconstruct: bool, args: argparse.Namespace) -> dict[str, float]:
    code = CHILD.format(layers=layers, reconstruct=reconstruct, d_model=args.d_model, splits=args.splits,
                        vocab=args.vocab, seq_len=args.seq_len, batch=args.batch, threads=args.threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--splits", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=2048)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"supernet: d_model {args.d_model}, {args.splits} splits, 13 candidate ops, batch {args.batch} x "
          f"{args.seq_len} tokens, vocab {args.vocab}")
    print(f"{'layers':>6} {'params':>11} {'reversible MB':>14} {'ordinary MB':>12} {'ratio':>6} "
          f"{'rev s/step':>10} {'ord s/step':>10}")
    rev_peaks = []
    for L in args.layers:
        rev, ordi = measure(L, True, args), measure(L, False, args)
        rev_peaks.append(rev["peak_mb"])
        print(f"{L:>6} {rev['params']:>11,} {rev['peak_mb']:>14.1f} {ordi['peak_mb']:>12.1f} "
              f"{ordi['peak_mb'] / rev['peak_mb']:>5.1f}x {rev['step_seconds']:>10.2f} {ordi['step_seconds']:>10.2f}")
    print(f"reversible peak, deepest / shallowest: {rev_peaks[-1] / rev_peaks[0]:.2f} (flat = 1.00)")


if __name__ == "__main__":
    main()
