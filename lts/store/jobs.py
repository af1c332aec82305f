"""The job lifecycle (:mod:`lts.jobs.lifecycle`) applied to each kind's table.

Every kind of background job -- search runs, validation runs, re-measure jobs, DARTS searches --
keeps its row in its own table, with the same lifecycle columns: ``status``, ``message``, ``pid``,
``host``, ``created_at``, ``updated_at``. These functions are the only code that changes those
columns, each change one transaction checked against the state machine, so that the three
launchers and the dashboard cannot drift apart again.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Callable

from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.jobs.process import process_alive
from lts.store.db import Store


@dataclass(frozen=True)
class JobKind:
    """Where one kind of job lives: its table, its key column and the word for it in messages."""

    name: str
    table: str
    key: str
    label: str


SEARCH = JobKind("search", "runs", "run_id", "run")
VALIDATION = JobKind("validation", "validation_runs", "validation_id", "validation")
REMEASURE = JobKind("remeasure", "remeasure_jobs", "job_id", "re-measure job")
# A new kind is a JobKind of its own repository (lts.store.darts.DARTS) over a table with the lifecycle columns.


def _row(conn: sqlite3.Connection, kind: JobKind, job_id: str) -> dict[str, Any] | None:
    cur = conn.execute(f"SELECT * FROM {kind.table} WHERE {kind.key} = ?", (job_id,))
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    return dict(zip(names, row)) if row is not None else None


def _existing(conn: sqlite3.Connection, store: Store, kind: JobKind, job_id: str) -> dict[str, Any]:
    row = _row(conn, kind, job_id)
    if row is None:
        raise LtsError(f"no {kind.label} {job_id!r} in {store.path}")
    return row


def get(store: Store, kind: JobKind, job_id: str) -> dict[str, Any]:
    rows = store.query(f"SELECT * FROM {kind.table} WHERE {kind.key} = ?", (job_id,))
    if not rows:
        raise LtsError(f"no {kind.label} {job_id!r} in {store.path}")
    return rows[0]


def transition(store: Store, kind: JobKind, job_id: str, new: str, **fields: Any) -> dict[str, Any]:
    """Move a job to ``new`` (checked against the lifecycle) and set ``fields``, in one transaction;
    returns the row before the change."""
    with store.write() as conn:
        row = _existing(conn, store, kind, job_id)
        if new != row["status"]:
            lifecycle.check_transition(kind.label, job_id, row["status"], new)
        _update(conn, kind, job_id, status=new, **fields)
    return row


def update(store: Store, kind: JobKind, job_id: str, **fields: Any) -> None:
    """Set non-status columns of a job (progress, message, pid) in one transaction."""
    if "status" in fields:
        raise ValueError("status changes go through transition()")
    with store.write() as conn:
        _update(conn, kind, job_id, **fields)


def _update(conn: sqlite3.Connection, kind: JobKind, job_id: str, **fields: Any) -> None:
    fields.setdefault("updated_at", time.time())
    sets = ", ".join(f"{c} = ?" for c in fields)
    conn.execute(f"UPDATE {kind.table} SET {sets} WHERE {kind.key} = ?", (*fields.values(), job_id))


def claim(store: Store, kind: JobKind, job_id: str, status: str = lifecycle.RUNNING) -> dict[str, Any]:
    """Make this process the one running the job, in one transaction, or refuse with one line when
    another live process on this host owns it (two processes on one job would both do its work)."""
    with store.write() as conn:
        row = _existing(conn, store, kind, job_id)
        refuse_if_owned(kind, row)
        if row["status"] == lifecycle.FINISHED:
            raise LtsError(f"{kind.label} {job_id} has already finished")
        if row["status"] == lifecycle.CANCELLED and row.get("pid") == os.getpid() and row.get("host") is None:
            # launched for this very process (see launched()) and cancelled before it started
            raise LtsError(f"{kind.label} {job_id} was cancelled before it started")
        if row["status"] != status:
            lifecycle.check_transition(kind.label, job_id, row["status"], status)
        _update(conn, kind, job_id, status=status, pid=os.getpid(), host=socket.gethostname())
    return row


def reopen(store: Store, kind: JobKind, job_id: str) -> str:
    """Before launching a process to resume an unfinished job (stopped, cancelled, failed): queue it,
    so that its process's claim is a resume, not a launch that was cancelled before it started.
    Returns the stored status it had; a created or queued job is left as it is."""
    with store.write() as conn:
        row = _existing(conn, store, kind, job_id)
        refuse_if_owned(kind, row)
        if row["status"] not in (lifecycle.CREATED, lifecycle.QUEUED):
            lifecycle.check_transition(kind.label, job_id, row["status"], lifecycle.QUEUED)
            _update(conn, kind, job_id, status=lifecycle.QUEUED, pid=None)
    return row["status"]


def launched(store: Store, kind: JobKind, job_id: str, pid: int) -> None:
    """Record the pid of the process just spawned to run a job, so a page shows it as launched at
    once. No host yet: the process writes it when it claims the job, and a job cancelled between
    the two (pid written, host not) is not started by it (see :func:`claim`)."""
    with store.write() as conn:
        row = _row(conn, kind, job_id)
        if row is not None and not (row["pid"] == pid and row["host"]):  # the process was quicker
            _update(conn, kind, job_id, pid=pid, host=None)


def refuse_if_owned(kind: JobKind, row: dict[str, Any]) -> None:
    if lifecycle.is_owned_elsewhere(row):
        host = row.get("host")
        raise LtsError(f"{kind.label} {row[kind.key]} is already {row['status']} in process {row['pid']}"
                       f"{f' on {host}' if host else ''}: wait for it, or cancel it first")


def cancel(store: Store, kind: JobKind, job_id: str) -> str:
    """Ask a job to stop; one with no live process is marked cancelled at once. Returns the new status."""
    with store.write() as conn:
        row = _existing(conn, store, kind, job_id)
        status = lifecycle.effective_status(row)
        if status not in lifecycle.CANCELLABLE:
            raise LtsError(f"{kind.label} {job_id} is {status}, not running")
        new = lifecycle.CANCELLING if status in (lifecycle.RUNNING, lifecycle.CANCELLING) else lifecycle.CANCELLED
        _update(conn, kind, job_id, status=new)
    return new


def refuse_delete_if_live(kind: JobKind, row: dict[str, Any]) -> None:
    status = lifecycle.effective_status(row)
    if status not in lifecycle.DELETABLE or (status == lifecycle.CREATED and process_alive(row.get("pid"))):
        raise LtsError(f"{kind.label} {row[kind.key]} is {status}: cancel it before deleting it")


def active_rows(conn: sqlite3.Connection, kind: JobKind) -> list[dict[str, Any]]:
    """The rows of a kind's not-ended jobs, read inside the caller's transaction (a concurrency
    limit counted there holds against simultaneous launches)."""
    marks = ", ".join("?" * len(lifecycle.ACTIVE))
    cur = conn.execute(f"SELECT * FROM {kind.table} WHERE status IN ({marks})", lifecycle.ACTIVE)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def admit_below(kind: JobKind, check: Callable[[int], None]) -> Callable[[sqlite3.Connection], None]:
    """An ``admit`` for a kind's inserting transaction: ``check(n)`` with the number of its jobs
    occupying a slot, counted inside that transaction (so simultaneous launches cannot all pass)."""

    def admit(conn: sqlite3.Connection) -> None:
        now = time.time()
        check(sum(1 for r in active_rows(conn, kind) if lifecycle.occupies_slot(r, now)))

    return admit


def occupied_slots(store: Store, kind: JobKind) -> int:
    """How many jobs of a kind run now (from any launcher) or are being launched."""
    if not store.db[kind.table].exists():
        return 0
    with store.snapshot():
        rows = active_rows(store.conn, kind)
    now = time.time()
    return sum(1 for r in rows if lifecycle.occupies_slot(r, now))
