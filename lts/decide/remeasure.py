"""Re-measure architectures on this host: a fresh measurement replaces the cached one, the old one is kept.

``measurements`` is the cache every reader (fronts, runs, bundles) joins on, one row per
(architecture, device, protocol); re-measuring moves the current row to ``measurement_history``
(schema v4) and writes the new one, in one transaction per architecture, so the views show the
new value and the old one stays available side by side.

The dashboard queues a request (a ``remeasure_jobs`` row) and runs it in a detached
``lts remeasure --job JOB_ID`` process (:func:`lts.jobs.process.spawn_detached`), so it survives
the browser session; the job follows the one lifecycle of :mod:`lts.jobs.lifecycle` (its status
changes go through :mod:`lts.store.jobs`, kind ``REMEASURE``). All measuring goes through :func:`measure_on_host`, the one place where the
host's measuring resources are taken (a host-wide lock belongs there).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd

from lts.cost.protocol import CANDIDATE_TIMEOUT_S
from lts.decide.provenance import protocol_from_key
from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.space.config import Config, config_from_json
from lts.store import jobs as store_jobs
from lts.store import measurements as store_measurements
from lts.store import reads
from lts.store.db import Store
from lts.store.measurements import MEASUREMENT_FIELDS  # noqa: F401  importable from here, as before

MeasureFn = Callable[[Config], Mapping[str, Any]]
REMEASURE = store_jobs.REMEASURE
JOB_COLUMNS = ["job_id", "device_name", "protocol", "arch_ids_json", "status", "n_done", "message", "pid", "host",
               "created_at", "updated_at", "n_archs"]


@dataclass(frozen=True)
class RemeasureRequest:
    arch_ids: tuple[str, ...]
    device_name: str
    protocol: str | None = None  # key; None: the protocol the architecture was last measured under here
    timeout_s: float = CANDIDATE_TIMEOUT_S

    def __post_init__(self) -> None:
        if not self.arch_ids:
            raise LtsError("give at least one architecture id to re-measure")
        if not self.device_name or not self.device_name.strip():
            raise LtsError("a device name is required (--device-name)")


def measure_on_host(device: Any, protocol: Any, configs: Sequence[Config], timeout_s: float = CANDIDATE_TIMEOUT_S,
                    on_wait: Callable[[int], None] | None = None) -> Iterator[dict[str, Any]]:
    """Measure ``configs`` on this machine, one dict per config as it is taken.

    Each measurement waits its turn in the host's measuring queue; ``on_wait(position)`` hears
    where it stands meanwhile (0 once its turn comes)."""
    from lts.cost.measure import Measurer

    with Measurer(device, protocol, timeout_s=timeout_s, on_wait=on_wait) as measurer:
        for cfg in configs:
            yield measurer.measure(cfg).to_dict()


def choose_protocols(store: Store, arch_ids: Sequence[str], device_name: str, key: str | None = None) -> dict[str, str]:
    """Protocol key per architecture: ``key``, else its latest measurement's on a device of that name, else the default."""
    from lts.cost.protocol import Protocol

    if key is not None:
        return {a: key for a in arch_ids}
    latest = store_measurements.latest_protocols(store, device_name, arch_ids)
    return {a: latest.get(a, Protocol().key) for a in arch_ids}


def replace_measurement(store: Store, new: Mapping[str, Any], job_id: str | None = None) -> None:
    """Keep the current row for (arch, device, protocol) in the history and store ``new`` in its place."""
    store_measurements.replace(store, new, job_id)


def _configs(store: Store, arch_ids: Sequence[str]) -> dict[str, Config]:
    found = {a: config_from_json(c) for a, c in reads.architecture_configs(store, arch_ids).items()}
    missing = [a for a in arch_ids if a not in found]
    if missing:
        raise LtsError(f"no architecture {missing[0]!r} in {store.path}")
    return found


def _update_job(store: Store, job_id: str | None, **fields: Any) -> None:
    if job_id is not None:
        store_jobs.update(store, REMEASURE, job_id, **fields)


def _end_job(store: Store, job_id: str | None, status: str, message: str) -> None:
    if job_id is not None:
        store_jobs.transition(store, REMEASURE, job_id, status, message=message)


def _cancel_requested(store: Store, job_id: str | None) -> bool:
    return job_id is not None and store_jobs.get(store, REMEASURE, job_id)["status"] == lifecycle.CANCELLING


QUEUED = "queued (position "  # remeasure_jobs.message while the job waits for the host, as runs show it


def job_queue_reporter(store: Store, job_id: str) -> Callable[[int], None]:
    """The ``on_wait`` of a job's measurer: "queued (position N)" in the job's message while it waits
    for the host (the page shows it beside the status, as the Search page does for searches)."""
    shown: dict[str, int | None] = {"position": None}

    def on_wait(position: int) -> None:
        if position == shown["position"]:
            return  # called on every poll: write only changes
        if position > 0:
            store_jobs.update(store, REMEASURE, job_id, message=f"{QUEUED}{position})")
        elif (store_jobs.get(store, REMEASURE, job_id)["message"] or "").startswith(QUEUED):
            store_jobs.update(store, REMEASURE, job_id, message=None)
        shown["position"] = position

    return on_wait


