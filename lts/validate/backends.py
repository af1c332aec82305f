"""Where training jobs run: in this process, in local worker processes, or on a Ray cluster.

Jobs are independent (one architecture each), so every backend has the same shape: give it the
jobs, get ``(arch_id, outcome)`` pairs back in completion order. Only the caller writes to the
database; workers compute and return. ``should_stop`` is polled about once a second, so a
cancelled or interrupted validation stops its workers without waiting for the jobs in flight.

Local workers are *spawned* (not forked: a forked copy of a process that already ran torch can
hang in its thread pool) and load the encoded corpus from the token cache, one small ``.npz``
read per job. Ray workers cannot see this machine's cache, so the token arrays go through Ray's
object store once per validation.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import traceback
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from lts.errors import LtsError

POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Job:
    arch_id: str
    config_json: str
    recipe: dict[str, Any]
    tokens_path: str


@dataclass(frozen=True)
class Outcome:
    """A finished job: a result dict (TrainResult fields) or a one-line error."""

    result: dict[str, Any] | None = None
    error: str | None = None


def _train(job: Job, train_tokens: Any, valid_tokens: Any) -> Outcome:
    from lts.space.config import config_from_json
    from lts.validate.recipe import Recipe
    from lts.validate.training import train

    try:
        res = train(config_from_json(job.config_json), train_tokens, valid_tokens, Recipe.from_dict(job.recipe))
    except Exception as exc:  # one bad architecture (diverged, out of memory) must not stop the others
        first = (str(exc).splitlines() or [""])[0]
        return Outcome(error=f"{type(exc).__name__}: {first}"[:500])
    return Outcome(result=asdict(res))


def run_local_job(job: Job) -> Outcome:
    """Entry point of a local job (picklable, top-level): load the tokens and train."""
    from lts.text.tokenizer import TokenData

    try:
        data = TokenData.load(job.tokens_path)
    except Exception:
        return Outcome(error=f"cannot read the token cache {job.tokens_path}: {traceback.format_exc(limit=1)!r}"[:500])
    return _train(job, data.train, data.valid)


def run_in_process(jobs: list[Job], should_stop: Callable[[], bool]) -> Iterator[tuple[str, Outcome]]:
    for job in jobs:
        if should_stop():
            return
        yield job.arch_id, run_local_job(job)


def _terminate(executor: cf.ProcessPoolExecutor) -> None:
    # Python 3.14 has terminate_workers(); before that the process table is the only handle.
    if hasattr(executor, "terminate_workers"):
        executor.terminate_workers()
        return
    for proc in list(getattr(executor, "_processes", {}).values()):
        if proc.is_alive():
            proc.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


def _exit_with_parent(parent_pid: int) -> None:
    """Pool initializer: end this worker when the process that started it dies (``kill -9`` included).

    Otherwise a killed validation leaves its workers training jobs whose results nobody will record.
    """
    from lts.lifetime import exit_with_parent

    exit_with_parent(parent_pid, poll_s=0.5)


def run_in_pool(jobs: list[Job], workers: int, should_stop: Callable[[], bool]) -> Iterator[tuple[str, Outcome]]:
    executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                      initializer=_exit_with_parent, initargs=(os.getpid(),))
    futures = {executor.submit(run_local_job, job): job.arch_id for job in jobs}
    clean = False
    try:
        pending = set(futures)
        while pending:
            done, pending = cf.wait(pending, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                try:
                    outcome = fut.result()
                except cf.process.BrokenProcessPool:
                    outcome = Outcome(error="the worker process died (killed, or out of memory)")
                yield futures[fut], outcome
            if pending and should_stop():
                return
        clean = True
    finally:
        if clean:
            executor.shutdown(wait=True)
        else:  # stopped, interrupted, or the consumer went away: do not wait for jobs in flight
            _terminate(executor)


def require_ray() -> Any:
    """The ``ray`` module, or one clear line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise LtsError("--ray-address needs Ray, which is not installed here: pip install 'ray>=2.9'") from None
    return ray


def run_on_ray(jobs: list[Job], address: str, should_stop: Callable[[], bool]) -> Iterator[tuple[str, Outcome]]:
    """Run the jobs as Ray tasks (one CPU per job's torch thread) on the cluster at ``address``.

    ``address`` is what ``ray.init`` takes: ``auto``, ``local`` (a fresh local cluster),
    ``HOST:PORT`` or ``ray://HOST:PORT``. Every node needs lts and torch installed.
    """
    ray = require_ray()
    from lts.text.tokenizer import TokenData

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as exc:
            raise LtsError(f"cannot connect to the Ray cluster at {address!r}: {(str(exc).splitlines() or [''])[0]}") from None
    try:
        data = TokenData.load(jobs[0].tokens_path) if jobs else None
        train_ref = ray.put(data.train) if data is not None else None
        valid_ref = ray.put(data.valid) if data is not None else None
        remote = ray.remote(num_cpus=max(1, int(jobs[0].recipe.get("threads", 1))) if jobs else 1)(_train)
        refs = {remote.remote(job, train_ref, valid_ref): job.arch_id for job in jobs}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # a Ray worker or node died under the task
                    outcome = Outcome(error=f"Ray task failed: {(str(exc).splitlines() or [''])[0]}"[:500])
                yield refs[ref], outcome
            if pending and should_stop():
                for ref in pending:
                    ray.cancel(ref, force=True)
                return
    finally:
        if started_here:
            ray.shutdown()


def run_jobs(
    jobs: list[Job],
    workers: int = 1,
    ray_address: str | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[tuple[str, Outcome]]:
    """Run ``jobs`` on the chosen backend; yields ``(arch_id, Outcome)`` as each finishes."""
    if ray_address:
        return run_on_ray(jobs, ray_address, should_stop)
    if workers <= 1 or len(jobs) <= 1:
        return run_in_process(jobs, should_stop)
    return run_in_pool(jobs, min(workers, len(jobs)), should_stop)
