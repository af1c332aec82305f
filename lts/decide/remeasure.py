"""Re-measure architectures on this host: a fresh measurement replaces the cached one, the old one is kept.

``measurements`` is the cache every reader (fronts, runs, bundles) joins on, one row per
(architecture, device, protocol); re-measuring moves the current row to ``measurement_history``
(schema v4) and writes the new one, in one transaction per architecture, so the views show the
new value and the old one stays available side by side.

The dashboard queues a request (a ``remeasure_jobs`` row) and runs it in a detached
``lts remeasure --job JOB_ID`` process (:func:`lts.search.session.spawn_detached`), so it survives
the browser session. All measuring goes through :func:`measure_on_host`, the one place where the
host's measuring resources are taken (a host-wide lock belongs there).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import pandas as pd

from lts.decide.provenance import protocol_from_key
from lts.errors import LtsError
from lts.space.config import Config, config_from_json
from lts.store.db import Store

MeasureFn = Callable[[Config], Mapping[str, Any]]
MEASUREMENT_FIELDS = ("arch_id", "device_id", "protocol", "latency_ms", "latency_cv", "repeats", "peak_memory_mb",
                      "infeasible", "seconds", "measured_at")


@dataclass(frozen=True)
class RemeasureRequest:
    arch_ids: tuple[str, ...]
    device_name: str
    protocol: str | None = None  # key; None: the protocol the architecture was last measured under here
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.arch_ids:
            raise LtsError("give at least one architecture id to re-measure")
        if not self.device_name or not self.device_name.strip():
            raise LtsError("a device name is required (--device-name)")


def measure_on_host(device: Any, protocol: Any, configs: Sequence[Config], timeout_s: float = 120.0,
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
    rows = store.query(
        f"""SELECT x.arch_id, x.protocol FROM measurements x JOIN devices d USING (device_id)
            WHERE d.name = ? AND x.arch_id IN ({','.join('?' * len(arch_ids))}) ORDER BY x.measured_at""",
        [device_name, *arch_ids])
    latest = {r["arch_id"]: r["protocol"] for r in rows}
    return {a: latest.get(a, Protocol().key) for a in arch_ids}


def replace_measurement(store: Store, new: Mapping[str, Any], job_id: str | None = None) -> None:
    """Keep the current row for (arch, device, protocol) in the history and store ``new`` in its place."""
    key = (new["arch_id"], new["device_id"], new["protocol"])
    with store.write() as conn:
        conn.execute(
            f"""INSERT OR IGNORE INTO measurement_history ({','.join(MEASUREMENT_FIELDS)}, replaced_at, job_id)
                SELECT {','.join(MEASUREMENT_FIELDS)}, ?, ? FROM measurements
                WHERE arch_id = ? AND device_id = ? AND protocol = ?""", (time.time(), job_id, *key))
        conn.execute("DELETE FROM measurements WHERE arch_id = ? AND device_id = ? AND protocol = ?", key)
        store.insert_measurement(conn, {**new, "measured_at": new.get("measured_at") or time.time()})


def _configs(store: Store, arch_ids: Sequence[str]) -> dict[str, Config]:
    rows = store.query(f"SELECT arch_id, config_json FROM architectures WHERE arch_id IN ({','.join('?' * len(arch_ids))})",
                       list(arch_ids))
    found = {r["arch_id"]: config_from_json(r["config_json"]) for r in rows}
    missing = [a for a in arch_ids if a not in found]
    if missing:
        raise LtsError(f"no architecture {missing[0]!r} in {store.path}")
    return found


def _set_job(store: Store, job_id: str | None, **fields: Any) -> None:
    if job_id is None:
        return
    sets = ", ".join(f"{k} = ?" for k in fields)
    with store.write() as conn:
        conn.execute(f"UPDATE remeasure_jobs SET {sets}, updated_at = ? WHERE job_id = ?",
                     (*fields.values(), time.time(), job_id))


QUEUED = "queued (position "  # remeasure_jobs.message while the job waits for the host, as runs show it


def job_queue_reporter(store: Store, job_id: str) -> Callable[[int], None]:
    """The ``on_wait`` of a job's measurer: "queued (position N)" in the job's message while it waits
    for the host (the page shows it beside the status, as the Search page does for searches)."""
    shown: dict[str, int | None] = {"position": None}

    def on_wait(position: int) -> None:
        if position == shown["position"]:
            return  # called on every poll: write only changes
        with store.write() as conn:
            if position > 0:
                conn.execute("UPDATE remeasure_jobs SET message = ?, updated_at = ? WHERE job_id = ?",
                             (f"{QUEUED}{position})", time.time(), job_id))
            else:
                conn.execute("UPDATE remeasure_jobs SET message = NULL, updated_at = ? WHERE job_id = ?"
                             " AND message LIKE ?", (time.time(), job_id, QUEUED + "%"))
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
    _set_job(store, job_id, status="running", pid=os.getpid(), host=socket.gethostname())
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
            with store.write() as conn:
                store.upsert_device(conn, record)
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
                _set_job(store, job_id, n_done=done)
                if on_result is not None:
                    on_result(row)
    except BaseException as exc:
        _set_job(store, job_id, status="failed", message=f"{type(exc).__name__}: {exc}".splitlines()[0])
        raise
    _set_job(store, job_id, status="finished", message=f"{done} re-measured")
    return side_by_side(store, keys)


def _device_record(record: Mapping[str, Any]) -> Any:
    from lts.cost.device import DeviceRecord

    return DeviceRecord.from_dict(record)


def side_by_side(store: Store, keys: Sequence[tuple[str, str, str]]) -> pd.DataFrame:
    """Per (arch, device, protocol): the latest earlier measurement and the current one, with the change."""
    rows = []
    for arch_id, device_id, protocol in keys:
        new = store.measurement(arch_id, device_id, protocol)
        old = store.query(
            "SELECT * FROM measurement_history WHERE arch_id = ? AND device_id = ? AND protocol = ?"
            " ORDER BY measured_at DESC LIMIT 1", (arch_id, device_id, protocol))
        old = old[0] if old else {}
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
    from lts.search.session import spawn_detached

    _configs(store, request.arch_ids)  # unknown ids fail here, in the caller, not in a background log
    if request.protocol is not None:
        protocol_from_key(request.protocol)
    job_id = uuid.uuid4().hex[:12]
    now = time.time()
    with store.write() as conn:
        conn.execute(
            "INSERT INTO remeasure_jobs (job_id, device_name, protocol, arch_ids_json, status, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?)",
            (job_id, request.device_name.strip(), request.protocol, json.dumps(list(request.arch_ids)), "queued", now, now))
    args = ["remeasure", *request.arch_ids, "--device-name", request.device_name.strip(), "--db", str(db_path),
            "--job", job_id, "--timeout", str(request.timeout_s)]
    if request.protocol:
        args += ["--protocol", request.protocol]
    pid = spawn_detached(args, db_path, f"remeasure-{job_id}.log")
    _set_job(store, job_id, pid=pid)
    return job_id


def jobs(store: Store) -> pd.DataFrame:
    """Re-measure requests, newest first; a running job whose process is gone reads 'stopped'."""
    from lts.search.session import process_alive

    df = pd.read_sql_query("SELECT * FROM remeasure_jobs ORDER BY created_at DESC", store.conn)
    if len(df):
        dead = df["status"].isin(["queued", "running"]) & ~df["pid"].map(
            lambda p: process_alive(int(p)) if pd.notna(p) else False)
        stale = dead & (time.time() - df["updated_at"] > 10)  # a just-queued job may not have its pid yet
        df.loc[stale, "status"] = "stopped"
        df["n_archs"] = df["arch_ids_json"].map(lambda s: len(json.loads(s)))
    return df


def job_keys(store: Store, job_id: str) -> list[tuple[str, str, str]]:
    """The (arch, device, protocol) keys a job has measured so far (also those never measured before)."""
    job = store.query("SELECT * FROM remeasure_jobs WHERE job_id = ?", (job_id,))
    if not job:
        raise LtsError(f"no re-measure job {job_id!r} in {store.path}")
    ids = json.loads(job[0]["arch_ids_json"])
    rows = store.query(
        f"""SELECT x.arch_id, x.device_id, x.protocol FROM measurements x JOIN devices d USING (device_id)
            WHERE d.name = ? AND x.measured_at >= ? AND x.arch_id IN ({','.join('?' * len(ids))})
            ORDER BY x.measured_at""", [job[0]["device_name"], job[0]["created_at"], *ids])
    return [(r["arch_id"], r["device_id"], r["protocol"]) for r in rows]


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
