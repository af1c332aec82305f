"""The DARTS repository: every statement on ``darts_runs``, and the job kind of a DARTS search.

A differentiable search (:mod:`lts.darts`) is a background job of its own kind (:data:`DARTS`):
one ``darts_runs`` row with the lifecycle columns every job has (``status``, ``message``, ``pid``,
``host``, ``created_at``, ``updated_at``), its settings (fixed at creation), its progress (step,
loss history and the latest ``softmax(alpha)``, written by the process running it), the path of
its latest checkpoint (a file beside the database, :func:`checkpoint_path`), and once finished its
result and derived architecture. Status changes go through the lifecycle (:mod:`lts.store.jobs`);
each function here is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.store import jobs
from lts.store.db import Store

TABLE = "darts_runs"
DARTS = jobs.JobKind("darts", TABLE, "darts_id", "DARTS run")


@dataclass(frozen=True)
class DartsRun:
    """One ``darts_runs`` row; readable as a mapping too (``row["status"]``), like the job rows the
    lifecycle functions take."""

    darts_id: str
    settings_json: str
    seed: int
    steps: int
    step: int
    status: str
    message: str | None
    elapsed: float
    progress_json: str | None
    result_json: str | None
    derived_arch_id: str | None
    checkpoint_path: str | None
    checkpoint_step: int | None
    pid: int | None
    host: str | None
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "DartsRun":
        return cls(**{f.name: row.get(f.name) for f in fields(cls)})

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(self.settings_json)

    @property
    def progress(self) -> dict[str, Any]:
        """``history`` (one point per logged step) and ``alpha_snapshots`` (the latest)."""
        return json.loads(self.progress_json) if self.progress_json else {}

    @property
    def result(self) -> dict[str, Any] | None:
        """The finished search: derived config, final weights, held-out loss, tokenizer, corpus."""
        return json.loads(self.result_json) if self.result_json else None

    def __getitem__(self, key: str) -> Any:
        if key not in _KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _KEYS else default

    def __contains__(self, key: object) -> bool:
        return key in _KEYS

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    @staticmethod
    def keys() -> tuple[str, ...]:
        return _KEYS

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _KEYS}


_KEYS = tuple(f.name for f in fields(DartsRun))


def has_table(store: Store) -> bool:
    return TABLE in store.db.table_names()


def checkpoint_path(store: Store, darts_id: str) -> Path:
    """Where a DARTS run's checkpoint lives: ``checkpoints/darts-ID.pt`` beside the database."""
    return Path(store.path).resolve().parent / "checkpoints" / f"darts-{darts_id}.pt"


def create(store: Store, darts_id: str, settings: Mapping[str, Any], seed: int, steps: int,
           admit: Callable[[sqlite3.Connection], None] | None = None) -> None:
    """Insert a new (``created``) DARTS run; ``admit(conn)`` runs first in the same transaction and
    may raise to refuse (a concurrency limit)."""
    now = time.time()
    with store.write() as conn:
        if admit is not None:
            admit(conn)
        conn.execute(
            f"INSERT INTO {TABLE} (darts_id, settings_json, seed, steps, status, progress_json, created_at,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?)",
            (darts_id, json.dumps(settings, sort_keys=True), seed, steps, lifecycle.CREATED,
             json.dumps({"history": [], "alpha_snapshots": []}), now, now))


def find(store: Store, darts_id: str) -> DartsRun | None:
    if not has_table(store):
        return None
    rows = store.query(f"SELECT * FROM {TABLE} WHERE darts_id = ?", (darts_id,))
    return DartsRun.from_row(rows[0]) if rows else None


def get(store: Store, darts_id: str) -> DartsRun:
    row = find(store, darts_id)
    if row is None:
        raise LtsError(f"no DARTS run {darts_id!r} in {store.path}")
    return row


def list_all(store: Store) -> list[DartsRun]:
    """Every DARTS run, newest first (stored statuses; see :func:`lts.jobs.effective_status`)."""
    if not has_table(store):
        return []
    return [DartsRun.from_row(r) for r in store.query(f"SELECT * FROM {TABLE} ORDER BY created_at DESC")]


def active(store: Store) -> list[DartsRun]:
    """DARTS runs not yet ended (stored statuses created, queued, running, cancelling)."""
    return [r for r in list_all(store) if r.status in lifecycle.ACTIVE]


def record_progress(store: Store, darts_id: str, step: int, elapsed: float, message: str,
                    progress: Mapping[str, Any], checkpoint: tuple[str, int] | None = None) -> None:
    """The running search's step, elapsed time, message and history (and its newest checkpoint's
    path and step), in one transaction; the status is left as it is (a cancel may have landed)."""
    fields_: dict[str, Any] = {"step": step, "elapsed": elapsed, "message": message,
                               "progress_json": json.dumps(progress)}
    if checkpoint is not None:
        fields_["checkpoint_path"], fields_["checkpoint_step"] = checkpoint
    jobs.update(store, DARTS, darts_id, **fields_)


def end(store: Store, darts_id: str, status: str, message: str | None, elapsed: float | None = None,
        **fields_: Any) -> None:
    """Move a run to ``failed`` or ``cancelled`` (checked by the lifecycle); its process lets go (pid NULL)."""
    if elapsed is not None:
        fields_["elapsed"] = elapsed
    jobs.transition(store, DARTS, darts_id, status, message=message, pid=None, **fields_)


def finish(store: Store, darts_id: str, derived: Any, result: Mapping[str, Any], progress: Mapping[str, Any],
           step: int, elapsed: float, message: str) -> None:
    """The finished search in one transaction: the derived architecture (with its proxies) in
    ``architectures``, and the run ``finished`` with its result; its checkpoint is no longer needed."""
    with store.write() as conn:
        cur = conn.execute(f"SELECT status FROM {TABLE} WHERE darts_id = ?", (darts_id,))
        row = cur.fetchone()
        if row is None:
            raise LtsError(f"no DARTS run {darts_id!r} in {store.path}")
        if row[0] != lifecycle.FINISHED:
            lifecycle.check_transition(DARTS.label, darts_id, row[0], lifecycle.FINISHED)
        store.upsert_architecture(conn, derived)
        conn.execute(
            f"UPDATE {TABLE} SET status = ?, pid = NULL, step = ?, elapsed = ?, message = ?, progress_json = ?,"
            " result_json = ?, derived_arch_id = ?, checkpoint_path = NULL, checkpoint_step = NULL, updated_at = ?"
            " WHERE darts_id = ?",
            (lifecycle.FINISHED, step, elapsed, message, json.dumps(progress), json.dumps(result), derived.arch_id,
             time.time(), darts_id))


def delete(store: Store, darts_id: str) -> None:
    """Delete an ended (or stopped) DARTS run; a live one is refused (cancel it first)."""
    jobs.refuse_delete_if_live(DARTS, get(store, darts_id))
    with store.write() as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE darts_id = ?", (darts_id,))
