"""The job state machine, shared by every kind of background job.

::

    created -> queued -> running -> finished | failed | cancelled
        \\________\\________> cancelling -> cancelled
    (any active status whose process has died without saying so reads as ``stopped``)

``stopped`` is never stored: it is what :func:`effective_status` reports for a row whose status
says a process owns it (``queued``, ``running``, ``cancelling``, or ``created`` once a pid was
written) while that process is gone -- a ``kill -9``, a reboot. A stopped job may be resumed or
cancelled like any unfinished one. ``created`` with no pid is a job nobody has started yet (the
CLI creates then runs in the same process; the dashboard creates then spawns).
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable, Mapping

from lts.errors import LtsError

CREATED, QUEUED, RUNNING, CANCELLING = "created", "queued", "running", "cancelling"
FINISHED, FAILED, CANCELLED, STOPPED = "finished", "failed", "cancelled", "stopped"
IMPORTED = "imported"  # a run imported from a results bundle: its own device runs it, nothing here does
INTERRUPTED = "interrupted"  # earlier releases' Ctrl-C (now: cancelled); read as cancelled
STATUSES = (CREATED, QUEUED, RUNNING, CANCELLING, FINISHED, FAILED, CANCELLED, STOPPED, IMPORTED)

ACTIVE = (CREATED, QUEUED, RUNNING, CANCELLING)  # stored statuses of a job not yet ended
ENDED = (FINISHED, FAILED, CANCELLED, IMPORTED, INTERRUPTED)
CANCELLABLE = ACTIVE + (STOPPED,)  # effective statuses a cancel applies to
DELETABLE = ENDED + (STOPPED, CREATED)  # effective statuses a delete applies to (a live created job is refused)

# Stored status -> stored statuses it may move to. A failed or cancelled job may run again (resume).
_NEXT: dict[str, frozenset[str]] = {
    CREATED: frozenset({QUEUED, RUNNING, CANCELLING, CANCELLED, FAILED}),
    QUEUED: frozenset({QUEUED, RUNNING, CANCELLING, CANCELLED, FAILED}),
    RUNNING: frozenset({RUNNING, QUEUED, CANCELLING, FINISHED, FAILED, CANCELLED}),
    CANCELLING: frozenset({CANCELLING, CANCELLED, FAILED, FINISHED, RUNNING, QUEUED}),  # resumed after its process died
    FINISHED: frozenset(),
    FAILED: frozenset({QUEUED, RUNNING, CANCELLED}),
    CANCELLED: frozenset({QUEUED, RUNNING}),
    INTERRUPTED: frozenset({QUEUED, RUNNING, CANCELLED}),
    IMPORTED: frozenset(),
}
_OWNED = (QUEUED, RUNNING, CANCELLING)  # a process has said it owns the job

# A job launched in the background is inserted before its process is spawned (the pid is written a
# moment later): a fresh created/queued row without a pid is a launch in flight, not a dead job.
STARTING_S = 120.0


def check_transition(kind: str, job_id: str, old: str, new: str) -> None:
    """Refuse, with one line, a status change the lifecycle does not allow (e.g. finished -> running)."""
    if new not in _NEXT or new == INTERRUPTED:
        raise LtsError(f"{kind} {job_id}: unknown status {new!r}")
    if new not in _NEXT.get(old, frozenset()):
        raise LtsError(f"{kind} {job_id} is {old}: it cannot become {new}")


def _in_flight(row: Mapping[str, Any], now: float) -> bool:
    since = row.get("updated_at") or row.get("created_at")
    return row.get("pid") is None and since is not None and now - float(since) < STARTING_S


def effective_status(row: Mapping[str, Any], alive: Callable[[int | None], bool] | None = None,
                     now: float | None = None) -> str:
    """The stored status, or ``stopped`` when the process that owns the job has died without saying so."""
    from lts.jobs.process import process_alive

    alive = alive or process_alive
    status, pid = row["status"], row.get("pid")
    if status == QUEUED and pid is None and _in_flight(row, time.time() if now is None else now):
        return status
    if status in _OWNED and not alive(pid):
        return STOPPED
    if status == CREATED and pid and not alive(pid):
        return STOPPED
    return status


def occupies_slot(row: Mapping[str, Any], now: float | None = None,
                  alive: Callable[[int | None], bool] | None = None) -> bool:
    """Whether the job counts against a concurrency limit: its process runs, or it is being launched."""
    from lts.jobs.process import process_alive

    alive = alive or process_alive
    now = time.time() if now is None else now
    status = effective_status(row, alive, now)
    if status in (RUNNING, CANCELLING):
        return True
    if status not in (CREATED, QUEUED):
        return False
    return alive(row.get("pid")) or _in_flight(row, now)


def is_owned_elsewhere(row: Mapping[str, Any], alive: Callable[[int | None], bool] | None = None) -> bool:
    """Whether another live process on this host owns the job (a second one must be refused)."""
    from lts.jobs.process import process_alive

    alive = alive or process_alive
    pid, host = row.get("pid"), row.get("host")
    return bool(row["status"] in ACTIVE and pid and pid != os.getpid()
                and host in (None, socket.gethostname()) and alive(pid))
