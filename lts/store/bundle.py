"""Results bundles: one JSON file carrying runs with their devices, architectures and measurements.

A device without the dashboard exports its runs (``lts export-run``) and the team imports them
(``lts import``). Import is all-or-nothing and idempotent:

* the file is validated against :data:`BUNDLE_SCHEMA` (jsonschema) and every architecture config
  is rebuilt, its id recomputed and compared, before anything is written;
* everything is inserted in one IMMEDIATE transaction with ``INSERT OR IGNORE``, so a second import
  of the same bundle adds nothing and a failure half-way leaves the database as it was.

A bundle is also a *reproducibility* record: besides every evaluation (members in order, with their
measurements) it carries, per run, a ``reproduce`` entry with the decoded settings (space,
objectives, constraints, strategy, seed, budget, evolution settings, measurement protocol), the
device record, the package versions it ran with and its front. Replaced measurements
(``measurement_history``, kept by re-measuring) travel too. Both are optional, so bundles from
earlier releases still import; ``lts.decide.repro`` re-runs an imported run on another machine.
"""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema

from lts import __version__
from lts.errors import LtsError
from lts.space.config import config_from_json
from lts.store.db import Store

FORMAT = "lts-results-bundle"
VERSION = 1
MAX_BYTES = 200 * 1024 * 1024

