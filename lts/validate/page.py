"""What the dashboard's "Own validation runs" section shows and does; the Streamlit page only lays it out.

Everything here takes a :class:`~lts.store.db.Store` and returns plain data (dicts, DataFrames,
plotly figures), so it is tested without Streamlit and the page stays a thin view.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from lts.errors import LtsError
from lts.store.db import Store
from lts.validate.correlations import BootstrapSettings, correlate, proxy_columns
from lts.validate.session import (ACTIVE, ValidationSettings, create_validation, default_cache_dir, has_tables,
                                  launch_background, list_validations, result_rows)
from lts.validate.recipe import Recipe
from lts.validate.tokenizer import DEFAULT_VOCAB, TokenizerSpec

TABLE_COLUMNS = ["position", "arch_id", "status", "n_layer", "d_model", "decoder_params", "total_params", "flops",
                 "valid_ppl", "train_loss", "wall_seconds", "tokens_per_second", "source_arch_id", "error"]


@dataclass(frozen=True)
class LaunchForm:
    """The page's "new validation run" form; defaults are the CLI's."""

    family: str = "gpt2"
    n_archs: int = 12
    steps: int = Recipe().steps
    seed: int = 0
    workers: int = 2
    corpus: str = ""  # blank: the shipped Austen novels
    vocab: int = DEFAULT_VOCAB
    seq_len: int = Recipe().seq_len
    run_id: str = ""  # blank: sample from the family's validation space


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


def results_frame(store: Store, validation_id: str) -> pd.DataFrame:
    rows = result_rows(store, validation_id)
    cols = [c for c in TABLE_COLUMNS if not rows or c in rows[0]]
    extra = [p for p in proxy_columns(store) if p not in cols]
    return pd.DataFrame(rows, columns=cols + extra)


def correlation_frame(store: Store, validation_id: str, bootstrap: BootstrapSettings = BootstrapSettings()) -> pd.DataFrame:
    rows = [r for r in result_rows(store, validation_id) if r["status"] == "done"]
    return pd.DataFrame(correlate(rows, proxy_columns(store), bootstrap))


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
        "recipe": f"{r['steps']} steps · batch {r['batch_size']} × {r['seq_len']} tokens · AdamW lr {r['lr']:g} "
                  f"({r['warmup_steps']} warm-up, cosine to {r['min_lr_ratio']:g}×) · seed {r['seed']} · "
                  f"{r['eval_sequences']} held-out sequences",
    }


def scatter(frame: pd.DataFrame, proxy: str, corr: dict[str, Any] | None = None) -> Any:
    """Proxy (log x) against validation perplexity (log y), one point per trained architecture."""
    import plotly.express as px

    done = frame[frame["status"] == "done"]
    title = proxy
    if corr and corr.get("spearman") is not None:
        title = f"{proxy} · Spearman {corr['spearman']:+.3f} · Kendall {corr['kendall']:+.3f}"
    fig = px.scatter(done, x=proxy, y="valid_ppl", log_x=True, log_y=True, custom_data=["arch_id"],
                     hover_data=["arch_id", "n_layer", "d_model"], title=title, height=360,
                     labels={proxy: proxy, "valid_ppl": "validation perplexity"})
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


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
    recipe = Recipe(steps=form.steps, seq_len=form.seq_len, seed=form.seed, warmup_steps=max(1, round(0.1 * form.steps)))
    settings = ValidationSettings(space=form.family, n_archs=form.n_archs,
                                  seed=form.seed, corpus=corpus, tokenizer=TokenizerSpec("bpe", form.vocab),
                                  recipe=recipe, run_id=run_id)
    validation_id = create_validation(store, settings, default_cache_dir(db_path), admit=admit)
    pid = launch_background(db_path, validation_id, workers=form.workers)
    with store.write() as conn:  # the page shows it as running at once, before the process says so
        conn.execute("UPDATE validation_runs SET pid = ?, updated_at = ? WHERE validation_id = ?",
                     (pid, time.time(), validation_id))
    return validation_id


def cpu_count() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


# -- the FlexiBERT benchmark section (ZeroLM's space, ranked against GLUE) -------------------
FLEXIBERT_COLUMNS = ["source", "proxy", "n", "spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo",
                     "kendall_hi", "top10_overlap", "seconds_per_arch", "note"]


def flexibert_result() -> Any:
    """The shipped FlexiBERT table and per-architecture values (read from its result file, never
    computed here), or ``None`` when the file is missing."""
    from lts.flexibert.benchmark import shipped_result

    return shipped_result()


def flexibert_frame(result: Any) -> pd.DataFrame:
    return pd.DataFrame(result.rows, columns=FLEXIBERT_COLUMNS)


def flexibert_proxies(result: Any) -> list[str]:
    from lts.flexibert.benchmark import scatter_proxies

    return scatter_proxies(result)


def flexibert_scatter(result: Any, proxy: str) -> dict[str, Any]:
    """A Vega-Lite spec: ``proxy`` (x, log scale when it spans positive decades) against GLUE (y),
    one point per architecture, its id and layers in the tooltip; Spearman/Kendall in the title."""
    from lts.flexibert.benchmark import scatter_points

    points = scatter_points(result, proxy)
    row = next((r for r in result.rows if r["proxy"] == proxy and r["source"] in ("lts", "published")), None)
    title = proxy
    if row and row.get("spearman") is not None:
        title = f"{proxy} · Spearman {row['spearman']:+.3f} · Kendall {row['kendall']:+.3f} · n {row['n']}"
    values = [p["value"] for p in points]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > 100
    return {
        "data": {"values": points},
        "title": title,
        "mark": {"type": "point", "filled": True, "opacity": 0.6},
        "encoding": {
            "x": {"field": "value", "type": "quantitative", "title": proxy,
                  "scale": {"type": "log"} if log else {"zero": False}},
            "y": {"field": "glue", "type": "quantitative", "title": "GLUE score", "scale": {"zero": False}},
            "tooltip": [{"field": "id", "type": "quantitative"}, {"field": "glue", "type": "quantitative"},
                        {"field": "value", "type": "quantitative", "title": proxy},
                        {"field": "describe", "type": "nominal", "title": "architecture"}],
        },
        "height": 360,
    }
