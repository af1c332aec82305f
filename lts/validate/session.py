"""Creating, listing, launching and cancelling validation runs: what the CLI and the dashboard share.

Mirrors :mod:`lts.search.session`. A validation is first *created*: the corpus is read, the
tokenizer trained (or taken from the cache), the architectures chosen, and one
``validation_runs`` row plus one ``pending`` ``validation_results`` row per architecture are
written in a single transaction. Everything that defines the experiment (space, corpus hash and
split, tokenizer, recipe, seed, the architectures) is fixed at that moment, so running it is just
training whatever is not ``done`` yet, by :class:`lts.validate.runner.ValidationRunner` in this
process or by :func:`launch_background` in a detached ``lts validate --resume`` process.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from lts.errors import LtsError
from lts.search.session import process_alive, spawn_detached
from lts.space.config import Config, config_from_json
from lts.store.db import Store
from lts.validate.candidates import choose, retarget, spread, validation_space
from lts.validate.corpus import DEFAULT_VALID_FRACTION, load_corpus
from lts.validate.tokenizer import TokenData, TokenizerSpec, prepare_tokens
from lts.validate.recipe import Recipe

ACTIVE = ("created", "running", "cancelling")


@dataclass(frozen=True)
class ValidationSettings:
    """Everything that defines a validation experiment (recorded with it)."""

    space: str | Mapping[str, Any] = "gpt2"  # a family's validation space, or a space dict
    n_archs: int | None = 12  # None with run_id: the whole frontier
    seed: int = 0
    corpus: str | None = None  # None: the shipped Austen novels
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    recipe: Recipe = field(default_factory=Recipe)
    valid_fraction: float = DEFAULT_VALID_FRACTION
    sampling: str = "stratified"
    run_id: str | None = None  # train this search run's frontier instead of sampling

    def __post_init__(self) -> None:
        if self.n_archs is not None and self.n_archs < 2:
            raise LtsError(f"-n must be at least 2 (a rank correlation needs two architectures), got {self.n_archs}")
        if self.n_archs is None and self.run_id is None:
            raise LtsError("give the number of architectures to sample (-n)")


def default_cache_dir(db_path: str | Path) -> Path:
    """Tokenizers and encoded corpora are cached beside the database (like the logs)."""
    return Path(db_path).resolve().parent / "cache"


def _frontier_configs(store: Store, run_id: str, vocab: int, seq_len: int) -> tuple[list[tuple[Config, str]], dict[str, Any]]:
    run = store.run(run_id)
    rows = store.run_rows(run_id, frontier_only=True)
    out: dict[str, tuple[Config, str]] = {}
    for r in rows:
        cfg = retarget(config_from_json(r["config_json"]), vocab, seq_len)
        out.setdefault(cfg.arch_id, (cfg, r["arch_id"]))  # two members may differ only in the vocabulary
    space = {"from_run": run_id, "family": run["family"], "run_space": json.loads(run["space_json"]),
             "retargeted": {"vocab_size": vocab, "tgt_len": seq_len, "cutoffs": "clipped to the vocabulary"}}
    return list(out.values()), space


def create_validation(store: Store, settings: ValidationSettings, cache_dir: str | Path,
                      admit: Callable[[sqlite3.Connection], None] | None = None) -> str:
    """Fix the experiment and write it to the database; returns the new validation id.

    ``admit(conn)`` runs in the inserting transaction and may raise to refuse (a concurrency limit
    checked there holds against simultaneous launches)."""
    if settings.run_id is not None:
        store.run(settings.run_id)  # an unknown run fails now, before the tokenizer is trained
    corpus = load_corpus(settings.corpus)
    data = prepare_tokens(corpus, settings.tokenizer, cache_dir, settings.valid_fraction)
    recipe = settings.recipe
    if len(data.valid) < recipe.seq_len + 2 or len(data.train) < recipe.seq_len + 2:
        raise LtsError(
            f"corpus {corpus.source!r} is too small: {len(data.train)} train and {len(data.valid)} held-out tokens "
            f"for sequences of {recipe.seq_len}"
        )
    if settings.run_id is not None:
        pairs, space_json = _frontier_configs(store, settings.run_id, data.vocab_size, recipe.seq_len)
        if settings.n_archs is not None and settings.n_archs < len(pairs):
            keep = {c.arch_id for c in spread([c for c, _ in pairs], settings.n_archs)}
            pairs = [p for p in pairs if p[0].arch_id in keep]
        if not pairs:  # one is enough to train (a darts run derives one); correlations then need more
            raise LtsError(f"run {settings.run_id} has no frontier architecture to train")
        family = space_json["family"]
    else:
        space = validation_space(settings.space, data.vocab_size, recipe.seq_len)
        pairs = [(c, None) for c in choose(space, settings.n_archs or 0, settings.seed, settings.sampling)]
        space_json = {**space.to_dict(), "sampling": settings.sampling}
        family = space.family

    validation_id = uuid.uuid4().hex[:12]
    now = time.time()
    with store.write() as conn:
        if admit is not None:
            admit(conn)
        conn.execute(
            "INSERT INTO validation_runs (validation_id, family, space_json, corpus_json, tokenizer_json, recipe_json,"
            " seed, source_run_id, n_archs, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (validation_id, family, json.dumps(space_json, sort_keys=True),
             json.dumps(corpus.describe(settings.valid_fraction), sort_keys=True),
             json.dumps(data.info, sort_keys=True), json.dumps(recipe.to_dict(), sort_keys=True),
             settings.seed, settings.run_id, len(pairs), "created", now, now),
        )
        for position, (cfg, source) in enumerate(pairs):
            store.upsert_architecture(conn, cfg)
            conn.execute(
                "INSERT INTO validation_results (validation_id, arch_id, position, source_arch_id, status)"
                " VALUES (?,?,?,?,'pending')",
                (validation_id, cfg.arch_id, position, source),
            )
    return validation_id


# -- reading ------------------------------------------------------------------------------
def has_tables(store: Store) -> bool:
    return "validation_runs" in store.db.table_names()


def get_validation(store: Store, validation_id: str) -> dict[str, Any]:
    rows = store.query("SELECT * FROM validation_runs WHERE validation_id = ?", (validation_id,))
    if not rows:
        raise LtsError(f"no validation {validation_id!r} in {store.path}")
    return rows[0]


def list_validations(store: Store) -> list[dict[str, Any]]:
    """Every validation run, newest first, with its effective status (a dead process shows 'stopped')."""
    rows = store.query("SELECT * FROM validation_runs ORDER BY created_at DESC")
    for r in rows:
        r["status"] = effective_status(r)
    return rows


def result_rows(store: Store, validation_id: str) -> list[dict[str, Any]]:
    """One row per architecture: its proxies (every column of ``architectures``) and its training outcome."""
    get_validation(store, validation_id)
    return store.query(
        """SELECT a.*, r.position, r.source_arch_id, r.status, r.valid_ppl, r.valid_loss, r.train_loss,
                  r.wall_seconds, r.tokens_per_second, r.error, r.finished_at
           FROM validation_results r JOIN architectures a USING (arch_id)
           WHERE r.validation_id = ? ORDER BY r.position""",
        (validation_id,),
    )


def token_data(validation: Mapping[str, Any]) -> tuple[TokenData, str]:
    """The validation's encoded corpus, and its cache path; rebuilt (and checked) when the cache is gone."""
    tok = json.loads(validation["tokenizer_json"])
    path = Path(tok["cache"])
    if path.is_file():
        return TokenData.load(path), str(path)
    corpus_info = json.loads(validation["corpus_json"])
    source = corpus_info["source"]
    corpus = load_corpus(None if source.startswith("builtin:") else source)
    if corpus.sha256 != corpus_info["sha256"]:
        raise LtsError(f"corpus {source!r} changed since validation {validation['validation_id']} was created")
    spec = TokenizerSpec(tok["kind"], tok["requested_vocab_size"])
    data = prepare_tokens(corpus, spec, path.parent.parent, corpus_info["valid_fraction"])
    if data.info["sha256"] != tok["sha256"]:
        raise LtsError(f"the rebuilt tokenizer differs from validation {validation['validation_id']}'s; "
                       f"restore {tok.get('path')}")
    return data, data.info["cache"]