_num = {"type": ["number", "null"]}
_str = {"type": ["string", "null"]}
BUNDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "version", "devices", "architectures", "measurements", "runs", "members"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": VERSION},
        "lts_version": {"type": "string"},
        "exported_at": {"type": "number"},
        "devices": {"type": "array", "items": {
            "type": "object", "required": ["device_id", "name", "kind", "record"],
            "properties": {"device_id": {"type": "string", "minLength": 1}, "name": {"type": "string"},
                           "kind": {"type": "string"}, "record": {"type": "object"}}}},
        "architectures": {"type": "array", "items": {
            "type": "object", "required": ["arch_id", "config"],
            "properties": {"arch_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "config": {"type": "object"}}}},
        "measurements": {"type": "array", "items": {
            "type": "object", "required": ["arch_id", "device_id", "protocol"],
            "properties": {"arch_id": {"type": "string"}, "device_id": {"type": "string"},
                           "protocol": {"type": "string"}, "latency_ms": _num, "latency_cv": _num,
                           "repeats": {"type": ["integer", "null"]}, "peak_memory_mb": _num,
                           "infeasible": _str, "seconds": _num, "measured_at": _num}}},
        "runs": {"type": "array", "items": {
            "type": "object",
            "required": ["run_id", "family", "space_json", "strategy", "objectives_json", "constraints_json",
                         "seed", "status", "created_at", "updated_at"],
            "properties": {"run_id": {"type": "string", "minLength": 1}, "family": {"type": "string"},
                           "space_json": {"type": "string"}, "strategy": {"type": "string"},
                           "objectives_json": {"type": "string"}, "constraints_json": {"type": "string"},
                           "seed": {"type": "integer"}, "status": {"type": "string"},
                           "device_id": _str, "protocol": _str}}},
        "members": {"type": "array", "items": {
            "type": "object", "required": ["run_id", "arch_id", "eval_index", "generation", "feasible", "on_frontier"],
            "properties": {"run_id": {"type": "string"}, "arch_id": {"type": "string"},
                           "eval_index": {"type": "integer"}, "generation": {"type": "integer"},
                           "feasible": {"type": "integer"}, "on_frontier": {"type": "integer"}}}},
        "measurement_history": {"type": "array", "items": {
            "type": "object", "required": ["arch_id", "device_id", "protocol", "measured_at", "replaced_at"],
            "properties": {"arch_id": {"type": "string"}, "device_id": {"type": "string"},
                           "protocol": {"type": "string"}, "latency_ms": _num, "latency_cv": _num,
                           "repeats": {"type": ["integer", "null"]}, "peak_memory_mb": _num, "infeasible": _str,
                           "seconds": _num, "measured_at": {"type": "number"}, "replaced_at": {"type": "number"},
                           "job_id": _str}}},
        "reproduce": {"type": "array", "items": {
            "type": "object", "required": ["run_id", "settings", "packages", "front"],
            "properties": {"run_id": {"type": "string"}, "settings": {"type": "object"},
                           "device": {"type": ["object", "null"]}, "packages": {"type": "object"},
                           "front": {"type": "array", "items": {"type": "string"}}}}},
    },
}

RUN_COLUMNS = ("run_id", "family", "space_json", "strategy", "objectives_json", "constraints_json", "seed",
               "budget", "time_budget", "device_id", "protocol", "status", "message", "n_evaluated",
               "frontier_size", "hypervolume", "elapsed", "state_json", "created_at", "updated_at")
MEASUREMENT_COLUMNS = ("arch_id", "device_id", "protocol", "latency_ms", "latency_cv", "repeats",
                       "peak_memory_mb", "infeasible", "seconds", "measured_at")
MEMBER_COLUMNS = ("run_id", "arch_id", "eval_index", "generation", "feasible", "on_frontier")
HISTORY_COLUMNS = MEASUREMENT_COLUMNS + ("replaced_at", "job_id")
PACKAGES = ("lts", "torch", "numpy", "pandas", "scipy", "pymoo", "streamlit", "plotly")


def package_versions() -> dict[str, str | None]:
    """Python, platform and the versions of the packages that shape a run's results."""
    out: dict[str, str | None] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["lts"] = out["lts"] or __version__
    return out


def run_settings(run: dict[str, Any]) -> dict[str, Any]:
    """A run's settings decoded from its row: what re-running it needs."""
    state = json.loads(run["state_json"] or "{}")
    return {"family": run["family"], "space": json.loads(run["space_json"]), "strategy": run["strategy"],
            "objectives": json.loads(run["objectives_json"]), "constraints": json.loads(run["constraints_json"]),
            "seed": run["seed"], "budget": run["budget"], "time_budget": run["time_budget"],
            "evolution": state.get("evolution"), "protocol": state.get("protocol"), "protocol_key": run["protocol"],
            **{k: state[k] for k in ("surrogate", "drift") if k in state}}


def reproduction_entry(run: dict[str, Any], devices: dict[str, dict[str, Any]], members: list[dict[str, Any]],
                       packages: dict[str, str | None]) -> dict[str, Any]:
    return {"run_id": run["run_id"], "settings": run_settings(run), "device": devices.get(run["device_id"]),
            "packages": packages, "n_evaluations": len(members), "hypervolume": run["hypervolume"],
            "front": [m["arch_id"] for m in members if m["on_frontier"]]}


def export_runs(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """A bundle with the given runs and everything they reference."""
    runs = [store.run(r) for r in run_ids]  # raises a clear error for an unknown id
    ph = ",".join("?" * len(run_ids))
    members = store.query(f"SELECT * FROM run_members WHERE run_id IN ({ph}) ORDER BY run_id, eval_index", run_ids)
    arch_ids = sorted({m["arch_id"] for m in members})
    device_ids = sorted({r["device_id"] for r in runs if r["device_id"]})
    archs = store.query(
        f"SELECT arch_id, config_json FROM architectures WHERE arch_id IN (SELECT arch_id FROM run_members"
        f" WHERE run_id IN ({ph})) ORDER BY arch_id", run_ids)
    measurements = store.query(
        f"SELECT x.* FROM measurements x JOIN runs r ON x.device_id = r.device_id AND x.protocol = r.protocol"
        f" JOIN run_members m ON m.run_id = r.run_id AND m.arch_id = x.arch_id WHERE r.run_id IN ({ph})"
        f" ORDER BY x.arch_id", run_ids)
    devices = store.query(
        f"SELECT * FROM devices WHERE device_id IN ({','.join('?' * len(device_ids))})", device_ids
    ) if device_ids else []
    assert len(archs) == len(arch_ids)
    history = store.query(
        f"SELECT h.* FROM measurement_history h JOIN runs r ON h.device_id = r.device_id AND h.protocol = r.protocol"
        f" JOIN run_members m ON m.run_id = r.run_id AND m.arch_id = h.arch_id WHERE r.run_id IN ({ph})"
        f" ORDER BY h.arch_id, h.measured_at", run_ids) if "measurement_history" in store.db.table_names() else []
    records = {d["device_id"]: json.loads(d["record_json"]) for d in devices}
    packages = package_versions()
    return {
        "format": FORMAT,
        "version": VERSION,
        "lts_version": __version__,
        "exported_at": time.time(),
        "devices": [{"device_id": d["device_id"], "name": d["name"], "kind": d["kind"],
                     "record": json.loads(d["record_json"])} for d in devices],
        "architectures": [{"arch_id": a["arch_id"], "config": json.loads(a["config_json"])} for a in archs],
        "measurements": [{k: m[k] for k in MEASUREMENT_COLUMNS} for m in measurements],
        "runs": [{k: r[k] for k in RUN_COLUMNS} for r in runs],
        "members": [{k: m[k] for k in MEMBER_COLUMNS} for m in members],
        "measurement_history": [{k: h[k] for k in HISTORY_COLUMNS} for h in _unique_history(history)],
        "reproduce": [reproduction_entry(r, records, [m for m in members if m["run_id"] == r["run_id"]], packages)
                      for r in runs],
    }


def _unique_history(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per history key (two runs sharing a device and protocol would repeat it)."""
    seen, out = set(), []
    for h in rows:
        key = (h["arch_id"], h["device_id"], h["protocol"], h["measured_at"])
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def write_bundle(store: Store, run_ids: list[str], path: str | Path) -> dict[str, int]:
    bundle = export_runs(store, run_ids)
    Path(path).write_text(json.dumps(bundle, sort_keys=True))
    return {k: len(bundle[k]) for k in ("runs", "architectures", "measurements", "devices")}


def parse_bundle(data: bytes | str, source: str = "bundle") -> dict[str, Any]:
    """Decode and validate; raises LtsError with one line naming what is wrong."""
    if len(data) > MAX_BYTES:
        raise LtsError(f"{source}: {len(data) / 2**20:.0f} MB is over the {MAX_BYTES // 2**20} MB bundle limit")
    try:
        bundle = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LtsError(f"{source}: not a JSON file ({str(exc).splitlines()[0]})") from None
    try:
        jsonschema.validate(bundle, BUNDLE_SCHEMA)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "top level"
        raise LtsError(f"{source}: not a valid lts bundle at {where}: {exc.message}") from None
    for a in bundle["architectures"]:
        try:
            cfg = config_from_json(json.dumps(a["config"]))
        except LtsError as exc:
            raise LtsError(f"{source}: architecture {a['arch_id']}: {exc}") from None
        if cfg.arch_id != a["arch_id"]:
            raise LtsError(f"{source}: architecture {a['arch_id']}: id does not match its config ({cfg.arch_id})")
    known_archs = {a["arch_id"] for a in bundle["architectures"]}
    known_devices = {d["device_id"] for d in bundle["devices"]}
    known_runs = {r["run_id"] for r in bundle["runs"]}
    for m in bundle["measurements"]:
        if m["arch_id"] not in known_archs or m["device_id"] not in known_devices:
            raise LtsError(f"{source}: a measurement refers to an architecture or device not in the bundle")
    for m in bundle["members"]:
        if m["arch_id"] not in known_archs or m["run_id"] not in known_runs:
            raise LtsError(f"{source}: a run member refers to an architecture or run not in the bundle")
    for r in bundle["runs"]:
        if r.get("device_id") and r["device_id"] not in known_devices:
            raise LtsError(f"{source}: run {r['run_id']} refers to a device not in the bundle")
    for h in bundle.get("measurement_history", []):
        if h["arch_id"] not in known_archs or h["device_id"] not in known_devices:
            raise LtsError(f"{source}: an earlier measurement refers to an architecture or device not in the bundle")
    for e in bundle.get("reproduce", []):
        if e["run_id"] not in known_runs:
            raise LtsError(f"{source}: a reproduce entry refers to run {e['run_id']}, not in the bundle")
    return bundle


def import_bundle(store: Store, data: bytes | str, source: str = "bundle") -> dict[str, int]:
    """Validate, then insert all of it in one transaction; returns how many rows were new."""
    bundle = parse_bundle(data, source)
    before = _counts(store)
    with store.write() as conn:
        for d in bundle["devices"]:
            store.upsert_device(conn, {**d["record"], "device_id": d["device_id"], "name": d["name"], "kind": d["kind"]})
        for a in bundle["architectures"]:
            store.upsert_architecture(conn, config_from_json(json.dumps(a["config"])))
        for m in bundle["measurements"]:
            store.insert_measurement(conn, m)
        for r in bundle["runs"]:
            row = {k: r.get(k) for k in RUN_COLUMNS}
            if row["status"] in ("running", "created", "cancelling"):
                row["status"] = "imported"  # nothing runs it here; resuming belongs to the device that owns it
            for key, default in (("n_evaluated", 0), ("frontier_size", 0), ("elapsed", 0.0)):
                row[key] = row[key] if row[key] is not None else default
            conn.execute(
                f"INSERT OR IGNORE INTO runs ({','.join(RUN_COLUMNS)}) VALUES ({','.join('?' * len(RUN_COLUMNS))})",
                [row[k] for k in RUN_COLUMNS],
            )
        conn.executemany(
            f"INSERT OR IGNORE INTO run_members ({','.join(MEMBER_COLUMNS)}) VALUES ({','.join('?' * len(MEMBER_COLUMNS))})",
            [[m[k] for k in MEMBER_COLUMNS] for m in bundle["members"]],
        )
        conn.executemany(
            f"INSERT OR IGNORE INTO measurement_history ({','.join(HISTORY_COLUMNS)})"
            f" VALUES ({','.join('?' * len(HISTORY_COLUMNS))})",
            [[h.get(k) for k in HISTORY_COLUMNS] for h in bundle.get("measurement_history", [])],
        )
    after = _counts(store)
    return {k: after[k] - before[k] for k in after}


def _counts(store: Store) -> dict[str, int]:
    return {t: store.db[t].count for t in ("runs", "devices", "architectures", "measurements", "run_members")}
