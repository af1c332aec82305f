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
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.jobs.process import spawn_detached
from lts.store import jobs
from lts.store import darts as darts_repo
from lts.store import validations as repo
from lts.space.config import Config, config_from_dict, config_from_json
from lts.store.db import Store
from lts.validate.candidates import choose, retarget, spread, validation_space
from lts.text.corpus import DEFAULT_VALID_FRACTION, load_corpus
from lts.text.tokenizer import TokenizerSpec, prepare_tokens
from lts.validate.defaults import DEFAULT_SAMPLING, N_ARCHS
from lts.validate.recipe import DEFAULT_RECIPE, Recipe

ACTIVE = lifecycle.ACTIVE  # stored statuses of a validation not yet ended


@dataclass(frozen=True)
class ValidationSettings:
    """Everything that defines a validation experiment (recorded with it). The defaults are those of
    ``lts validate`` and the dashboard's form (lts.validate.defaults, the named default recipe)."""

    space: str | Mapping[str, Any] = "gpt2"  # a family's validation space, or a space dict
    n_archs: int | None = N_ARCHS  # None with run_id: the whole frontier
    seed: int = 0
    corpus: str | None = None  # None: the shipped Austen novels
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    recipe: Recipe = field(default_factory=lambda: Recipe.named(DEFAULT_RECIPE))
    valid_fraction: float = DEFAULT_VALID_FRACTION
    sampling: str = DEFAULT_SAMPLING
    run_id: str | None = None  # train this search run's frontier instead of sampling

    def __post_init__(self) -> None:
        if self.n_archs is not None and self.n_archs < 2:
            raise LtsError(f"-n must be at least 2 (a rank correlation needs two architectures), got {self.n_archs}")
        if self.n_archs is None and self.run_id is None:
            raise LtsError("give the number of architectures to sample (-n)")


def default_cache_dir(db_path: str | Path) -> Path:
    """Tokenizers and encoded corpora are cached beside the database (like the logs)."""
    return Path(db_path).resolve().parent / "cache"


def _check_source(store: Store, run_id: str) -> None:
    """An unknown search run (or DARTS run) is refused with one line."""
    if darts_repo.find(store, run_id) is None:
        store.run(run_id)


def _darts_configs(store: Store, darts_id: str, vocab: int, seq_len: int) -> tuple[list[tuple[Config, str]], dict[str, Any]]:
    """A DARTS run's one derived architecture, retargeted like a frontier's."""
    row = darts_repo.get(store, darts_id)
    result = row.result
    if result is None or "derived" not in result:
        raise LtsError(f"DARTS run {darts_id} has not finished: it has no derived architecture to train")
    derived = config_from_dict(result["derived"])
    space = {"from_run": darts_id, "family": derived.family, "run_space": row.settings,
             "retargeted": {"vocab_size": vocab, "tgt_len": seq_len, "cutoffs": "clipped to the vocabulary"}}
    return [(retarget(derived, vocab, seq_len), derived.arch_id)], space


def _frontier_configs(store: Store, run_id: str, vocab: int, seq_len: int) -> tuple[list[tuple[Config, str]], dict[str, Any]]:
    if darts_repo.find(store, run_id) is not None:
        return _darts_configs(store, run_id, vocab, seq_len)
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
        _check_source(store, settings.run_id)  # an unknown run fails now, before the tokenizer is trained
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
    repo.insert(store, repo.NewValidation(
        validation_id=validation_id, family=family, space=space_json,
        corpus=corpus.describe(settings.valid_fraction), tokenizer=data.info, recipe=recipe.to_dict(),
        seed=settings.seed, source_run_id=settings.run_id), pairs, admit=admit)
    return validation_id


# -- reading ------------------------------------------------------------------------------
def has_tables(store: Store) -> bool:
    return repo.has_tables(store)


def get_validation(store: Store, validation_id: str) -> repo.ValidationRun:
    """The validation's row (a :class:`lts.store.validations.ValidationRun`, readable as a mapping)."""
    return repo.get(store, validation_id)


def list_validations(store: Store) -> list[repo.ValidationRun]:
    """Every validation run, newest first, with its effective status (a dead process shows 'stopped')."""
    return [replace(r, status=effective_status(r)) for r in repo.list_all(store)]


def result_rows(store: Store, validation_id: str) -> list[dict[str, Any]]:
    """One row per architecture: its proxies (every column of ``architectures``) and its training outcome."""
    repo.get(store, validation_id)
    return repo.results(store, validation_id)


# -- processes ----------------------------------------------------------------------------
def effective_status(row: Mapping[str, Any]) -> str:
    """The stored status, or 'stopped' for a validation whose process died without saying so
    (the one job lifecycle, :func:`lts.jobs.effective_status`)."""
    return lifecycle.effective_status(row)


def launch_background(db_path: str | Path, validation_id: str, workers: int = 1, log_dir: str | Path | None = None) -> int:
    """Run ``lts validate --resume ID`` detached (own session, outlives the caller); returns its pid."""
    args = ["validate", "--resume", validation_id, "--db", str(db_path), "--workers", str(workers), "--no-progress"]
    return spawn_detached(args, db_path, f"validation-{validation_id}.log", log_dir)


def cancel_validation(store: Store, validation_id: str) -> str:
    """Ask a validation to stop; one with no live process is marked cancelled at once. Returns the new status."""
    return jobs.cancel(store, jobs.VALIDATION, validation_id)


def start_background(store: Store, db_path: str | Path, validation_id: str, workers: int = 1) -> int:
    """Spawn a created (or stopped) validation's process and record its pid at once, so a page shows
    it as launched before the process says so; one whose process could not start is marked failed."""
    try:
        pid = launch_background(db_path, validation_id, workers=workers)
    except OSError as exc:
        jobs.transition(store, jobs.VALIDATION, validation_id, lifecycle.FAILED,
                        message=f"could not start its process: {exc}")
        raise LtsError(f"validation {validation_id}: could not start its process ({exc})") from None
    jobs.launched(store, jobs.VALIDATION, validation_id, pid)
    return pid