# -- processes ----------------------------------------------------------------------------
def effective_status(row: Mapping[str, Any]) -> str:
    """The stored status, or 'stopped' for a validation whose process died without saying so."""
    status = row["status"]
    if status in ("running", "cancelling") and not process_alive(row.get("pid")):
        return "stopped"
    if status == "created" and row.get("pid") and not process_alive(row["pid"]):
        return "stopped"  # launched in the background, but the process died before it started
    return status


def launch_background(db_path: str | Path, validation_id: str, workers: int = 1, log_dir: str | Path | None = None) -> int:
    """Run ``lts validate --resume ID`` detached (own session, outlives the caller); returns its pid."""
    args = ["validate", "--resume", validation_id, "--db", str(db_path), "--workers", str(workers), "--no-progress"]
    return spawn_detached(args, db_path, f"validation-{validation_id}.log", log_dir)


def cancel_validation(store: Store, validation_id: str) -> str:
    """Ask a validation to stop; one with no live process is marked cancelled at once. Returns the new status."""
    row = get_validation(store, validation_id)
    status = effective_status(row)
    if status not in ACTIVE and status != "stopped":
        raise LtsError(f"validation {validation_id} is {status}, not running")
    new = "cancelling" if status in ("running", "cancelling") else "cancelled"
    with store.write() as conn:
        conn.execute("UPDATE validation_runs SET status = ?, updated_at = ? WHERE validation_id = ?",
                     (new, time.time(), validation_id))
    return new
