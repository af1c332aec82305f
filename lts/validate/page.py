"""What the dashboard's "Own validation runs" section shows and does; the Streamlit page only lays it out.

Everything here takes a :class:`~lts.store.db.Store` and returns plain data (dicts, DataFrames), so it
is tested without Streamlit and the page stays a thin view; the charts are drawn by
``dashboard/validation_charts.py``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from lts.errors import LtsError
from lts.store.db import Store
from lts.store.validations import kept_weights
from lts.validate.correlations import BootstrapSettings, correlate, curve_correlations, proxy_columns
from lts.validate.defaults import DEFAULT_SAMPLING, N_ARCHS, WORKERS, default_warmup
from lts.validate.session import (ACTIVE, ValidationSettings, create_validation, default_cache_dir, has_tables,
                                  list_validations, result_rows, start_background)
from lts.validate.recipe import DEFAULT_RECIPE, RECIPES, Recipe
from lts.text.tokenizer import DEFAULT_VOCAB, TokenizerSpec

TABLE_COLUMNS = ["position", "arch_id", "status", "n_layer", "d_model", "decoder_params", "total_params", "flops",
                 "valid_ppl", "train_loss", "wall_seconds", "tokens_per_second", "source_arch_id", "error"]


@dataclass(frozen=True)
class LaunchForm:
    """The page's "new validation run" form; defaults are the CLI's."""

    family: str = "gpt2"
    n_archs: int = N_ARCHS
    steps: int = RECIPES[DEFAULT_RECIPE].steps
    seed: int = 0
    workers: int = WORKERS
    corpus: str = ""  # blank: the shipped Austen novels
    vocab: int = DEFAULT_VOCAB
    seq_len: int = RECIPES[DEFAULT_RECIPE].seq_len
    run_id: str = ""  # blank: sample from the family's validation space
    keep_weights_mb: float = 0.0  # keep each trained model's weights up to this size (lts export --trained)
    recipe: str = DEFAULT_RECIPE  # the named recipe; steps and seq_len above override it
    sampling: str = DEFAULT_SAMPLING


def label(row: dict[str, Any]) -> str:
    corpus = json.loads(row["corpus_json"])["source"]
    corpus = "Austen (shipped)" if corpus.startswith("builtin:") else Path(corpus).name
    return (f"{row['validation_id']} · {row['family']} · {corpus} · {row['status']} · "
            f"{row['n_done']}/{row['n_archs']} trained")


def runs(store: Store) -> list[dict[str, Any]]:
    """Validation runs, newest first (empty on a database without the tables)."""
    return list_validations(store) if has_tables(store) else []


def active(store: Store) -> list[dict[str, Any]]:
    return [r for r in runs(store) if r["status"] in ACTIVE]


def results_frame(store: Store, validation_id: str, rows: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """The per-architecture table (``rows``: :func:`~lts.validate.session.result_rows`, read here if None)."""
    kept = kept_weights(store, validation_id)
    rows = result_rows(store, validation_id) if rows is None else rows
    rows = [{**r, "weights_mb": round(kept[r["arch_id"]] / 1e6, 2) if r["arch_id"] in kept else None} for r in rows]
    cols = [c for c in TABLE_COLUMNS if not rows or c in rows[0]] + (["weights_mb"] if kept else [])
    extra = [p for p in proxy_columns(store) if p not in cols]
    return pd.DataFrame(rows, columns=cols + extra)


def correlation_frames(rows: list[dict[str, Any]], proxies: list[str],
                       bootstrap: BootstrapSettings = BootstrapSettings()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every proxy's correlation over the finished architectures, the same at each checkpoint) of one
    validation's result rows: a pure function of them, so the dashboard caches it on the rows."""
    done = [r for r in rows if r["status"] == "done"]
    return pd.DataFrame(correlate(done, proxies, bootstrap)), pd.DataFrame(curve_correlations(rows, proxies, bootstrap))


UNTRAINED_PPL = 300.0  # a BPE model this far from its corpus has learned little beyond token frequencies


def untrained_warning(frame: pd.DataFrame) -> str | None:
    """A one-line warning when a validation run's trained models are still near their starting perplexity:
    a ranking of models that learned nothing says nothing about the proxy."""
    done = frame[frame["status"] == "done"] if "status" in frame else frame
    ppl = pd.to_numeric(done.get("valid_ppl"), errors="coerce").dropna() if "valid_ppl" in done else pd.Series([])
    if ppl.empty or ppl.median() <= UNTRAINED_PPL:
        return None
    return (f"Median validation perplexity {ppl.median():.0f}: these models are barely trained (above "
            f"{UNTRAINED_PPL:.0f} they have learned little beyond token frequencies), so their ranking says little "
            "about the proxy. Train with more steps (the lts-v2 recipe's 4,000) before reading the correlations.")


def describe(row: dict[str, Any]) -> dict[str, str]:
    """One-line descriptions of the corpus, tokenizer and recipe of a validation run."""
    corpus = json.loads(row["corpus_json"])
    tok = json.loads(row["tokenizer_json"])
    r = json.loads(row["recipe_json"])
    return {
        "corpus": f"{corpus['source']} · {len(corpus['documents'])} documents · {corpus['bytes'] / 1e6:.2f} MB · "
                  f"last {corpus['valid_fraction']:.0%} of each held out · sha256 {corpus['sha256'][:12]}",
        "tokenizer": f"{tok['kind']} · vocabulary {tok['vocab_size']} · {tok['train_tokens']:,} train / "
                     f"{tok['valid_tokens']:,} held-out tokens · {tok['bytes_per_token']} bytes/token",
        "recipe": f"{r.get('name', 'unnamed')}: {r['steps']} steps · batch {r['batch_size']} × {r['seq_len']} tokens · AdamW lr {r['lr']:g}"
                  + (f" × {r['lr_width']}/d_model" if r.get('lr_width') else "") + " "
                  f"({r['warmup_steps']} warm-up, cosine to {r['min_lr_ratio']:g}×) · seed {r['seed']} · "
                  f"{r['eval_sequences']} held-out sequences"
                  + (f" · held-out loss every {r['eval_every']} steps" if r.get("eval_every") else "")
                  + (f" · weights kept up to {r['keep_weights_mb']:g} MB each" if r.get("keep_weights_mb") else ""),
    }


def launch(store: Store, db_path: str | Path, form: LaunchForm,
           admit: Callable[[sqlite3.Connection], None] | None = None) -> str:
    """Create a validation run from the page's form and start it in a detached process; returns its id.

    ``admit`` is checked in the transaction that inserts it (see ``create_validation``)."""
    if form.workers < 1:
        raise LtsError(f"workers must be >= 1, got {form.workers}")
    if form.steps < 1:
        raise LtsError(f"steps must be >= 1, got {form.steps}")
    corpus = form.corpus.strip() or None
    run_id = form.run_id.strip() or None
    recipe = Recipe.named(form.recipe, steps=form.steps, seq_len=form.seq_len, seed=form.seed,
                          warmup_steps=default_warmup(form.steps), keep_weights_mb=form.keep_weights_mb)
    settings = ValidationSettings(space=form.family, n_archs=form.n_archs,
                                  seed=form.seed, corpus=corpus, tokenizer=TokenizerSpec("bpe", form.vocab),
                                  recipe=recipe, sampling=form.sampling, run_id=run_id)
    validation_id = create_validation(store, settings, default_cache_dir(db_path), admit=admit)
    start_background(store, db_path, validation_id, workers=form.workers)  # its pid at once: shown as launched
    return validation_id


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
