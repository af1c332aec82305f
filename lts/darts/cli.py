"""``lts darts`` and ``lts darts-runs``: the memory-efficient differentiable search from the command line.

``lts darts [settings]`` creates a DARTS job and runs it here; ``--background`` runs it in a
detached process instead; ``lts darts --resume ID`` continues a stopped, cancelled or killed one
from its last checkpoint; ``lts darts --cancel ID`` asks a running one to stop; ``lts darts-runs``
lists them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lts.darts.defaults import DEFAULT_OPS  # not lts.darts.supernet: that imports torch
from lts.errors import LtsError
from lts.validate.cli import table


def _settings(args: argparse.Namespace) -> Any:
    from lts.darts.search import DartsSettings
    from lts.darts.supernet import SupernetSpec
    from lts.text.tokenizer import TokenizerSpec

    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
    spec = SupernetSpec(n_layer=args.layers, d_model=args.d_model, n_split=args.splits, candidates=ops,
                        tgt_len=args.seq_len, ffn_mult=args.ffn_mult, conv_heads=args.conv_heads)
    return DartsSettings(spec=spec, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         arch_lr=args.arch_lr, arch_warmup=args.arch_warmup, seed=args.seed,
                         reconstruct=not args.no_reconstruct, threads=args.threads, corpus=args.corpus,
                         tokenizer=TokenizerSpec(args.tokenizer, args.vocab),
                         checkpoint_every=args.checkpoint_every)


def cmd_darts(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from lts.darts.search import create_darts, run_darts_job
    from lts.darts.session import cancel_darts, default_cache_dir, start
    from lts.store import darts as repo
    from lts.store.db import open_store

    if args.cancel:
        store = open_store(args.db)
        print(f"DARTS run {args.cancel}: {cancel_darts(store, args.cancel)}")
        return
    if args.resume:
        store = open_store(args.db)
        darts_id = args.resume
        row = repo.get(store, darts_id)  # an unknown id is one line
        steps = row.steps
    else:
        settings = _settings(args)  # bad settings are refused before the database is opened
        store = open_store(args.db)
        darts_id = create_darts(store, settings, default_cache_dir(store.path))
        steps = settings.steps
    if args.background:
        pid = start(store, store.path, darts_id)
        print(f"DARTS run {darts_id} started in the background (pid {pid}); "
              f"log: {Path(store.path).resolve().parent / 'logs' / f'darts-{darts_id}.log'}")
        print(f"  follow it: lts darts-runs   cancel it: lts darts --cancel {darts_id}")
        return
    print(f"DARTS run {darts_id}", flush=True)
    row = repo.get(store, darts_id)
    bar = None if args.no_progress else tqdm(total=steps, initial=row.step if args.resume else 0, desc="darts",
                                             unit="step")
    log_every = int(row.settings.get("log_every", 10))

    def on_step(step: int, point: dict[str, Any]) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{point['train_loss']:.3f}")
        elif (step + 1) % log_every == 0:
            print(json.dumps(point), flush=True)

    try:
        result = run_darts_job(store, darts_id, default_cache_dir(store.path), on_step)
    except KeyboardInterrupt:
        raise LtsError(f"interrupted; resume with: lts darts --resume {darts_id}") from None
    finally:
        if bar is not None:
            bar.close()
    if result is None:
        print(f"DARTS run {darts_id} cancelled at step {repo.get(store, darts_id).step}; "
              f"resume with: lts darts --resume {darts_id}")
        return
    out = Path(args.out) if args.out else Path(store.path).resolve().parent / "darts" / f"{darts_id}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.config.to_dict(), indent=2) + "\n")
    print(f"run {darts_id}: {steps} steps in {result.seconds:.0f} s, "
          f"supernet held-out loss {result.supernet_valid_loss:.3f}")
    for i, layer in enumerate(result.config.ops):
        best = [max(w) for w in result.weights[i]]
        print(f"  layer {i}: " + "  ".join(f"{op} ({b:.2f})" for op, b in zip(layer, best)))
    print(f"derived architecture {result.config.arch_id} -> {out}")
    print(f"  measure it: lts measure {out} --device-name NAME")
    db = f" --db {args.db}" if args.db else ""
    print(f"  train it:   lts validate --run {darts_id}{db}")


def cmd_darts_runs(args: argparse.Namespace) -> None:
    import time

    from lts.darts.session import list_darts
    from lts.store.db import open_store

    runs = list_darts(open_store(args.db))
    if not runs:
        print("no DARTS runs yet: start one with lts darts --steps 300 (add --background to detach)")
        return
    rows = []
    for r in runs:
        spec = r.settings.get("spec", {})
        rows.append({"darts_id": r.darts_id, "status": r.status, "step": f"{r.step}/{r.steps}",
                     "layers": spec.get("n_layer"), "d_model": spec.get("d_model"), "seed": r.seed,
                     "derived": r.derived_arch_id or "-", "elapsed_s": round(r.elapsed or 0.0),
                     "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at)),
                     "message": r.message or ""})
    print(table(rows, list(rows[0])))


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
    d.add_argument("--checkpoint-every", type=int, default=50,
                   help="steps between checkpoints; a killed search resumes from the last (default 50)")
    d.add_argument("--resume", metavar="DARTS_ID", help="run (or finish) a created, stopped or cancelled DARTS run")
    d.add_argument("--background", action="store_true",
                   help="run it in a detached process (log under logs/ beside the database) and return")
    d.add_argument("--cancel", metavar="DARTS_ID", help="ask a running DARTS run to stop (it checkpoints first)")
    d.add_argument("--out", help="write the derived config here (default: results/darts/DARTS_ID.json)")
    d.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")
    d.add_argument("--no-progress", action="store_true", help="no progress bar (a JSON line every 10 steps)")
    d.set_defaults(func=cmd_darts)

    ls = sub.add_parser("darts-runs", help="list the DARTS runs in the database")
    ls.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")
    ls.set_defaults(func=cmd_darts_runs)
