"""The validation repository: every statement on ``validation_runs`` and ``validation_results``.

A validation (:mod:`lts.validate`) is one ``validation_runs`` row (the experiment: space, corpus,
tokenizer, recipe, seed) and one ``validation_results`` row per architecture (``pending`` until
trained, then ``done`` or ``failed``). Every function here takes the :class:`~lts.store.db.Store`
and does its own transaction; a composite write (a validation with all its pending results, one
architecture's result with the run's counters) is one function, so it lands whole or not at all.

Status changes of the run row go through the job lifecycle (:mod:`lts.store.jobs` with
:data:`~lts.store.jobs.VALIDATION`); this module never sets ``status`` of ``validation_runs``
except to the initial ``created`` on insert.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Iterator, Mapping, Sequence

from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.store.db import Store

TABLE = "validation_runs"
RESULTS = "validation_results"
WEIGHTS = "trained_weights"
DONE, FAILED, PENDING = "done", "failed", "pending"


@dataclass(frozen=True)
class ValidationRun:
    """One ``validation_runs`` row. Reads like a mapping too (``row["status"]``, ``row.get("pid")``),
    so the lifecycle functions and older callers take it as they took the dict."""

    validation_id: str
    family: str
    space_json: str
    corpus_json: str
    tokenizer_json: str
    recipe_json: str
    seed: int
    source_run_id: str | None
    n_archs: int
    n_done: int
    n_failed: int
    workers: int
    backend: str
    status: str
    message: str | None
    elapsed: float
    pid: int | None
    host: str | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "ValidationRun":
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})

    # -- decoded columns
    @property
    def recipe(self) -> dict[str, Any]:
        return json.loads(self.recipe_json)

    @property
    def corpus(self) -> dict[str, Any]:
        return json.loads(self.corpus_json)

    @property
    def tokenizer(self) -> dict[str, Any]:
        return json.loads(self.tokenizer_json)

    @property
    def space(self) -> dict[str, Any]:
        return json.loads(self.space_json)

    # -- mapping access
    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    @staticmethod
    def keys() -> tuple[str, ...]:
        return _KEYS

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _KEYS}


_KEYS = tuple(f.name for f in fields(ValidationRun))


@dataclass(frozen=True)
class NewValidation:
    """What :func:`insert` writes for a new validation (everything fixed at creation)."""

    validation_id: str
    family: str
    space: Mapping[str, Any]
    corpus: Mapping[str, Any]
    tokenizer: Mapping[str, Any]
    recipe: Mapping[str, Any]
    seed: int
    source_run_id: str | None


@dataclass(frozen=True)
class Counts:
    n_done: int
    n_failed: int


def has_tables(store: Store) -> bool:
    return TABLE in store.db.table_names()


def insert(store: Store, new: NewValidation, architectures: Sequence[tuple[Any, str | None]],
           admit: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """Write a validation and one ``pending`` result per ``(config, source_arch_id)``, in order, in one
    transaction. ``admit(conn)`` runs first inside it and may raise to refuse (a concurrency limit)."""
    now = time.time()
    with store.write() as conn:
        if admit is not None:
            admit(conn)
        conn.execute(
            f"INSERT INTO {TABLE} (validation_id, family, space_json, corpus_json, tokenizer_json, recipe_json,"
            " seed, source_run_id, n_archs, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (new.validation_id, new.family, json.dumps(new.space, sort_keys=True),
             json.dumps(new.corpus, sort_keys=True), json.dumps(new.tokenizer, sort_keys=True),
             json.dumps(new.recipe, sort_keys=True), new.seed, new.source_run_id, len(architectures),
             lifecycle.CREATED, now, now),
        )
        for position, (cfg, source) in enumerate(architectures):
            store.upsert_architecture(conn, cfg)
            conn.execute(
                f"INSERT INTO {RESULTS} (validation_id, arch_id, position, source_arch_id, status)"
                " VALUES (?,?,?,?,?)",
                (new.validation_id, cfg.arch_id, position, source, PENDING),
            )


def get(store: Store, validation_id: str) -> ValidationRun:
    rows = store.query(f"SELECT * FROM {TABLE} WHERE validation_id = ?", (validation_id,)) if has_tables(store) else []
    if not rows:
        raise LtsError(f"no validation {validation_id!r} in {store.path}")
    return ValidationRun.from_row(rows[0])


def list_all(store: Store) -> list[ValidationRun]:
    """Every validation, newest first (stored statuses; see :func:`lts.jobs.effective_status`)."""
    if not has_tables(store):
        return []
    return [ValidationRun.from_row(r) for r in store.query(f"SELECT * FROM {TABLE} ORDER BY created_at DESC")]


def results(store: Store, validation_id: str) -> list[dict[str, Any]]:
    """One row per architecture, in position order: every column of ``architectures`` (config and
    proxies) and its training outcome (``status``, ``valid_ppl``, ...)."""
    return store.query(
        f"""SELECT a.*, r.position, r.source_arch_id, r.status, r.valid_ppl, r.valid_loss, r.train_loss,
                  r.wall_seconds, r.tokens_per_second, r.error, r.finished_at, r.curve_json
           FROM {RESULTS} r JOIN architectures a USING (arch_id)
           WHERE r.validation_id = ? ORDER BY r.position""",
        (validation_id,),
    )


def _counts(conn: sqlite3.Connection, validation_id: str) -> Counts:
    done, failed = conn.execute(
        f"SELECT SUM(status = '{DONE}'), SUM(status = '{FAILED}') FROM {RESULTS} WHERE validation_id = ?",
        (validation_id,)).fetchone()
    return Counts(int(done or 0), int(failed or 0))


def counts(store: Store, validation_id: str) -> Counts:
    """Trained and failed architectures of a validation."""
    with store.snapshot():
        return _counts(store.conn, validation_id)


def record_result(store: Store, validation_id: str, arch_id: str, result: Mapping[str, Any] | None,
                  error: str | None, elapsed: float) -> Counts:
    """One architecture's outcome (a training result's fields, or a one-line error) and the run's
    counters and elapsed time, in one transaction; returns the new counters."""
    r = result or {}
    now = time.time()
    with store.write() as conn:
        conn.execute(
            f"UPDATE {RESULTS} SET status = ?, valid_ppl = ?, valid_loss = ?, train_loss = ?,"
            " wall_seconds = ?, tokens_per_second = ?, error = ?, finished_at = ?, curve_json = ?"
            " WHERE validation_id = ? AND arch_id = ?",
            (DONE if error is None else FAILED, r.get("valid_ppl"), r.get("valid_loss"), r.get("train_loss"),
             r.get("wall_seconds"), r.get("tokens_per_second"), error, now,
             json.dumps(r["curve"]) if r.get("curve") else None, validation_id, arch_id),
        )
        if error is None and r.get("weights"):
            data = bytes(r["weights"])
            conn.execute(
                f"INSERT OR REPLACE INTO {WEIGHTS} (validation_id, arch_id, format, n_bytes, sha256, data, saved_at)"
                " VALUES (?, ?, 'safetensors', ?, ?, ?, ?)",
                (validation_id, arch_id, len(data), hashlib.sha256(data).hexdigest(), data, now))
        c = _counts(conn, validation_id)
        conn.execute(
            f"UPDATE {TABLE} SET n_done = ?, n_failed = ?, elapsed = ?, updated_at = ? WHERE validation_id = ?",
            (c.n_done, c.n_failed, elapsed, now, validation_id),
        )
    return c


def architecture_columns(store: Store) -> list[tuple[str, str]]:
    """``(name, declared type)`` of every column of ``architectures``, in table order (the proxies
    a validation correlates are its numeric ones)."""
    return [(c["name"], c["type"] or "") for c in store.query("SELECT name, type FROM pragma_table_info('architectures')")]


def occupied_slots(store: Store) -> int:
    """Validations running now (from any launcher) or being launched."""
    from lts.store import jobs

    return jobs.occupied_slots(store, jobs.VALIDATION)


def admit_below(check: Callable[[int], None]) -> Callable[[sqlite3.Connection], None]:
    """An ``admit`` for :func:`insert` (see :func:`lts.store.jobs.admit_below`)."""
    from lts.store import jobs

    return jobs.admit_below(jobs.VALIDATION, check)


@dataclass(frozen=True)
class TrainedWeights:
    validation_id: str
    arch_id: str
    valid_ppl: float | None
    n_bytes: int
    sha256: str
    data: bytes


def trained_weights(store: Store, arch_id: str, validation_id: str | None = None) -> TrainedWeights | None:
    """The kept weights of ``arch_id``: from ``validation_id``, or the run where it reached the lowest
    perplexity; None when no run kept them."""
    where, args = ("AND w.validation_id = ?", (arch_id, validation_id)) if validation_id else ("", (arch_id,))
    rows = store.query(
        f"SELECT w.validation_id, w.arch_id, r.valid_ppl, w.n_bytes, w.sha256, w.data FROM {WEIGHTS} w"
        f" LEFT JOIN {RESULTS} r USING (validation_id, arch_id) WHERE w.arch_id = ? {where}"
        " ORDER BY r.valid_ppl IS NULL, r.valid_ppl LIMIT 1", args)
    return TrainedWeights(**{**rows[0], "data": bytes(rows[0]["data"])}) if rows else None


def has_trained_weights(store: Store, arch_id: str) -> bool:
    """Whether some validation kept weights of ``arch_id`` (without reading them)."""
    return bool(store.query(f"SELECT 1 FROM {WEIGHTS} WHERE arch_id = ? LIMIT 1", (arch_id,)))


def kept_weights(store: Store, validation_id: str) -> dict[str, int]:
    """arch_id -> bytes of the weights a validation kept."""
    return {r["arch_id"]: r["n_bytes"] for r in store.query(
        f"SELECT arch_id, n_bytes FROM {WEIGHTS} WHERE validation_id = ?", (validation_id,))}
