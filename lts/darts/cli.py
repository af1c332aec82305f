"""``lts darts``: the memory-efficient differentiable search from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lts.darts.defaults import DEFAULT_OPS  # not lts.darts.supernet: that imports torch


def cmd_darts(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from lts.darts.search import DartsSettings, run_darts
    from lts.darts.supernet import SupernetSpec
    from lts.store.db import open_store
    from lts.validate.session import default_cache_dir
    from lts.validate.tokenizer import TokenizerSpec

    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
    spec = SupernetSpec(n_layer=args.layers, d_model=args.d_model, n_split=args.splits, candidates=ops,
                        tgt_len=args.seq_len, ffn_mult=args.ffn_mult, conv_heads=args.conv_heads)
    settings = DartsSettings(spec=spec, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                             arch_lr=args.arch_lr, arch_warmup=args.arch_warmup, seed=args.seed,
                             reconstruct=not args.no_reconstruct, threads=args.threads, corpus=args.corpus,
                             tokenizer=TokenizerSpec(args.tokenizer, args.vocab))
    store = open_store(args.db)
    bar = None if args.no_progress else tqdm(total=settings.steps, desc="darts", unit="step")

    def on_step(step: int, point: dict[str, Any]) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{point['train_loss']:.3f}")
        elif (step + 1) % settings.log_every == 0:
            print(json.dumps(point), flush=True)

    try:
        result = run_darts(store, settings, default_cache_dir(store.path), on_step)
    finally:
        if bar is not None:
            bar.close()
    out = Path(args.out) if args.out else Path(store.path).resolve().parent / "darts" / f"{result.run_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.config.to_dict(), indent=2) + "\n")
    print(f"run {result.run_id}: {settings.steps} steps in {result.seconds:.0f} s, "
          f"supernet held-out loss {result.supernet_valid_loss:.3f}")
    for i, layer in enumerate(result.config.ops):
        best = [max(w) for w in result.weights[i]]
        print(f"  layer {i}: " + "  ".join(f"{op} ({b:.2f})" for op, b in zip(layer, best)))
    print(f"derived architecture {result.config.arch_id} -> {out}")
    print(f"  measure it: lts measure {out} --device-name NAME")
    db = f" --db {args.db}" if args.db else ""
    print(f"  train it:   lts validate --run {result.run_id}{db}")


def add_commands(sub: Any) -> None:
    d = sub.add_parser("darts", help="memory-efficient differentiable search (reversible DARTS supernet)")
    d.add_argument("--layers", type=int, default=4, help="reversible layers of the supernet (default 4)")
    d.add_argument("--steps", type=int, default=300, help="search steps (default 300)")
    d.add_argument("--corpus", help="a text file or folder (default: the shipped Jane Austen novels)")
    d.add_argument("--d-model", type=int, default=128)
    d.add_argument("--splits", type=int, default=2, help="feature splits per reversible layer (default 2)")
    d.add_argument("--ops", default=",".join(DEFAULT_OPS), help="candidate operations, comma-separated")
    d.add_argument("--ffn-mult", type=int, default=4)
    d.add_argument("--conv-heads", type=int, default=4, help="heads of lightconv/dynconv kernels")
    d.add_argument("--seq-len", type=int, default=64)
    d.add_argument("--batch-size", type=int, default=8)
    d.add_argument("--lr", type=float, default=1e-3, help="operation weights' learning rate (AdamW)")
    d.add_argument("--arch-lr", type=float, default=3e-3, help="architecture weights' learning rate (Adam)")
    d.add_argument("--arch-warmup", type=int, help="weight-only steps first (default: 10%% of --steps)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    d.add_argument("--tokenizer", choices=["bpe", "byte"], default="bpe")
    d.add_argument("--vocab", type=int, default=2048, help="BPE vocabulary size (default 2048)")
    d.add_argument("--no-reconstruct", action="store_true",
                   help="ordinary backprop (keeps every layer's activations; for comparison)")
    d.add_argument("--out", help="write the derived config here (default: results/darts/RUN_ID.json)")
    d.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar (a JSON line every 10 steps)")
    d.set_defaults(func=cmd_darts)
