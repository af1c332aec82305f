"""Rank stability of a validation run: the same architectures trained again with another training seed.

    .venv/bin/python bench/validation_stability.py --db /tmp/val.db VALIDATION_ID [--train-seed 1] [--workers 2]

Re-creates the validation VALIDATION_ID (same space, sampling seed, corpus, tokenizer and recipe,
so the same architectures) with only the training seed changed (init and batch order), trains it,
and prints:

* Spearman and Kendall between the two runs' perplexities (how reproducible the ranking is);
* each proxy's Spearman/Kendall (with bootstrap intervals) in both runs;
* the wall time of the second run.

Without VALIDATION_ID it first runs a validation with the CLI defaults (ValidationSettings(): lts-v2,
16 architectures, cells sampling; about 56 minutes on 2 cores), then the second run (as long again).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace

from lts.store.db import Store
from lts.validate.correlations import rank_agreement, validation_correlations
from lts.validate.recipe import Recipe
from lts.validate.runner import ValidationRunner
from lts.validate.session import ValidationSettings, create_validation, default_cache_dir, get_validation, result_rows
from lts.text.tokenizer import TokenizerSpec


def settings_of(row: dict) -> ValidationSettings:
    """The settings that re-create ``row``'s experiment (same architectures)."""
    space = json.loads(row["space_json"])
    corpus = json.loads(row["corpus_json"])
    tok = json.loads(row["tokenizer_json"])
    sampling = space.pop("sampling", "stratified")
    source = corpus["source"]
    return ValidationSettings(
        space=space, n_archs=row["n_archs"], seed=row["seed"],
        corpus=None if source.startswith("builtin:") else source,
        tokenizer=TokenizerSpec(tok["kind"], tok["requested_vocab_size"]),
        recipe=Recipe.from_dict(json.loads(row["recipe_json"])),
        valid_fraction=corpus["valid_fraction"], sampling=sampling,
    )


def run(store: Store, settings: ValidationSettings, cache, workers: int, label: str) -> tuple[str, float]:
    vid = create_validation(store, settings, cache)
    t0 = time.perf_counter()
    ValidationRunner(store, vid, workers=workers,
                     on_progress=lambda p: print(f"  {label}: {p.n_done}/{p.n_archs} ({time.perf_counter() - t0:.0f} s)"
                                                 f" ppl={p.valid_ppl}", flush=True)).run_to_end()
    return vid, time.perf_counter() - t0


def report(store: Store, vid: str) -> None:
    for c in validation_correlations(store, vid):
        print(f"    {c['proxy']:<15} Spearman {c['spearman']:+.3f} [{c['spearman_lo']:+.3f}, {c['spearman_hi']:+.3f}]"
              f"  Kendall {c['kendall']:+.3f} [{c['kendall_lo']:+.3f}, {c['kendall_hi']:+.3f}]")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("validation_id", nargs="?")
    p.add_argument("--db", required=True)
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    store = Store(args.db)
    cache = default_cache_dir(args.db)
    if args.validation_id:
        first = args.validation_id
    else:
        first, seconds = run(store, ValidationSettings(), cache, args.workers, "seed 0")
        print(f"first run {first}: {seconds:.0f} s")
    row = get_validation(store, first)
    base = settings_of(row)
    again = replace(base, recipe=replace(base.recipe, seed=args.train_seed))
    second, seconds = run(store, again, cache, args.workers, f"train seed {args.train_seed}")
    a = {r["arch_id"]: r for r in result_rows(store, first)}
    b = {r["arch_id"]: r for r in result_rows(store, second)}
    if set(a) != set(b):
        print("the re-created validation chose other architectures (space or tokenizer changed?)", file=sys.stderr)
        return 1
    ids = sorted(a, key=lambda k: a[k]["decoder_params"])
    pa, pb = [a[k]["valid_ppl"] for k in ids], [b[k]["valid_ppl"] for k in ids]
    print(f"\nsecond run {second}: {seconds:.0f} s with {args.workers} workers")
    print(f"{'arch_id':<17} {'decoder_params':>14} {'ppl seed ' + str(row['seed']):>12} "
          f"{'ppl seed ' + str(args.train_seed):>12}")
    for k, x, y in zip(ids, pa, pb):
        print(f"{k:<17} {a[k]['decoder_params']:>14,} {x:>12.2f} {y:>12.2f}")
    agree = rank_agreement(list(a.values()), list(b.values()))
    print(f"\nrank stability across training seeds: Spearman {agree['spearman']:+.3f}, Kendall {agree['kendall']:+.3f}")
    for name, vid in ((f"run {first}", first), (f"run {second}", second)):
        print(f"  proxies vs perplexity, {name}:")
        report(store, vid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
