"""Starting, resuming, launching and cancelling searches: the one place the CLI and dashboard share.

A search is first *created* (a ``runs`` row holding its settings, device and measurement
protocol), then *run* by :func:`open_runner` in this process or by :func:`launch_background` in a
detached ``lts search --resume RUN_ID`` process that outlives a browser session. Cancelling writes
``status = 'cancelling'``; the runner checks it before every evaluation and stops cleanly.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from lts.cost.hostlock import WaitAborted, WaitCallback
from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.jobs.process import process_alive, spawn_detached  # noqa: F401 - callers and tests reach them here
from lts.search import defaults
from lts.objectives import GENERATION_OBJECTIVES, Constraints, parse_objectives
from lts.search.runner import SearchRunner, SearchSettings, create_run, memory_limit_of
from lts.search.strategies import EvolutionSettings
from lts.space.ranges import SearchSpace, load_space
from lts.store import jobs, runs
from lts.store.db import Store
from lts.surrogate.assist import SurrogateSettings
from lts.surrogate.drift import DriftSettings

ACTIVE = lifecycle.ACTIVE


@dataclass(frozen=True)
class RunPlan:
    """A search's settings and measurement protocol, checked, before any store or device is touched."""

    settings: SearchSettings
    protocol: Any  # lts.cost.protocol.Protocol, or None for a proxy-only search
    memory_limit_mb: float | None = None


def plan_run(
    space: SearchSpace | str,
    device_name: str | None,
    budget: int | None = None,
    time_budget: float | None = None,
    objectives: str | tuple[str, ...] = defaults.OBJECTIVES,
    constraints: Constraints = Constraints(),
    strategy: str = "evolution",
    seed: int = 0,
    population: int = defaults.POPULATION,
    generation: int = defaults.GENERATION,
    batch: int = 1,
    seq_len: int | None = None,
    threads: int = 1,
    workload: str = "forward",
    prompt_len: int = 64,
    new_tokens: int = 32,
    quant: str = "none",
    backend: str = "torch",
    surrogate: SurrogateSettings | None = None,
    drift: DriftSettings | None = None,
    memory_limit_mb: float | None = None,
) -> RunPlan:
    """Check every setting of a new search (one-line LtsError otherwise); writes nothing, so a refused
    search leaves the database as it was (the CLI plans before it opens the store).

    ``memory_limit_mb``: a candidate needing more is infeasible, its latency not recorded (so is one over a
    ``max_memory_mb`` constraint).
    """
    from lts.cost.protocol import Protocol

    settings = SearchSettings(
        space=load_space(space) if isinstance(space, (str, Path)) else space,
        objectives=parse_objectives(objectives),
        constraints=constraints, strategy=strategy, seed=seed, budget=budget, time_budget=time_budget,
        evolution=EvolutionSettings(population=population, generation=generation),
        surrogate=surrogate, drift=drift or DriftSettings(),
    )
    if memory_limit_mb is not None and not (isinstance(memory_limit_mb, (int, float)) and 0 < memory_limit_mb < float("inf")):
        raise LtsError(f"memory limit must be a positive number of MB, got {memory_limit_mb!r}")
    if settings.needs_measurement and not (device_name and device_name.strip()):
        raise LtsError("a device name is required for a search that measures latency or memory (--device-name NAME)")
    protocol = Protocol(batch=batch, seq_len=seq_len, threads=threads, workload=workload, prompt_len=prompt_len,
                        new_tokens=new_tokens, quant=quant, backend=backend) if settings.needs_measurement else None
    generated = [o for o in settings.objectives if o in GENERATION_OBJECTIVES]
    if generated and (protocol is None or protocol.workload != "generate"):
        raise LtsError(f"objective {generated[0]} is measured by generating: add --workload generate")
    space_ = settings.space
    if protocol is not None and protocol.workload == "generate" and space_.family == "gpt2" \
            and prompt_len + new_tokens > int(space_.fixed.get("tgt_len", 0)):
        raise LtsError(f"generating {prompt_len} + {new_tokens} tokens needs that many positions; this GPT-2 space "
                       f"learns tgt_len={space_.fixed.get('tgt_len')}")
    if surrogate is not None and protocol is not None and protocol.workload == "generate":
        raise LtsError("the cost surrogate models the forward workload; --surrogate cannot assist --workload generate")
    return RunPlan(settings, protocol, float(memory_limit_mb) if memory_limit_mb is not None else None)


