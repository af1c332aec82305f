"""The calls a dashboard page makes for anything that occupies the host or changes data.

Each one checks the user's role (:func:`lts.team.auth.require`), then the dashboard's limits
(:class:`lts.team.limits.Limits`), does the work with the ordinary lts function, and writes an
audit entry (:mod:`lts.team.audit`) whatever the outcome. A refusal raises
:class:`~lts.team.auth.PermissionDenied` or :class:`~lts.team.limits.LimitExceeded` (both
``LtsError``: one line for ``st.error``), before anything is started or changed.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.store import jobs as store_jobs
from lts.store.db import Store
from lts.team import audit
from lts.team.auth import PermissionDenied, User, require
from lts.team.limits import LimitExceeded, Limits


@contextmanager
def _audited(store: Store, user: User | None, action: str, target: str | None,
             detail: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Record the block's outcome; the block may fill in ``entry["target"]`` / ``entry["detail"]``."""
    entry: dict[str, Any] = {"target": target, "detail": dict(detail or {})}
    try:
        yield entry
    except (PermissionDenied, LimitExceeded) as exc:
        audit.record(store, user, action, entry["target"], "denied", {**entry["detail"], "reason": str(exc)})
        raise
    except LtsError as exc:
        audit.record(store, user, action, entry["target"], "failed", {**entry["detail"], "reason": str(exc)})
        raise
    audit.record(store, user, action, entry["target"], "ok", entry["detail"] or None)


def running_searches(store: Store) -> int:
    """Searches running now in this database (from any launcher), or launched and about to start."""
    return store_jobs.occupied_slots(store, store_jobs.SEARCH)


def running_validations(store: Store) -> int:
    """Validation runs running now (from any launcher), or launched and about to start."""
    return store_jobs.occupied_slots(store, store_jobs.VALIDATION)


def _admit(limits: Limits, kind: store_jobs.JobKind, what: str) -> Callable[[sqlite3.Connection], None]:
    """The concurrency check, run inside the transaction that inserts the new job."""
    return store_jobs.admit_below(kind, lambda n: limits.check_concurrent(n, what))


def _admit_search(limits: Limits) -> Callable[[sqlite3.Connection], None]:
    return _admit(limits, store_jobs.SEARCH, "searches")


# -- searches ----------------------------------------------------------------------------------
def launch_search(user: User | None, store: Store, db_path: str | Path, space: Any, device_name: str | None, *,
                  limits: Limits, ray_address: str | None = None, **settings: Any) -> str:
    """Create a search and start it in a detached ``lts search --resume`` process; returns its run id.

    ``settings`` are :func:`lts.search.session.new_run`'s keyword arguments (budget, time_budget,
    objectives, constraints, strategy, seed, population, generation, batch, seq_len, threads, ...).
    With ``ray_address`` the search measures on the Ray device ``device_name``.
    """
    from lts.search.session import new_run

    detail = {"device": device_name, "budget": settings.get("budget"), "time_budget": settings.get("time_budget"),
              "ray_address": ray_address, "family": getattr(space, "family", str(space))}
    with _audited(store, user, "launch_search", f"search on {device_name or 'proxy only'}", detail) as entry:
        require(user, "launch", "launch searches")
        limits.check_search(settings.get("budget"), settings.get("time_budget"))
        limits.check_concurrent(running_searches(store), "searches")  # early, before detecting the device
        run_id = new_run(store, space, device_name, ray_address=ray_address, admit=_admit_search(limits), **settings)
        entry["target"] = run_id
        _start(store, db_path, run_id)
    return run_id


def reproduce_search(user: User | None, store: Store, db_path: str | Path, source_run_id: str,
                     device_name: str | None, *, limits: Limits) -> str:
    """Re-run an (imported) run here with its settings and seed (:func:`lts.decide.repro.reproduce_run`),
    started like :func:`launch_search` and held to the same limits; returns the new run id."""
    from lts.decide.repro import reproduce_run
    from lts.search.runner import settings_of

    detail = {"reproduces": source_run_id, "device": device_name}
    with _audited(store, user, "launch_search", f"re-run of {source_run_id}", detail) as entry:
        require(user, "launch", "launch searches")
        settings = settings_of(store.run(source_run_id))
        entry["detail"].update(budget=settings.budget, time_budget=settings.time_budget)
        limits.check_search(settings.budget, settings.time_budget)
        limits.check_concurrent(running_searches(store), "searches")
        run_id = reproduce_run(store, source_run_id, device_name=device_name, admit=_admit_search(limits))
        entry["target"] = run_id
        _start(store, db_path, run_id)
    return run_id


def _start(store: Store, db_path: str | Path, run_id: str) -> None:
    """Spawn the run's process and record its pid; a run that could not be spawned is marked failed
    (else it would hold a place under the concurrency limit until :data:`lts.jobs.STARTING_S` passes)."""
    from lts.search.session import launch_background

    try:
        pid = launch_background(db_path, run_id)
    except OSError as exc:
        store_jobs.transition(store, store_jobs.SEARCH, run_id, lifecycle.FAILED,
                              message=f"could not start its process: {exc}")
        raise LtsError(f"run {run_id}: could not start its process ({exc})") from None
    store_jobs.launched(store, store_jobs.SEARCH, run_id, pid)


