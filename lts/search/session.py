"""Starting, resuming, launching and cancelling searches: the one place the CLI and dashboard share.

A search is first *created* (a ``runs`` row holding its settings, device and measurement
protocol), then *run* by :func:`open_runner` in this process or by :func:`launch_background` in a
detached ``lts search --resume RUN_ID`` process that outlives a browser session. Cancelling writes
``status = 'cancelling'``; the runner checks it before every evaluation and stops cleanly.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from lts.errors import LtsError
from lts.search.objectives import Constraints, parse_objectives
from lts.search.runner import SearchRunner, SearchSettings, create_run
from lts.search.strategies import EvolutionSettings
from lts.space.ranges import SearchSpace, load_space
from lts.store.db import Store

ACTIVE = ("created", "running", "cancelling")


def new_run(
    store: Store,
    space: SearchSpace | str,
    device_name: str | None,
    budget: int | None = None,
    time_budget: float | None = None,
    objectives: str | tuple[str, ...] = "proxy,latency,memory",
    constraints: Constraints = Constraints(),
    strategy: str = "evolution",
    seed: int = 0,
    population: int = 20,
    generation: int = 10,
    batch: int = 1,
    seq_len: int | None = None,
    threads: int = 1,
) -> str:
    """Create a run on this machine's device; returns its id (nothing is evaluated yet)."""
    from lts.cost.device import detect_device
    from lts.cost.protocol import Protocol

    settings = SearchSettings(
        space=load_space(space) if isinstance(space, (str, Path)) else space,
        objectives=parse_objectives(objectives),
        constraints=constraints, strategy=strategy, seed=seed, budget=budget, time_budget=time_budget,
        evolution=EvolutionSettings(population=population, generation=generation),
    )
    if settings.needs_measurement and not (device_name and device_name.strip()):
        raise LtsError("a device name is required for a search that measures latency or memory")
    protocol = Protocol(batch=batch, seq_len=seq_len, threads=threads) if settings.needs_measurement else None
    device = detect_device(device_name.strip(), threads=threads) if protocol and device_name else None
    run_id = create_run(store, settings, device.to_dict() if device else None, protocol.key if protocol else None)
    if protocol is not None:
        with store.write() as conn:
            state = json.loads(store.run(run_id)["state_json"] or "{}")
            state["protocol"] = protocol.to_dict()
            conn.execute("UPDATE runs SET state_json = ? WHERE run_id = ?", (json.dumps(state), run_id))
    return run_id


def open_runner(store: Store, run_id: str, stack: contextlib.ExitStack) -> SearchRunner:
    """A runner for ``run_id`` with this device's measurer (closed with ``stack``).

    Refuses a finished run, and a run whose measurements belong to another device.
    """
    run = store.run(run_id)
    if run["strategy"] == "darts":
        raise LtsError(f"run {run_id} is a differentiable search (lts darts), not resumable by lts search")
    if run["status"] == "finished":
        raise LtsError(f"run {run_id} has already finished")
    state = json.loads(run["state_json"] or "{}")
    measure = None
    if run["device_id"]:
        from lts.cost.device import DeviceRecord, detect_device
        from lts.cost.measure import Measurer
        from lts.cost.protocol import Protocol

        rows = store.query("SELECT record_json FROM devices WHERE device_id = ?", (run["device_id"],))
        owner = DeviceRecord.from_dict(json.loads(rows[0]["record_json"]))
        here = detect_device(owner.name, kind=owner.kind, threads=owner.threads)
        if here.device_id != owner.device_id:
            raise LtsError(
                f"run {run_id} measures on device {owner.name!r} ({owner.device_id}) but this machine is "
                f"{here.device_id}: resume it where it started"
            )
        measurer = stack.enter_context(Measurer(here, Protocol.from_dict(state["protocol"])))
        measure = lambda cfg: measurer.measure(cfg).to_dict()  # noqa: E731
    return SearchRunner(store, run_id, measure=measure)


def launch_background(db_path: str | Path, run_id: str, log_dir: str | Path | None = None) -> int:
    """Run ``lts search --resume RUN_ID`` detached (own session, survives the caller); returns its pid."""
    args = ["search", "--resume", run_id, "--db", str(db_path), "--no-progress"]
    return spawn_detached(args, db_path, f"{run_id}.log", log_dir)


def spawn_detached(lts_args: list[str], db_path: str | Path, log_name: str, log_dir: str | Path | None = None) -> int:
    """Start ``python -m lts.cli *lts_args`` in its own session, output appended to a log beside the
    database (``logs/``), so it outlives the caller (a browser session, a CLI); returns its pid."""
    log_dir = Path(log_dir) if log_dir else Path(db_path).resolve().parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / log_name, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lts.cli", *lts_args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc.pid


def process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child that nobody waited for is a zombie: not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def effective_status(run: dict[str, Any]) -> str:
    """The stored status, or 'stopped' for a run whose process died without saying so (kill -9)."""
    status = run["status"]
    if status in ("running", "cancelling") and not process_alive(run.get("pid")):
        return "stopped"
    return status


def cancel(store: Store, run_id: str) -> str:
    """Ask a run to stop; a run with no live process is marked cancelled at once. Returns the new status."""
    run = store.run(run_id)
    status = effective_status(run)
    if status not in ACTIVE and status != "stopped":
        raise LtsError(f"run {run_id} is {status}, not running")
    new = "cancelling" if status in ("running", "cancelling") else "cancelled"
    with store.write() as conn:
        conn.execute("UPDATE runs SET status = ?, updated_at = ? WHERE run_id = ?", (new, time.time(), run_id))
    return new
