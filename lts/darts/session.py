"""Launching, listing and cancelling DARTS searches: what the CLI and the dashboard share.

Mirrors :mod:`lts.validate.session`. A search is first *created* (:func:`lts.darts.search.create_darts`:
the corpus read, the tokenizer prepared, the settings fixed in a ``darts_runs`` row), then run by
:func:`lts.darts.search.run_darts_job` in this process or in a detached ``lts darts --resume ID``
process (:func:`launch_background`). Status, cancel and the dead-process rule are the one job
lifecycle (:mod:`lts.jobs`, :data:`lts.store.darts.DARTS`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from lts.jobs import lifecycle
from lts.jobs.process import spawn_detached
from lts.store import darts as repo
from lts.store import jobs
from lts.store.db import Store

ACTIVE = lifecycle.ACTIVE


def default_cache_dir(db_path: str | Path) -> Path:
    """Tokenizers and encoded corpora are cached beside the database (shared with validations)."""
    return Path(db_path).resolve().parent / "cache"


def effective_status(row: Any) -> str:
    return lifecycle.effective_status(row)


def list_darts(store: Store) -> list[repo.DartsRun]:
    """Every DARTS run, newest first, with its effective status (a dead process shows 'stopped')."""
    return [replace(r, status=effective_status(r)) for r in repo.list_all(store)]


def active_darts(store: Store) -> list[repo.DartsRun]:
    """DARTS runs not yet ended, by effective status (a stopped one is not active)."""
    return [r for r in list_darts(store) if r.status in ACTIVE]


def launch_background(db_path: str | Path, darts_id: str, log_dir: str | Path | None = None) -> int:
    """Run ``lts darts --resume ID`` detached (own session, outlives the caller); returns its pid."""
    args = ["darts", "--resume", darts_id, "--db", str(db_path), "--no-progress"]
    return spawn_detached(args, db_path, f"darts-{darts_id}.log", log_dir)


def start(store: Store, db_path: str | Path, darts_id: str) -> int:
    """Spawn a created (or stopped, cancelled, failed) DARTS run's process and record its pid; a run
    whose process could not start is marked failed. Returns the pid."""
    from lts.errors import LtsError

    jobs.reopen(store, repo.DARTS, darts_id)  # a resume: its process's claim must not read as a cancelled launch
    try:
        pid = launch_background(db_path, darts_id)
    except OSError as exc:
        repo.end(store, darts_id, lifecycle.FAILED, f"could not start its process: {exc}")
        raise LtsError(f"DARTS run {darts_id}: could not start its process ({exc})") from None
    jobs.launched(store, repo.DARTS, darts_id, pid)  # shows as launched at once, before the process says so
    return pid


def launch(store: Store, db_path: str | Path, settings: Any,
           admit: Callable[[Any], None] | None = None) -> str:
    """Create a DARTS search and start it in a detached process; returns its id."""
    from lts.darts.search import create_darts

    darts_id = create_darts(store, settings, default_cache_dir(db_path), admit=admit)
    start(store, db_path, darts_id)
    return darts_id


def cancel_darts(store: Store, darts_id: str) -> str:
    """Ask a DARTS run to stop (it saves a checkpoint first); one with no live process is marked
    cancelled at once. Returns the new status."""
    return jobs.cancel(store, repo.DARTS, darts_id)


def delete_darts(store: Store, darts_id: str) -> None:
    """Delete an ended DARTS run and its checkpoint file (its derived architecture stays)."""
    row = repo.get(store, darts_id)
    repo.delete(store, darts_id)
    for path in {row.checkpoint_path, str(repo.checkpoint_path(store, darts_id))}:
        if path:
            Path(path).unlink(missing_ok=True)