def start_run(store: Store, plan: RunPlan, device_name: str | None, ray_address: str | None = None,
              admit: Callable[[sqlite3.Connection], None] | None = None) -> str:
    """Create the planned run on this machine's device; returns its id (nothing is evaluated yet).

    ``admit`` is checked in the transaction that inserts the run (see :func:`create_run`).
    With ``ray_address`` the device is the Ray cluster node declaring ``lts-device:<device_name>``
    (its record detected there) and the run measures there, when run here or resumed anywhere.
    """
    from lts.cost.device import detect_device

    protocol = plan.protocol
    if protocol is not None and device_name and ray_address:
        from lts.cost.remote import detect_ray_device

        device = detect_ray_device(ray_address, device_name.strip(), protocol.kind, protocol.threads)
    else:
        device = detect_device(device_name.strip(), threads=protocol.threads) if protocol and device_name else None
    state: dict[str, Any] = {}
    if protocol is not None:
        state["protocol"] = protocol.to_dict()
        if plan.memory_limit_mb is not None:
            state["memory_limit_mb"] = plan.memory_limit_mb
        if ray_address:
            state["remote"] = {"ray_address": ray_address, "device_name": device_name.strip()}
    return create_run(store, plan.settings, device.to_dict() if device else None,
                      protocol.key if protocol else None, state=state, admit=admit)


def new_run(store: Store, space: SearchSpace | str, device_name: str | None, *,
            ray_address: str | None = None, admit: Callable[[sqlite3.Connection], None] | None = None,
            **settings: Any) -> str:
    """:func:`plan_run` then :func:`start_run`: ``settings`` are plan_run's keyword arguments."""
    return start_run(store, plan_run(space, device_name, **settings), device_name, ray_address, admit)


QUEUED = "queued (position "  # runs.message while a search waits for its device


def queue_reporter(store: Store, run_id: str, check_every_s: float = 1.0) -> WaitCallback:
    """The ``on_wait`` of a run's measurer: writes "queued (position N)" into the run's message while
    it waits for the host's measuring lock, clears it when its turn comes, and leaves the queue
    (:class:`WaitAborted`) when the run is cancelled meanwhile. The status itself is not changed."""
    shown = {"position": None, "checked": 0.0}

    def on_wait(position: int) -> None:
        if position != shown["position"]:
            runs.set_queue_message(store, run_id, f"{QUEUED}{position})" if position > 0 else None, QUEUED)
            shown["position"] = position
        now = time.monotonic()
        if position > 0 and now - shown["checked"] >= check_every_s:
            shown["checked"] = now
            if runs.status(store, run_id) == lifecycle.CANCELLING:
                raise WaitAborted(f"cancelled while queued for the device (position {position})")

    return on_wait


def device_holder() -> str | None:
    """Who holds this host's measuring turn now ("process 1234 (lts measure ...)"), for a queued job's
    note; None when the device is free."""
    from lts.cost.hostlock import HostLock

    return HostLock().describe_holder()


def queue_position(run: Mapping[str, Any]) -> int | None:
    """The queue position a run's row shows (``None`` when it is not waiting for its device)."""
    message = run.get("message")
    if not isinstance(message, str) or not message.startswith(QUEUED):
        return None
    try:
        return int(message[len(QUEUED):].rstrip(")"))
    except ValueError:
        return None


class _QueueAwareRunner(SearchRunner):
    """A runner whose measurer may leave the device queue when the run is cancelled while waiting."""

    def run_to_end(self) -> dict[str, Any]:
        try:
            return super().run_to_end()
        except WaitAborted as exc:  # the runner recorded it as failed; it was a cancel
            self._set_status(lifecycle.CANCELLED, str(exc))
            return self.store.run(self.run_id)


def _owner_device(store: Store, run: Mapping[str, Any]) -> Any:
    from lts.cost.device import DeviceRecord

    return DeviceRecord.from_dict(runs.device_record(store, run["device_id"]))


