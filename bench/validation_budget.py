"""Spearman of the proxies against held-out perplexity as training grows, for several named recipes.

    .venv/bin/python bench/validation_budget.py [--recipes lts-v1,...] [--space gpt2] [-n 16] [--sampling cells] [--seed 0]
        [--workers 2] [--db /tmp/budget.db] [--steps N] [--eval-every N] [--proxies decoder_params,flops]

For each recipe (default: every one in ``lts.validate.recipe.RECIPES``) it creates and trains a
validation of the same architectures (same space, sampling seed, corpus and tokenizer), with the
held-out loss recorded every ``eval_every`` steps, and prints, per recipe, the Spearman (95%
bootstrap interval) and Kendall of each proxy at every checkpoint against the training tokens seen
so far, then the wall time. ``--steps`` / ``--eval-every`` override every recipe (a quick look);
an existing ``--db`` with a finished validation of the same settings is reused, not retrained.
No pass/fail: how far the ranking has converged is the figure.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lts.store.db import Store
from lts.text.tokenizer import TokenizerSpec
from lts.validate.correlations import validation_curve
from lts.validate.candidates import SAMPLING
from lts.validate.defaults import default_warmup
from lts.validate.recipe import RECIPES, Recipe
from lts.validate.runner import ValidationRunner
from lts.validate.session import ValidationSettings, create_validation, default_cache_dir, list_validations


def _existing(store: Store, settings: ValidationSettings) -> str | None:
    """A validation of the same recipe and sampling seed already in the database (resumed or reused)."""
    want = settings.recipe.to_dict()
    for row in list_validations(store):
        if json.loads(row["recipe_json"]) == want and row["seed"] == settings.seed and row["n_archs"] == settings.n_archs \
                and json.loads(row["space_json"]).get("sampling", "stratified") == settings.sampling:
            return row["validation_id"]
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    ap.add_argument("--space", default="gpt2")
    ap.add_argument("-n", type=int, default=16)
    ap.add_argument("--sampling", default="cells", choices=SAMPLING)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--db", help="database (default: a fresh temporary one)")
    ap.add_argument("--steps", type=int)
    ap.add_argument("--eval-every", type=int)
    ap.add_argument("--proxies", default="decoder_params,total_params,flops")
    args = ap.parse_args()
    db = Path(args.db) if args.db else Path(tempfile.mkdtemp(prefix="lts-budget-")) / "budget.db"
    store = Store(db)
    proxies = args.proxies.split(",")
    for name in args.recipes.split(","):
        overrides = {"steps": args.steps, "eval_every": args.eval_every}
        if args.steps is not None:
            overrides["warmup_steps"] = default_warmup(args.steps)
        recipe = Recipe.named(name, **overrides)
        settings = ValidationSettings(space=args.space, n_archs=args.n, seed=args.seed, tokenizer=TokenizerSpec(),
                                      recipe=recipe, sampling=args.sampling)
        vid = _existing(store, settings) or create_validation(store, settings, default_cache_dir(db))
        t0 = time.perf_counter()
        runner = ValidationRunner(store, vid, workers=args.workers)
        if runner.counts()[0] < settings.n_archs:  # a finished run in --db is reused as it is
            runner.run_to_end()
        wall = time.perf_counter() - t0
        print(f"\nrecipe {name}: {recipe.steps} steps x {recipe.batch_size} x {recipe.seq_len} tokens, lr {recipe.lr:g}"
              f"{f' x {recipe.lr_width}/d_model' if recipe.lr_width else ''}; "
              f"validation {vid} in {db}; {wall / 60:.1f} min on {args.workers} worker(s) this call")
        print(f"{'step':>6} {'tokens':>10}  " + "  ".join(f"{p:>30}" for p in proxies))
        curve = validation_curve(store, vid)
        for step in sorted({r["step"] for r in curve}):
            at = {r["proxy"]: r for r in curve if r["step"] == step}
            cells = []
            for p in proxies:
                r = at.get(p)
                if r is None or r["spearman"] is None:
                    cells.append(f"{'-':>30}")
                else:
                    lo, hi = r["spearman_lo"], r["spearman_hi"]
                    cells.append(f"{r['spearman']:+.3f} [{lo:+.2f},{hi:+.2f}] K{r['kendall']:+.2f}".rjust(30))
            tokens = next(iter(at.values()))["tokens"]
            print(f"{step:>6} {tokens:>10}  " + "  ".join(cells))
    print("\n(Spearman [95% bootstrap] and Kendall K of each proxy against held-out perplexity at each checkpoint; "
          "+1: a larger proxy ranks exactly as a lower perplexity)")


if __name__ == "__main__":
    main()