def cancel_search(user: User | None, store: Store, run_id: str) -> str:
    """Ask a search to stop (see :func:`lts.search.session.cancel`); returns its new status."""
    from lts.search.session import cancel

    with _audited(store, user, "cancel_search", run_id):
        require(user, "cancel", "cancel searches")
        return cancel(store, run_id)


def delete_run(user: User | None, store: Store, run_id: str) -> dict[str, int]:
    """Delete a search run (not a running one); returns rows removed per table."""
    from lts.search.session import delete_run as delete

    with _audited(store, user, "delete_run", run_id) as entry:
        require(user, "delete", "delete runs")
        removed = delete(store, run_id)
        entry["detail"] = removed
        return removed


# -- data ----------------------------------------------------------------------------------------
def import_bundle(user: User | None, store: Store, data: bytes, source: str, *, limits: Limits) -> dict[str, int]:
    """Import a results bundle (validated, all-or-nothing, idempotent); returns new rows per table."""
    from lts.search.exchange import import_bundle as do_import

    with _audited(store, user, "import_bundle", source, {"bytes": len(data)}) as entry:
        require(user, "import", "import bundles")
        limits.check_upload(len(data))
        added = do_import(store, data, source)
        entry["detail"] = {"bytes": len(data), **added}
        return added


# -- validation runs and re-measurements ------------------------------------------------------------
def launch_validation(user: User | None, store: Store, db_path: str | Path, form: Any, *, limits: Limits) -> str:
    """Start a validation run from the page's :class:`lts.validate.page.LaunchForm`; returns its id."""
    from lts.validate.page import launch

    detail = {"family": form.family, "n_archs": form.n_archs, "steps": form.steps, "workers": form.workers,
              "run_id": form.run_id or None}
    with _audited(store, user, "launch_validation", "validation", detail) as entry:
        require(user, "launch", "launch validation runs")
        limits.check_validation(form.n_archs, form.steps)
        limits.check_concurrent(running_validations(store), "validation runs")
        validation_id = launch(store, db_path, form,
                               admit=_admit(limits, store_jobs.VALIDATION, "validation runs"))
        entry["target"] = validation_id
        return validation_id


def cancel_validation(user: User | None, store: Store, validation_id: str) -> str:
    from lts.validate.session import cancel_validation as cancel

    with _audited(store, user, "cancel_validation", validation_id):
        require(user, "cancel", "cancel validation runs")
        return cancel(store, validation_id)


def queue_remeasure(user: User | None, store: Store, db_path: str | Path, request: Any, *, limits: Limits) -> str:
    """Queue a re-measurement (:class:`lts.decide.remeasure.RemeasureRequest`) in a detached process."""
    from lts.decide.remeasure import queue_remeasure as queue

    detail = {"device": request.device_name, "architectures": len(request.arch_ids)}
    with _audited(store, user, "remeasure", f"{len(request.arch_ids)} architectures on {request.device_name}",
                  detail) as entry:
        require(user, "launch", "launch re-measurements")
        limits.check_search(len(request.arch_ids), None)
        job_id = queue(store, db_path, request)
        entry["target"] = job_id
        return job_id


# -- DARTS searches ----------------------------------------------------------------------------------
def launch_darts(user: User | None, store: Store, db_path: str | Path, settings: Any, *, limits: Limits) -> str:
    """Create a DARTS search (:class:`lts.darts.search.DartsSettings`) and start it detached; returns its id."""
    from lts.darts.session import launch
    from lts.store.darts import DARTS

    detail = {"steps": settings.steps, "layers": settings.spec.n_layer, "d_model": settings.spec.d_model}
    with _audited(store, user, "launch_darts", "DARTS run", detail) as entry:
        require(user, "launch", "launch DARTS searches")
        limits.check_darts(settings.steps)
        darts_id = launch(store, db_path, settings, admit=_admit(limits, DARTS, "DARTS runs"))
        entry["target"] = darts_id
        return darts_id


def resume_darts(user: User | None, store: Store, db_path: str | Path, darts_id: str) -> int:
    """Continue a stopped, cancelled or failed DARTS search from its last checkpoint, detached."""
    from lts.darts.session import start

    with _audited(store, user, "resume_darts", darts_id):
        require(user, "launch", "launch DARTS searches")
        return start(store, db_path, darts_id)


def cancel_darts(user: User | None, store: Store, darts_id: str) -> str:
    from lts.darts.session import cancel_darts as cancel

    with _audited(store, user, "cancel_darts", darts_id):
        require(user, "cancel", "cancel DARTS searches")
        return cancel(store, darts_id)


# -- cost surrogates ----------------------------------------------------------------------------
def fit_surrogate(user: User | None, store: Store, device_name: str, objective: str,
                  protocol: str | None = None, seed: int = 0) -> Any:
    """Fit a new surrogate version (``lts surrogate fit``) for an operator; audited like a launch. It runs
    in the caller (seconds: a linear or GP model on at most a few hundred measurements)."""
    from lts.surrogate.data import resolve
    from lts.surrogate.fit import fit_surrogate as fit

    detail = {"device": device_name, "objective": objective, "protocol": protocol}
    with _audited(store, user, "fit_surrogate", device_name, detail) as entry:
        require(user, "launch", "fit surrogates")
        device_id, protocol = resolve(store, device_name, protocol)
        s = fit(store, device_id, protocol, objective, seed=seed)
        entry["detail"] = {**detail, "protocol": protocol, "version": s.version, "train_n": len(s.train_ids)}
        return s