def _measurer(store: Store, run: Mapping[str, Any], state: Mapping[str, Any]) -> Any:
    """This run's measurer: on this machine, or on its Ray device; checked to be the run's device."""
    from lts.cost.protocol import Protocol

    owner = _owner_device(store, run)
    protocol = Protocol.from_dict(state["protocol"])
    remote = state.get("remote")
    if remote:
        from lts.cost.remote import RayMeasurer

        return _Checked(RayMeasurer(remote["ray_address"], remote["device_name"], protocol,
                                    memory_limit_mb=memory_limit_of(run)), owner, run["run_id"])
    from lts.cost.device import detect_device
    from lts.cost.measure import Measurer

    here = detect_device(owner.name, kind=owner.kind, threads=owner.threads)
    if here.device_id != owner.device_id:
        raise LtsError(
            f"run {run['run_id']} measures on device {owner.name!r} ({owner.device_id}) but this machine is "
            f"{here.device_id}: resume it where it started"
        )
    return Measurer(here, protocol, memory_limit_mb=memory_limit_of(run), on_wait=queue_reporter(store, run["run_id"]))


class _Checked(contextlib.AbstractContextManager):
    """A remote measurer entered only if the node it reaches is still the run's device."""

    def __init__(self, measurer: Any, owner: Any, run_id: str) -> None:
        self.measurer, self.owner, self.run_id = measurer, owner, run_id

    def __enter__(self) -> Any:
        self.measurer.__enter__()
        if self.measurer.device.device_id != self.owner.device_id:
            self.measurer.close()
            raise LtsError(
                f"run {self.run_id} measures on device {self.owner.name!r} ({self.owner.device_id}) but the Ray node "
                f"declaring it is now {self.measurer.device.device_id}: give the new machine its own device name"
            )
        return self.measurer

    def __exit__(self, *exc: object) -> None:
        self.measurer.close()


def open_runner(store: Store, run_id: str, stack: contextlib.ExitStack) -> SearchRunner:
    """A runner for ``run_id`` with its device's measurer (closed with ``stack``): this machine's, or
    the Ray cluster node's for a run created with ``ray_address``.

    Refuses a finished run, and a run whose measurements belong to another device. A local
    measurer waits its turn for the host (:mod:`lts.cost.hostlock`), showing "queued (position N)"
    as the run's message meanwhile; cancelling the run while it waits stops it as cancelled.
    """
    run = store.run(run_id)
    if run["status"] == "finished":
        raise LtsError(f"run {run_id} has already finished")
    _refuse_if_owned(run)  # early, before starting workers; claim() below decides for good
    state = runs.settings_of_row(run)
    measure = None
    if run["device_id"]:
        measurer = stack.enter_context(_measurer(store, run, state))
        measure = lambda cfg: measurer.measure(cfg).to_dict()  # noqa: E731
    claim(store, run_id)
    return _QueueAwareRunner(store, run_id, measure=measure)


def _refuse_if_owned(run: Mapping[str, Any]) -> None:
    jobs.refuse_if_owned(jobs.SEARCH, dict(run))


def claim(store: Store, run_id: str) -> None:
    """Make this process the one running ``run_id``, in one transaction, or refuse with one line when
    another live process on this host runs it (two processes on one run would both measure and
    insert the same evaluations; the second would fail on them and mark the run failed)."""
    jobs.claim(store, jobs.SEARCH, run_id)


def launch_background(db_path: str | Path, run_id: str, log_dir: str | Path | None = None) -> int:
    """Run ``lts search --resume RUN_ID`` detached (own session, survives the caller); returns its pid."""
    args = ["search", "--resume", run_id, "--db", str(db_path), "--no-progress"]
    return spawn_detached(args, db_path, f"{run_id}.log", log_dir)


def effective_status(run: Mapping[str, Any]) -> str:
    """The stored status, or 'stopped' for a run whose process died without saying so (kill -9)."""
    return lifecycle.effective_status(run)


def cancel(store: Store, run_id: str) -> str:
    """Ask a run to stop; a run with no live process is marked cancelled at once. Returns the new status."""
    return jobs.cancel(store, jobs.SEARCH, run_id)


def delete_run(store: Store, run_id: str) -> dict[str, int]:
    """Delete a run, its members, predictions and drift checks; returns the rows removed per table.

    Architectures and measurements stay: they are the cache every run on that device shares.
    A run whose process is alive is refused (cancel it first).
    """
    jobs.refuse_delete_if_live(jobs.SEARCH, store.run(run_id))
    return runs.delete(store, run_id)
