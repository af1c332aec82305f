"""``lts validate``, ``lts correlate`` and ``lts validations``: the CLI of validation runs.

Registered by :func:`add_commands` from ``lts.cli.build_parser``; every user error is an
:class:`~lts.errors.LtsError`, which ``lts.cli.main`` prints as one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from lts.errors import LtsError

RESULT_COLUMNS = ["arch_id", "n_layer", "d_model", "decoder_params", "total_params", "valid_ppl", "train_loss",
                  "wall_s", "status"]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Plain aligned columns (the CLI's house style)."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _store(args: argparse.Namespace):
    from lts.store.db import open_store

    return open_store(args.db)


def _db_path(args: argparse.Namespace) -> Path:
    from lts.store.db import DEFAULT_DB

    return Path(args.db) if args.db else DEFAULT_DB


def _load_space_arg(space: str) -> Any:
    """A family name stays a name (its validation space); a file is read as a space dict."""
    from lts.validate.candidates import VALIDATION_SPACES

    if space in VALIDATION_SPACES:
        return space
    from lts.space.ranges import load_space

    load_space(space)  # refuses a missing or malformed file with one line
    path = Path(space)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def correlation_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def ci(lo: float | None, hi: float | None) -> str:
        return "-" if lo is None else f"[{lo:+.3f}, {hi:+.3f}]"

    return [{"proxy": r["proxy"], "n": r["n"],
             "spearman": r["spearman"], "spearman_95ci": ci(r["spearman_lo"], r["spearman_hi"]),
             "kendall": r["kendall"], "kendall_95ci": ci(r["kendall_lo"], r["kendall_hi"])} for r in rows]


def _print_summary(store: Any, validation_id: str) -> None:
    from lts.validate.correlations import validation_correlations
    from lts.validate.session import result_rows

    rows = sorted(result_rows(store, validation_id), key=lambda r: r["decoder_params"])
    for r in rows:
        r["wall_s"] = r["wall_seconds"]
    print(table(rows, RESULT_COLUMNS))
    done = [r for r in rows if r["status"] == "done"]
    if len(done) >= 2:
        print()
        print(table(correlation_rows(validation_correlations(store, validation_id)),
                    ["proxy", "n", "spearman", "spearman_95ci", "kendall", "kendall_95ci"]))
        print("(+1: a larger proxy ranks exactly as a lower validation perplexity)")


def cmd_validate(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from lts.validate.backends import require_ray
    from lts.validate.defaults import N_ARCHS, default_warmup
    from lts.validate.runner import ValidationRunner
    from lts.validate.session import ValidationSettings, create_validation, default_cache_dir
    from lts.text.tokenizer import TokenizerSpec
    from lts.validate.recipe import Recipe

    if args.workers < 1:
        raise LtsError(f"--workers must be >= 1, got {args.workers}")
    if args.ray_address:
        require_ray()  # before anything is created: one line if Ray is missing
    store = _store(args)
    if args.resume:
        validation_id = args.resume
    else:
        if args.steps is not None and args.steps < 1:
            raise LtsError(f"--steps must be >= 1, got {args.steps}")
        warmup = args.warmup
        if warmup is None and args.steps is not None:
            warmup = default_warmup(args.steps)
        recipe = Recipe.named(args.recipe, steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
                              lr=args.lr, warmup_steps=warmup,
                              seed=args.seed if args.train_seed is None else args.train_seed,
                              eval_sequences=args.eval_sequences, eval_every=args.eval_every,
                              keep_weights_mb=args.keep_weights_mb)
        n = args.n_archs
        if n is None:
            n = None if args.run else N_ARCHS
        settings = ValidationSettings(
            space=_load_space_arg(args.space), n_archs=n, seed=args.seed, corpus=args.corpus,
            tokenizer=TokenizerSpec(args.tokenizer, args.vocab), recipe=recipe,
            valid_fraction=args.valid_fraction, sampling=args.sampling, run_id=args.run,
        )
        validation_id = create_validation(store, settings, default_cache_dir(_db_path(args)))
    runner = ValidationRunner(store, validation_id, workers=args.workers, ray_address=args.ray_address)
    runner.check_resumable()
    print(f"validation {validation_id}", flush=True)
    done, failed = runner.counts()
    total = int(runner.row["n_archs"])
    with tqdm(total=total, initial=done, desc=f"validate {validation_id}", unit="arch",
              disable=args.no_progress, file=sys.stderr) as bar:
        def progress(p: Any) -> None:
            bar.update(p.n_done - bar.n)
            last = f"last ppl {p.valid_ppl:.1f}" if p.valid_ppl is not None else f"failed: {p.error}"
            bar.set_postfix_str(f"{last} failed={p.n_failed}", refresh=True)
            if args.no_progress:
                print(f"{p.n_done + p.n_failed}/{p.n_archs} {p.arch_id} "
                      + (f"valid_ppl={p.valid_ppl:.3f}" if p.valid_ppl is not None else f"error={p.error}"), flush=True)

        runner.on_progress = progress
        try:
            row = runner.run_to_end()
        except KeyboardInterrupt:
            raise LtsError(f"interrupted; resume with: lts validate --resume {validation_id}") from None
    message = f" ({row['message']})" if row["message"] else ""
    print(f"status {row['status']}: {row['n_done']} of {row['n_archs']} trained, {row['n_failed']} failed, "
          f"{row['elapsed']:.0f} s{message}")
    _print_summary(store, validation_id)


def cmd_correlate(args: argparse.Namespace) -> None:
    from lts.validate.correlations import BootstrapSettings, validation_correlations
    from lts.validate.session import get_validation, has_tables, result_rows

    store = _store(args)
    if not has_tables(store):
        raise LtsError(f"no validation {args.validation_id!r} in {store.path}")
    get_validation(store, args.validation_id)
    if args.bootstrap < 0:
        raise LtsError(f"--bootstrap must be >= 0, got {args.bootstrap}")
    done = [r for r in result_rows(store, args.validation_id) if r["status"] == "done"]
    if len(done) < 2:
        raise LtsError(f"validation {args.validation_id} has {len(done)} trained architecture(s); "
                       "a correlation needs at least 2")
    settings = BootstrapSettings(args.bootstrap, args.confidence, args.seed)
    if args.curve:
        _print_curve(store, args.validation_id, settings, args.json)
        return
    rows = validation_correlations(store, args.validation_id, settings)
    if args.json:
        for r in rows:
            print(json.dumps({"validation_id": args.validation_id, **r}, sort_keys=True))
        return
    print(table(correlation_rows(rows), ["proxy", "n", "spearman", "spearman_95ci", "kendall", "kendall_95ci"]))
    print(f"(+1: a larger proxy ranks exactly as a lower validation perplexity; "
          f"{args.confidence:.0%} percentile bootstrap over architectures, {args.bootstrap} resamples, seed {args.seed})")


def _print_curve(store: Any, validation_id: str, settings: Any, as_json: bool) -> None:
    """Spearman/Kendall of every proxy at each checkpoint of the learning curves."""
    from lts.validate.correlations import validation_curve

    rows = validation_curve(store, validation_id, settings)
    if not rows:
        raise LtsError(f"validation {validation_id} recorded no learning curves (its recipe had eval_every 0); "
                       "run a new one with --eval-every N")
    if as_json:
        for r in rows:
            print(json.dumps({"validation_id": validation_id, **r}, sort_keys=True))
        return
    table_rows = [{"step": r["step"], "tokens": r["tokens"], **c}
                  for r, c in zip(rows, correlation_rows(rows))]
    print(table(table_rows, ["step", "tokens", "proxy", "n", "spearman", "spearman_95ci", "kendall", "kendall_95ci"]))
    print(f"(at each checkpoint: +1 = a larger proxy ranks exactly as a lower held-out perplexity; "
          f"{settings.confidence:.0%} percentile bootstrap, {settings.n_resamples} resamples)")


def cmd_validations(args: argparse.Namespace) -> None:
    from lts.validate.session import has_tables, list_validations

    store = _store(args)
    runs = list_validations(store) if has_tables(store) else []
    if not runs:
        print("no validation runs yet: start one with lts validate --space gpt2 -n 12 --steps 400")
        return
    rows = []
    for r in runs:
        corpus = json.loads(r["corpus_json"])
        tok = json.loads(r["tokenizer_json"])
        recipe = json.loads(r["recipe_json"])
        rows.append({"validation_id": r["validation_id"], "family": r["family"], "status": r["status"],
                     "trained": f"{r['n_done']}/{r['n_archs']}", "failed": r["n_failed"],
                     "corpus": corpus["source"], "vocab": tok["vocab_size"], "steps": recipe["steps"],
                     "source_run": r["source_run_id"] or "-", "elapsed_s": round(r["elapsed"] or 0.0),
                     "created": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"]))})
    print(table(rows, list(rows[0])))


def add_commands(sub: Any) -> None:
    """Register ``validate``, ``correlate`` and ``validations`` on the ``lts`` sub-parser."""
    from lts.text.tokenizer import DEFAULT_VOCAB
    from lts.validate.defaults import DEFAULT_SAMPLING, N_ARCHS, WORKERS
    from lts.validate.candidates import SAMPLING
    from lts.validate.recipe import DEFAULT_RECIPE, RECIPES

    d = RECIPES[DEFAULT_RECIPE]

    def db_arg(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--db", help="SQLite database (default: $LTS_DB or results/lts.db)")

    v = sub.add_parser("validate", help="train candidates on a corpus and measure how well each proxy ranks them")
    v.add_argument("--space", default="gpt2",
                   help="gpt2 or transxl (a small validation space of that family) or a space file")
    v.add_argument("-n", dest="n_archs", type=int, default=None,
                   help=f"architectures to train (default {N_ARCHS}; with --run, the whole frontier)")
    v.add_argument("--recipe", default=DEFAULT_RECIPE, choices=list(RECIPES),
                   help=f"named training recipe the flags below start from (default {DEFAULT_RECIPE})")
    v.add_argument("--steps", type=int, help=f"training steps per architecture (default {d.steps})")
    v.add_argument("--seed", type=int, default=0, help="seeds sampling, init and batch order")
    v.add_argument("--train-seed", type=int, help="seed of init and batch order only (default: --seed); the same "
                                                   "--seed with another --train-seed retrains the same architectures")
    v.add_argument("--corpus", help="a text file or folder (default: the shipped Jane Austen novels)")
    v.add_argument("--run", metavar="RUN_ID", help="train this search run's frontier instead of sampling")
    v.add_argument("--workers", type=int, default=WORKERS, help="parallel worker processes, one torch thread each")
    v.add_argument("--ray-address", help="run the jobs on a Ray cluster (auto, local, HOST:PORT, ray://...)")
    v.add_argument("--resume", metavar="VALIDATION_ID", help="finish a stopped validation")
    v.add_argument("--tokenizer", choices=["bpe", "byte"], default="bpe")
    v.add_argument("--vocab", type=int, default=DEFAULT_VOCAB, help=f"BPE vocabulary size (default {DEFAULT_VOCAB})")
    v.add_argument("--seq-len", type=int, help=f"default {d.seq_len}")
    v.add_argument("--batch-size", type=int, help=f"default {d.batch_size}")
    v.add_argument("--lr", type=float, help=f"peak learning rate (AdamW; default {d.lr:g})")
    v.add_argument("--warmup", type=int, help="warm-up steps (default: 10%% of --steps)")
    v.add_argument("--eval-sequences", type=int, help=f"held-out sequences scored (default {d.eval_sequences})")
    v.add_argument("--eval-every", type=int, help=f"held-out loss every N steps, the learning curve "
                                                  f"(default {d.eval_every}; 0: only at the end)")
    v.add_argument("--valid-fraction", type=float, default=0.1, help="held-out tail of every document")
    v.add_argument("--keep-weights-mb", type=float, default=0.0, metavar="MB",
                   help="keep each trained model's weights in the database when at most MB megabytes "
                        "(default 0: none), for lts export --trained")
    v.add_argument("--sampling", choices=list(SAMPLING), default=DEFAULT_SAMPLING,
                   help="stratified: spread over the space's range of decoder parameters; cells: that, and "
                        "spread over (depth, width) cells too; random: independent draws")
    v.add_argument("--no-progress", action="store_true", help="no progress bar (one line per architecture)")
    db_arg(v)
    v.set_defaults(func=cmd_validate)

    c = sub.add_parser("correlate", help="Spearman/Kendall of every proxy against a validation run's perplexity")
    c.add_argument("validation_id")
    c.add_argument("--json", action="store_true", help="one JSON object per proxy")
    c.add_argument("--curve", action="store_true",
                   help="the correlations at every checkpoint of the learning curves (Spearman vs training tokens)")
    c.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the intervals")
    c.add_argument("--confidence", type=float, default=0.95)
    c.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    db_arg(c)
    c.set_defaults(func=cmd_correlate)

    ls = sub.add_parser("validations", help="list the validation runs in the database")
    db_arg(ls)
    ls.set_defaults(func=cmd_validations)