def remeasure(store: Store, request: RemeasureRequest, measure: MeasureFn | None = None,
              device: Mapping[str, Any] | None = None, job_id: str | None = None,
              on_result: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Measure the requested architectures again; returns old and new side by side.

    By default on this host (``detect_device`` under ``request.device_name`` with the protocol's
    threads) through :func:`measure_on_host`; tests pass ``measure`` and ``device`` instead.
    """
    configs = _configs(store, request.arch_ids)
    protocols = choose_protocols(store, request.arch_ids, request.device_name, request.protocol)
    by_protocol: dict[str, list[str]] = defaultdict(list)
    for arch_id in request.arch_ids:
        by_protocol[protocols[arch_id]].append(arch_id)
    if job_id is not None:  # this process runs the job now (refused while another live one does)
        store_jobs.claim(store, REMEASURE, job_id)
    done, keys = 0, []
    on_wait = job_queue_reporter(store, job_id) if job_id is not None else None
    try:
        for key, ids in by_protocol.items():
            if device is None:
                from lts.cost.device import detect_device

                protocol = protocol_from_key(key)
                record = detect_device(request.device_name, kind=protocol.kind, threads=protocol.threads).to_dict()
            else:  # an injected measure function: the key need not name a real protocol
                record = dict(device)
            store_measurements.save_device(store, record)
            cfgs = [configs[a] for a in ids]
            results = (iter(dict(measure(c)) for c in cfgs) if measure is not None
                       else measure_on_host(_device_record(record), protocol_from_key(key), cfgs, request.timeout_s,
                                       on_wait))
            for cfg, result in zip(cfgs, results):
                row = {**result, "arch_id": cfg.arch_id, "device_id": record["device_id"], "protocol": key,
                       "measured_at": time.time()}
                replace_measurement(store, row, job_id)
                keys.append((cfg.arch_id, record["device_id"], key))
                done += 1
                _update_job(store, job_id, n_done=done)
                if on_result is not None:
                    on_result(row)
                if _cancel_requested(store, job_id):
                    _end_job(store, job_id, lifecycle.CANCELLED, f"cancelled after {done} re-measured")
                    return side_by_side(store, keys)
    except BaseException as exc:
        _end_job(store, job_id, lifecycle.FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    _end_job(store, job_id, lifecycle.FINISHED, f"{done} re-measured")
    return side_by_side(store, keys)


def _device_record(record: Mapping[str, Any]) -> Any:
    from lts.cost.device import DeviceRecord

    return DeviceRecord.from_dict(record)


def side_by_side(store: Store, keys: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
    """Per (arch, device, protocol): the latest earlier measurement and the current one, with the change."""
    rows = []
    for arch_id, device_id, protocol in keys:
        new = store.measurement(arch_id, device_id, protocol)
        old = store_measurements.last_replaced(store, arch_id, device_id, protocol) or {}
        new = new or {}
        row = {"arch_id": arch_id, "device_id": device_id, "protocol": protocol}
        for field in ("latency_ms", "latency_cv", "repeats", "peak_memory_mb", "infeasible", "measured_at"):
            row[f"old_{field}"], row[f"new_{field}"] = old.get(field), new.get(field)
        o, n = row["old_latency_ms"], row["new_latency_ms"]
        row["latency_change_pct"] = 100 * (n / o - 1) if o and n else None
        rows.append(row)
    return pd.DataFrame(rows)


def queue_remeasure(store: Store, db_path: str | Path, request: RemeasureRequest) -> str:
    """Record a request and start ``lts remeasure --job`` detached; returns the job id."""
    from lts.jobs import process

    _configs(store, request.arch_ids)  # unknown ids fail here, in the caller, not in a background log
    if request.protocol is not None:
        protocol_from_key(request.protocol)
    job_id = uuid.uuid4().hex[:12]
    store_measurements.create_remeasure_job(store, job_id, request.device_name.strip(), request.protocol,
                                            request.arch_ids, lifecycle.QUEUED)
    args = ["remeasure", *request.arch_ids, "--device-name", request.device_name.strip(), "--db", str(db_path),
            "--job", job_id, "--timeout", str(request.timeout_s)]
    if request.protocol:
        args += ["--protocol", request.protocol]
    try:
        pid = process.spawn_detached(args, db_path, f"remeasure-{job_id}.log")
    except OSError as exc:  # else the job would read as being launched until STARTING_S passes
        store_jobs.transition(store, REMEASURE, job_id, lifecycle.FAILED, message=f"could not start its process: {exc}")
        raise LtsError(f"re-measure job {job_id}: could not start its process ({exc})") from None
    store_jobs.launched(store, REMEASURE, job_id, pid)
    return job_id


def jobs(store: Store) -> pd.DataFrame:
    """Re-measure requests, newest first, with their effective status (:func:`lts.jobs.lifecycle.effective_status`:
    an active job whose process is gone reads 'stopped'; one being launched reads 'queued')."""
    rows = store_measurements.remeasure_job_rows(store)
    for r in rows:
        r["status"] = lifecycle.effective_status(r)
        r["n_archs"] = len(store_measurements.RemeasureJob.from_row(r).arch_ids)
    return pd.DataFrame(rows, columns=JOB_COLUMNS)


def cancel_job(store: Store, job_id: str) -> str:
    """Ask a re-measure job to stop after its current measurement (one with no live process is cancelled
    at once); returns its new status."""
    return store_jobs.cancel(store, REMEASURE, job_id)


def job_keys(store: Store, job_id: str) -> list[tuple[str, str, str]]:
    """The (arch, device, protocol) keys a job has measured so far (also those never measured before)."""
    job = store_measurements.remeasure_job(store, job_id)
    return store_measurements.measured_since(store, job.device_name, job.created_at, job.arch_ids)


def this_host_devices(store: Store) -> list[str]:
    """Names of the stored CPU devices that are this machine (same detected id), to re-measure under."""
    from lts.cost.device import detect_device

    names = []
    for d in store.devices():
        record = json.loads(d["record_json"])
        if d["kind"] != "cpu":
            continue
        try:
            here = detect_device(d["name"], kind="cpu", threads=int(record.get("threads") or 1))
        except LtsError:
            continue
        if here.device_id == d["device_id"]:
            names.append(d["name"])
    return list(dict.fromkeys(names))
