"""Results bundles: one JSON file carrying runs with their devices, architectures and measurements.

A device without the dashboard exports its runs (``lts export-run``) and the team imports them
(``lts import``). Import is all-or-nothing, idempotent and never corrupts the store:

* the file is decoded strictly (no NaN/Infinity, no lone surrogates, bounded nesting), validated
  against :data:`BUNDLE_SCHEMA` (jsonschema: types, ranges, id patterns, sizes), then checked
  across rows (:func:`parse_bundle`): every architecture config is rebuilt and its id recomputed,
  a run's settings are parsed as lts itself parses them on resume, members are unique and numbered
  0..n-1, references resolve, duplicate rows agree;
* everything is inserted in one IMMEDIATE transaction. A run already here must be identical
  (then nothing is added) or the import is refused: merging foreign members into a local run
  would corrupt it. Measurements are a cache, so a local one is kept and the bundle's counted as
  skipped. A failure half-way leaves the database as it was.

A bundle is also a *reproducibility* record: besides every evaluation (members in order, with their
measurements) it carries, per run, a ``reproduce`` entry with the decoded settings (space,
objectives, constraints, strategy, seed, budget, evolution settings, measurement protocol), the
device record, the package versions it ran with and its front. Replaced measurements
(``measurement_history``, kept by re-measuring) travel too. Both are optional, so bundles from
earlier releases still import; ``lts.decide.repro`` re-runs an imported run on another machine.
"""

from __future__ import annotations

import json
import math
import platform
import re
import sqlite3
import time
from importlib import metadata
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import jsonschema

from lts import __version__
from lts.cost.device import KINDS
from lts.errors import LtsError
from lts.space.config import CONFIG_TYPES, config_from_json
from lts.store.db import LEGACY_DARTS_RUNS, MEASUREMENT_FIELDS, Store, run_statements
from lts.store.runs import merged_state, progress_json, split_state

FORMAT = "lts-results-bundle"
VERSION = 1
MAX_BYTES = 200 * 1024 * 1024

# Ids become file names, URL parts and log names elsewhere: no path separators, dots or spaces.
# lts makes run/job/validation ids of 12 hex digits and device/architecture ids of 16.
ID_PATTERN = "^[A-Za-z0-9_-]{1,64}$"
ARCH_ID_PATTERN = "^[0-9a-f]{16}$"
PROTOCOL_PATTERN = "^[A-Za-z0-9_.:+=-]{1,128}$"  # e.g. torch-cpu-b1-sdefault-t1
MAX_INT = 2**63 - 1  # SQLite's INTEGER; a larger JSON integer would fail half-way through the insert
MAX_TIME = 4102444800.0  # 2100-01-01: beyond it time.localtime() in `lts runs` overflows, or it is a mistake
MAX_TEXT = 64 * 1024  # free text (messages, reasons, names)
MAX_SPACE = 64 * 1024  # a space is a few hundred bytes; a huge one stalled the Front quality page
MAX_SMALL_JSON = 4 * 1024  # objectives, constraints
MAX_STATE = 16 * 2**20  # search state: RNG state, scales; a DARTS run's training history
MAX_RECORD = 64 * 1024  # one device record
RUN_STATUSES = ("created", "running", "cancelling", "cancelled", "interrupted", "failed", "finished", "imported")
LIVE_STATUSES = ("running", "created", "cancelling")  # imported as "imported": nothing runs it here
STRATEGIES = ("evolution", "random", "optuna-nsga2", "optuna-tpe", "optuna-gp", "darts")  # lts.search.strategies.STRATEGIES plus lts.darts

_id = {"type": "string", "pattern": ID_PATTERN}
_arch_id = {"type": "string", "pattern": ARCH_ID_PATTERN}
_protocol = {"type": "string", "pattern": PROTOCOL_PATTERN}
_text = {"type": ["string", "null"], "maxLength": MAX_TEXT}
_time = {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIME}
_amount = {"type": ["number", "null"], "minimum": 0}  # latencies, memory, seconds, spreads


def _int(minimum: int = 0, null: bool = False) -> dict[str, Any]:
    return {"type": ["integer", "null"] if null else "integer", "minimum": minimum, "maximum": MAX_INT}


def _json_text(max_length: int, null: bool = False) -> dict[str, Any]:
    return {"type": ["string", "null"] if null else "string", "maxLength": max_length}


_flag = {"type": "integer", "enum": [0, 1]}
_MEASUREMENT = {
    "arch_id": _arch_id, "device_id": _id, "protocol": _protocol, "latency_ms": _amount, "latency_cv": _amount,
    "repeats": _int(null=True), "peak_memory_mb": _amount, "infeasible": _text, "seconds": _amount,
    "measured_at": _time, "prefill_ms": _amount, "decode_ms_per_token": _amount, "decode_p90_ms": _amount,
    "tokens_per_s": _amount,
}
BUNDLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "version", "devices", "architectures", "measurements", "runs", "members"],
    "properties": {
        "format": {"const": FORMAT},
        "version": {"const": VERSION},
        "lts_version": {"type": "string", "maxLength": 100},
        "exported_at": _time,
        "devices": {"type": "array", "items": {
            "type": "object", "required": ["device_id", "name", "kind", "record"],
            "properties": {"device_id": _id, "name": {"type": "string", "minLength": 1, "maxLength": 256},
                           "kind": {"enum": list(KINDS)}, "record": {"type": "object"}}}},
        "architectures": {"type": "array", "items": {
            "type": "object", "required": ["arch_id", "config"],
            "properties": {"arch_id": _arch_id, "config": {"type": "object"}}}},
        "measurements": {"type": "array", "items": {
            "type": "object", "required": ["arch_id", "device_id", "protocol", "measured_at"],
            "properties": _MEASUREMENT}},
        "runs": {"type": "array", "items": {
            "type": "object",
            "required": ["run_id", "family", "space_json", "strategy", "objectives_json", "constraints_json",
                         "seed", "status", "created_at", "updated_at"],
            "properties": {"run_id": _id, "family": {"enum": list(CONFIG_TYPES)},
                           "space_json": _json_text(MAX_SPACE), "strategy": {"enum": list(STRATEGIES)},
                           "objectives_json": _json_text(MAX_SMALL_JSON),
                           "constraints_json": _json_text(MAX_SMALL_JSON),
                           "seed": {"type": "integer", "minimum": -MAX_INT - 1, "maximum": MAX_INT},
                           "budget": _int(1, null=True),
                           "time_budget": {"type": ["number", "null"], "exclusiveMinimum": 0},
                           "device_id": {**_id, "type": ["string", "null"]},
                           "protocol": {**_protocol, "type": ["string", "null"]},
                           "status": {"enum": list(RUN_STATUSES)}, "message": _text,
                           "n_evaluated": _int(null=True), "frontier_size": _int(null=True),
                           "hypervolume": _amount, "elapsed": _amount, "state_json": _json_text(MAX_STATE, null=True),
                           "created_at": _time, "updated_at": _time}}},
        "members": {"type": "array", "items": {
            "type": "object", "required": ["run_id", "arch_id", "eval_index", "generation", "feasible", "on_frontier"],
            "properties": {"run_id": _id, "arch_id": _arch_id, "eval_index": _int(), "generation": _int(),
                           "feasible": _flag, "on_frontier": _flag}}},
        "measurement_history": {"type": "array", "items": {
            "type": "object", "required": ["arch_id", "device_id", "protocol", "measured_at", "replaced_at"],
            "properties": {**_MEASUREMENT, "replaced_at": _time, "job_id": {**_id, "type": ["string", "null"]}}}},
        "reproduce": {"type": "array", "items": {
            "type": "object", "required": ["run_id", "settings", "packages", "front"],
            "properties": {"run_id": _id,
                           # the dashboard lists entries by these two
                           "settings": {"type": "object", "required": ["strategy", "seed"],
                                        "properties": {"strategy": {"type": "string", "maxLength": 100},
                                                       "seed": {"type": "integer"}}},
                           "device": {"type": ["object", "null"]},
                           "packages": {"type": "object",
                                        "additionalProperties": {"type": ["string", "null"], "maxLength": 1000}},
                           "n_evaluations": _int(), "hypervolume": _amount,
                           "front": {"type": "array", "items": _arch_id}}}},
    },
}

RUN_COLUMNS = ("run_id", "family", "space_json", "strategy", "objectives_json", "constraints_json", "seed",
               "budget", "time_budget", "device_id", "protocol", "status", "message", "n_evaluated",
               "frontier_size", "hypervolume", "elapsed", "state_json", "created_at", "updated_at")
# A run as it is stored (v6 splits the bundle's one state_json by owner, see lts.store.runs; a
# DARTS run of an earlier release keeps its state_json).
STORED_RUN_COLUMNS = tuple(k for k in RUN_COLUMNS if k != "state_json") + (
    "state_json", "settings_json", "progress_json", "reproduces")
_JSON_COLUMNS = ("space_json", "objectives_json", "constraints_json", "state_json", "settings_json", "progress_json")
MEASUREMENT_COLUMNS = MEASUREMENT_FIELDS
MEMBER_COLUMNS = ("run_id", "arch_id", "eval_index", "generation", "feasible", "on_frontier")
HISTORY_COLUMNS = MEASUREMENT_COLUMNS + ("replaced_at", "job_id")
PACKAGES = ("lts", "torch", "numpy", "pandas", "scipy", "pymoo", "streamlit", "plotly")
# what import_bundle returns: rows added per table it writes, and bundle measurements not taken
# because this database holds a different one for the same key (the local one is kept)
SUMMARY_KEYS = ("runs", "devices", "architectures", "measurements", "run_members", "measurement_history",
                "skipped_measurements")


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
    state = merged_state(run)
    return {"family": run["family"], "space": json.loads(run["space_json"]), "strategy": run["strategy"],
            "objectives": json.loads(run["objectives_json"]), "constraints": json.loads(run["constraints_json"]),
            "seed": run["seed"], "budget": run["budget"], "time_budget": run["time_budget"],
            "evolution": state.get("evolution"), "protocol": state.get("protocol"), "protocol_key": run["protocol"],
            **{k: state[k] for k in ("surrogate", "drift") if k in state}}


def bundle_run(r: dict[str, Any]) -> dict[str, Any]:
    """A stored run as a bundle carries it: one ``state_json`` (the format of every release)."""
    out = {k: r[k] for k in RUN_COLUMNS if k != "state_json"}
    state = merged_state(r)
    out["state_json"] = json.dumps(state, sort_keys=True) if state or r.get("state_json") is not None else None
    return out


def stored_run(r: dict[str, Any]) -> dict[str, Any]:
    """A bundle's run as it is stored: its state split into settings, progress and relations."""
    row = {k: r.get(k) for k in RUN_COLUMNS}
    if row["family"] == "darts":  # kept whole; nothing resumes it
        return {**row, "settings_json": None, "progress_json": None, "reproduces": None}
    settings, progress, reproduces = split_state(json.loads(row.pop("state_json") or "{}"))
    return {**row, "state_json": None, "settings_json": json.dumps(settings, sort_keys=True),
            "progress_json": progress_json(progress), "reproduces": reproduces}


def reproduction_entry(run: dict[str, Any], devices: dict[str, dict[str, Any]], members: list[dict[str, Any]],
                       packages: dict[str, str | None]) -> dict[str, Any]:
    return {"run_id": run["run_id"], "settings": run_settings(run), "device": devices.get(run["device_id"]),
            "packages": packages, "n_evaluations": len(members), "hypervolume": run["hypervolume"],
            "front": [m["arch_id"] for m in members if m["on_frontier"]]}


# -- export ----------------------------------------------------------------------------------------
def export_runs(store: Store, run_ids: list[str]) -> dict[str, Any]:
    """A bundle with the given runs and everything they reference, read as of one moment (a search
    adds a member and updates its run in one transaction: read between two of those, the members
    would not match n_evaluated and the bundle would not import)."""
    run_ids = list(dict.fromkeys(run_ids))
    ph = ",".join("?" * len(run_ids))
    darts = [r["darts_id"] for r in store.query(f"SELECT darts_id FROM darts_runs WHERE darts_id IN ({ph})", run_ids)
             ] if run_ids and store.db["darts_runs"].exists() else []
    if darts:
        raise LtsError(f"{sorted(darts)[0]} is a DARTS search (lts darts-runs), not a search run: bundles carry "
                       f"search runs; its derived architecture travels as JSON (lts darts writes it)")
    with store.snapshot():
        runs = [store.run(r) for r in run_ids]  # raises a clear error for an unknown id
        members = store.query(f"SELECT * FROM run_members WHERE run_id IN ({ph}) ORDER BY run_id, eval_index",
                              run_ids)
        device_ids = sorted({r["device_id"] for r in runs if r["device_id"]})
        archs = store.query(
            f"SELECT arch_id, config_json FROM architectures WHERE arch_id IN (SELECT arch_id FROM run_members"
            f" WHERE run_id IN ({ph})) ORDER BY arch_id", run_ids)
        # EXISTS, not a join: two runs on one device sharing an architecture must not repeat its row
        on_a_run = (f"EXISTS (SELECT 1 FROM runs r JOIN run_members m ON m.run_id = r.run_id WHERE r.run_id IN ({ph})"
                    f" AND m.arch_id = x.arch_id AND r.device_id = x.device_id AND r.protocol = x.protocol)")
        measurements = store.query(
            f"SELECT x.* FROM measurements x WHERE {on_a_run} ORDER BY x.arch_id, x.device_id, x.protocol", run_ids)
        devices = store.query(
            f"SELECT * FROM devices WHERE device_id IN ({','.join('?' * len(device_ids))})", device_ids
        ) if device_ids else []
        history = store.query(
            f"SELECT x.* FROM measurement_history x WHERE {on_a_run}"
            f" ORDER BY x.arch_id, x.device_id, x.protocol, x.measured_at", run_ids
        ) if "measurement_history" in store.db.table_names() else []
    assert len(archs) == len({m["arch_id"] for m in members})
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
        "runs": [bundle_run(r) for r in runs],
        "members": [{k: m[k] for k in MEMBER_COLUMNS} for m in members],
        "measurement_history": [{k: h[k] for k in HISTORY_COLUMNS} for h in history],
        "reproduce": [reproduction_entry(r, records, [m for m in members if m["run_id"] == r["run_id"]], packages)
                      for r in runs],
    }


def write_bundle(store: Store, run_ids: list[str], path: str | Path) -> dict[str, int]:
    bundle = export_runs(store, run_ids)
    Path(path).write_text(json.dumps(bundle, sort_keys=True))
    return {k: len(bundle[k]) for k in ("runs", "architectures", "measurements", "devices")}


# -- decoding --------------------------------------------------------------------------------------
class _NonFinite:
    """What NaN, Infinity or an overflowing number (1e400) decodes to: never a number, so the schema
    refuses it where a number belongs, and :func:`_first_bad_value` finds it anywhere else."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _one_line(text: str, limit: int = 200) -> str:
    line = (str(text).splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _bad(source: str, path: str, problem: str) -> LtsError:
    return LtsError(f"{source}: not a valid lts bundle at {path or 'top level'}: {_one_line(problem)}")


def _path(parts: Iterable[Any]) -> str:
    return "/".join(str(p) for p in parts)


def _first_bad_value(value: Any) -> tuple[str, str] | None:
    """The path of the first non-finite number or unencodable string (iterative: any depth)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _NonFinite):
            return where, f"{item.text} is not a finite number"
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where, "text holds a lone surrogate (\\ud800-\\udfff), not valid Unicode"
        elif isinstance(item, dict):
            children = list(item.items())
            stack.extend((v, f"{where}/{k}" if where else str(k)) for k, v in reversed(children))
            stack.extend((k, where) for k, _ in children if isinstance(k, str))
        elif isinstance(item, list):
            stack.extend((v, f"{where}/{i}" if where else str(i)) for i, v in reversed(list(enumerate(item))))
    return None


# json.loads decodes bytes with "surrogatepass": a surrogate written as an escape or UTF-8 encoded
# decodes to a str that SQLite cannot store (UnicodeEncodeError half-way through the insert)
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _decode(data: bytes, source: str) -> Any:
    odd: list[bool] = []

    def non_finite(text: str) -> _NonFinite:
        odd.append(True)
        return _NonFinite(text)

    def finite(text: str) -> float | _NonFinite:
        value = float(text)
        return value if math.isfinite(value) else non_finite(text)

    try:
        bundle = json.loads(data, parse_constant=non_finite, parse_float=finite)
    except RecursionError:
        raise _bad(source, "", "nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4300 digits
        raise LtsError(f"{source}: not a JSON file ({_one_line(exc)})") from None
    if odd or _SURROGATE.search(data):  # the walk costs a pass; only when something may be there
        found = _first_bad_value(bundle)
        if found is not None:
            raise _bad(source, *found)
    return bundle


def _decode_text(text: str | None, source: str, where: str, kind: type, what: str) -> Any:
    """A JSON value a run row carries as text (space_json, ...), strictly decoded, of ``kind``."""
    if text is None:
        return None

    def refuse(token: str) -> None:
        raise ValueError(f"{token} is not a finite number")

    def finite(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):
            refuse(token)
        return value

    try:
        value = json.loads(text, parse_constant=refuse, parse_float=finite)
    except RecursionError:
        raise _bad(source, where, "nested too deeply") from None
    except ValueError as exc:
        raise _bad(source, where, f"not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise _bad(source, where, f"must hold a JSON {what}, not {type(value).__name__}")
    return value


# -- validation ------------------------------------------------------------------------------------
def _schema_error(exc: jsonschema.ValidationError) -> str:
    # jsonschema's own text repeats the value: for a 100 kB string that is not one short line
    if exc.validator in ("maxLength", "minLength"):
        return f"length must be {'at most' if exc.validator == 'maxLength' else 'at least'} {exc.validator_value}"
    if exc.validator == "pattern":
        return f"{_one_line(repr(exc.instance), 80)} is not an id of the form {exc.validator_value}"
    return exc.message


def _unique(rows: list[dict[str, Any]], section: str, key: Sequence[str], source: str
            ) -> list[tuple[int, dict[str, Any]]]:
    """``rows`` without repeats, each with its index in the file (for messages): an identical repeat
    collapses (older exports of several runs on one device repeated shared measurements); two rows
    with one key and different content are refused."""
    seen: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
    out = []
    for i, row in enumerate(rows):
        k = tuple(row.get(c) for c in key)
        if k in seen:
            j, first = seen[k]
            if first != row:
                what = ", ".join(f"{c} {v}" for c, v in zip(key, k))
                raise _bad(source, f"{section}/{i}", f"repeats {section}/{j} ({what}) with different content")
            continue
        seen[k] = (i, row)
        out.append((i, row))
    return out


@dataclass(frozen=True)
class RunChecks:
    """How lts parses a run's settings when it resumes or re-runs it, so that what would fail there
    fails at import. The search layer gives them (:data:`lts.search.exchange.RUN_CHECKS`): the store
    knows the bundle's format, not the search's settings. Each check raises on a bad value."""

    space: Callable[[dict[str, Any]], Any]  # the decoded space_json -> a space with .family
    objectives: Callable[[list[Any]], Any]
    constraints: Callable[[dict[str, Any]], Any]
    state: Sequence[Callable[[dict[str, Any]], Any]]  # each given the decoded state_json
    whole: Callable[[dict[str, Any]], Any]  # given the run as it would be stored


def _check_settings(r: dict[str, Any], i: int, source: str, checks: RunChecks | None) -> None:
    """Decode a run's JSON texts; with ``checks``, parse its settings the way lts does on resume."""
    at = f"runs/{i}"
    space = _decode_text(r["space_json"], source, f"{at}/space_json", dict, "object")
    objectives = _decode_text(r["objectives_json"], source, f"{at}/objectives_json", list, "list")
    constraints = _decode_text(r["constraints_json"], source, f"{at}/constraints_json", dict, "object")
    state = _decode_text(r.get("state_json"), source, f"{at}/state_json", dict, "object") or {}
    if not all(isinstance(o, str) for o in objectives):
        raise _bad(source, f"{at}/objectives_json", "must be a list of objective names")
    if (r["family"] == "darts") != (r["strategy"] == "darts"):
        raise _bad(source, f"{at}/strategy", f"strategy {r['strategy']} does not go with family {r['family']}")
    if r["family"] == "darts":  # a DARTS run keeps its own settings; nothing resumes it
        if space.get("family") != "darts":
            raise _bad(source, f"{at}/space_json", "a DARTS run's space must have family darts")
        return
    if checks is None:
        return
    errors = (LtsError, TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("space_json", lambda: checks.space(space)),
        ("objectives_json", lambda: checks.objectives(objectives)),
        ("constraints_json", lambda: checks.constraints(constraints)),
        *(("state_json", (lambda c=c: c(state))) for c in checks.state),
    ]
    for field, check in steps:
        try:
            made = check()
        except RecursionError:
            raise _bad(source, f"{at}/{field}", "nested too deeply") from None
        except errors as exc:
            raise _bad(source, f"{at}/{field}", f"{type(exc).__name__}: {exc}"
                       if not isinstance(exc, LtsError) else str(exc)) from None
        if field == "space_json" and made.family != r["family"]:
            raise _bad(source, f"{at}/space_json", f"space family {made.family} is not the run's {r['family']}")
    try:
        checks.whole(stored_run(r))  # what the single checks above let through together
    except errors as exc:
        raise _bad(source, at, str(exc)) from None


def parse_bundle(data: bytes | str, source: str = "bundle", checks: RunChecks | None = None) -> dict[str, Any]:
    """Decode and validate; raises LtsError with one line naming what is wrong, and where.
    Without ``checks`` runs' settings are decoded but not parsed (use :mod:`lts.search.exchange`)."""
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            raise LtsError(f"{source}: not a JSON file (text holds a lone surrogate)") from None
    if len(data) > MAX_BYTES:
        raise LtsError(f"{source}: {len(data) / 2**20:.0f} MB is over the {MAX_BYTES // 2**20} MB bundle limit")
    bundle = _decode(data, source)
    try:
        jsonschema.validate(bundle, BUNDLE_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise _bad(source, _path(exc.absolute_path), _schema_error(exc)) from None
    except RecursionError:
        raise _bad(source, "", "nested too deeply") from None
    try:
        _check_rows(bundle, source, checks)
    except RecursionError:  # a record or config deep enough to pass json.loads but not json.dumps
        raise _bad(source, "", "nested too deeply") from None
    return bundle


def _check_rows(bundle: dict[str, Any], source: str, checks: RunChecks | None) -> None:
    """The rules across rows (and the configs), after the schema; drops identical repeats from
    ``bundle`` in place. Paths in messages are indices in the file as given."""
    archs = _unique(bundle["architectures"], "architectures", ("arch_id",), source)
    family_of: dict[str, str] = {}
    for i, a in archs:
        try:
            cfg = config_from_json(json.dumps(a["config"]))
        except LtsError as exc:
            raise _bad(source, f"architectures/{i}/config", f"architecture {a['arch_id']}: {exc}") from None
        if cfg.arch_id != a["arch_id"]:
            raise _bad(source, f"architectures/{i}/arch_id",
                       f"architecture {a['arch_id']}: id does not match its config ({cfg.arch_id})")
        family_of[cfg.arch_id] = cfg.family

    devices = _unique(bundle["devices"], "devices", ("device_id",), source)
    for i, d in devices:
        if d["record"].get("device_id", d["device_id"]) != d["device_id"]:
            raise _bad(source, f"devices/{i}/record/device_id", f"is not the device's id {d['device_id']}")
        if len(json.dumps(d["record"])) > MAX_RECORD:
            raise _bad(source, f"devices/{i}/record", f"over {MAX_RECORD // 1024} KiB")
    device_ids = {d["device_id"] for _, d in devices}

    runs = _unique(bundle["runs"], "runs", ("run_id",), source)
    run_of = {r["run_id"]: r for _, r in runs}
    for i, r in runs:
        if r.get("device_id") and r["device_id"] not in device_ids:
            raise _bad(source, f"runs/{i}/device_id", f"run {r['run_id']} refers to a device not in the bundle")
        _check_settings(r, i, source, checks)

    def refer(section: str, i: int, row: dict[str, Any], what: str) -> None:
        for field, known in (("arch_id", family_of), ("device_id", device_ids), ("run_id", run_of)):
            if field in row and row[field] not in known:
                raise _bad(source, f"{section}/{i}/{field}", f"{what} refers to {field[:-3]} {row[field]},"
                           " not in the bundle")

    members = _unique(bundle["members"], "members", ("run_id", "arch_id"), source)
    by_run: dict[str, dict[int, int]] = {r: {} for r in run_of}  # eval_index -> index in the file
    for i, m in members:
        refer("members", i, m, "a run member")
        run = run_of[m["run_id"]]
        if family_of[m["arch_id"]] != run["family"]:
            raise _bad(source, f"members/{i}/arch_id", f"a {family_of[m['arch_id']]} architecture in a"
                       f" {run['family']} run")
        seen = by_run[m["run_id"]]
        if m["eval_index"] in seen:
            raise _bad(source, f"members/{i}/eval_index", f"run {m['run_id']} has eval_index {m['eval_index']}"
                       f" twice (members/{seen[m['eval_index']]})")
        seen[m["eval_index"]] = i
    for i, r in runs:
        indexes = by_run[r["run_id"]]
        n = len(indexes)
        if n and max(indexes) != n - 1:  # unique and 0-based: contiguous iff the largest is n - 1
            missing = min(set(range(n)) - set(indexes))
            raise _bad(source, f"members/{indexes[max(indexes)]}/eval_index",
                       f"run {r['run_id']}'s members are not numbered 0..{n - 1} (no eval_index {missing})")
        # a DARTS run counts training steps in n_evaluated and has one member, the derived architecture
        if r["strategy"] != "darts" and r.get("n_evaluated") is not None and r["n_evaluated"] != n:
            raise _bad(source, f"runs/{i}/n_evaluated", f"run {r['run_id']} says {r['n_evaluated']} evaluations"
                       f" but the bundle has {n} members")

    key = ("arch_id", "device_id", "protocol")
    measurements = _unique(bundle["measurements"], "measurements", key, source)
    for i, m in measurements:
        refer("measurements", i, m, "a measurement")
    history = _unique(bundle.get("measurement_history", []), "measurement_history", key + ("measured_at",), source)
    for i, h in history:
        refer("measurement_history", i, h, "an earlier measurement")
        if h["replaced_at"] < h["measured_at"]:
            raise _bad(source, f"measurement_history/{i}/replaced_at", "is before its measured_at")

    members_of: dict[str, set[str]] = {r: set() for r in run_of}
    for _, m in members:
        members_of[m["run_id"]].add(m["arch_id"])
    for i, e in enumerate(bundle.get("reproduce", [])):
        if e["run_id"] not in run_of:
            raise _bad(source, f"reproduce/{i}/run_id", f"a reproduce entry refers to run {e['run_id']},"
                       " not in the bundle")
        strays = [a for a in e["front"] if a not in members_of[e["run_id"]]]
        if strays:
            raise _bad(source, f"reproduce/{i}/front", f"{strays[0]} is not a member of run {e['run_id']}")

    for section, kept in (("architectures", archs), ("devices", devices), ("runs", runs), ("members", members),
                          ("measurements", measurements)):
        bundle[section] = [row for _, row in kept]
    if "measurement_history" in bundle:
        bundle["measurement_history"] = [row for _, row in history]


# -- import ----------------------------------------------------------------------------------------
def _run_row(r: dict[str, Any]) -> dict[str, Any]:
    row = stored_run(r)
    if row["status"] in LIVE_STATUSES:
        row["status"] = "imported"  # nothing runs it here; resuming belongs to the device that owns it
    for key, default in (("n_evaluated", 0), ("frontier_size", 0), ("elapsed", 0.0)):
        row[key] = row[key] if row[key] is not None else default
    return row


def _refuse_other_runs(conn: sqlite3.Connection, bundle: dict[str, Any], rows: list[dict[str, Any]],
                       source: str) -> None:
    """A run already here must be this very run; checked inside the import's transaction, so no
    writer can add one between the check and the insert."""
    cols = ",".join(STORED_RUN_COLUMNS)

    def value(row: dict[str, Any], k: str) -> Any:  # JSON texts compare by what they say, not their spelling
        if k in _JSON_COLUMNS and row[k] is not None:
            return json.loads(row[k])
        return row[k]

    for raw, row in zip(bundle["runs"], rows):
        local = conn.execute(f"SELECT {cols} FROM runs WHERE run_id = ?", (row["run_id"],)).fetchone()
        if local is None:
            continue
        here = dict(zip(STORED_RUN_COLUMNS, local))
        differs = [k for k in STORED_RUN_COLUMNS if k != "status" and value(here, k) != value(row, k)]
        if here["status"] not in (raw["status"], row["status"]):
            differs.insert(0, "status")
        if not differs:
            ours = set(conn.execute(f"SELECT {','.join(MEMBER_COLUMNS)} FROM run_members WHERE run_id = ?",
                                    (row["run_id"],)).fetchall())
            theirs = {tuple(m[k] for k in MEMBER_COLUMNS) for m in bundle["members"] if m["run_id"] == row["run_id"]}
            if ours != theirs:
                differs.append("members")
        if differs:
            raise LtsError(f"{source}: run {row['run_id']} already exists here with different content"
                           f" ({differs[0]} differs); delete it here first, or import into another database")


def _changes(conn: sqlite3.Connection, write: Callable[..., Any], *args: Any) -> int:
    """Rows ``write(conn, *args)`` changed on this connection (this thread's own: other writers do
    not count, where a COUNT(*) before and after would count theirs too)."""
    before = conn.total_changes
    write(conn, *args)
    return conn.total_changes - before


def summary_line(added: dict[str, int]) -> str:
    """What an import added, for people: "3 new runs, 40 new architectures, ..." (CLI and dashboard)."""
    text = ", ".join(f"{added[k]} new {k}" for k in SUMMARY_KEYS if k != "skipped_measurements" and k in added)
    kept = added.get("skipped_measurements", 0)
    if kept:
        text += f"; kept {kept} local measurement{'s' if kept != 1 else ''} that differ from the bundle's"
    return text


def import_bundle(store: Store, data: bytes | str, source: str = "bundle",
                  bundle: dict[str, Any] | None = None, checks: RunChecks | None = None) -> dict[str, int]:
    """Validate (unless ``bundle`` is ``data`` already parsed by :func:`parse_bundle`), then insert all
    of it in one transaction; returns the rows added per table (:data:`SUMMARY_KEYS`), counted as
    they are inserted."""
    if bundle is None:
        bundle = parse_bundle(data, source, checks)
    runs = [_run_row(r) for r in bundle["runs"]]
    added = dict.fromkeys(SUMMARY_KEYS, 0)

    def insert(table: str, columns: Sequence[str], rows: list[dict[str, Any]]) -> int:
        cur = conn.executemany(
            f"INSERT OR IGNORE INTO {table} ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
            [[r.get(k) for k in columns] for r in rows])
        return max(cur.rowcount, 0)

    try:
        with store.write() as conn:
            # An earlier release's DARTS run (a row of runs) goes to darts_runs, once.
            darts = {r["run_id"] for r in runs if r["family"] == "darts"}
            if darts:
                ph = ",".join("?" * len(darts))
                here = {row[0] for row in conn.execute(f"SELECT darts_id FROM darts_runs WHERE darts_id IN ({ph})",
                                                      list(darts))}
                runs = [r for r in runs if r["run_id"] not in here]
                members = [m for m in bundle["members"] if m["run_id"] not in here]
            else:
                members = bundle["members"]
            _refuse_other_runs(conn, {**bundle, "runs": [r for r in bundle["runs"] if r["run_id"] in
                                                         {x["run_id"] for x in runs}]}, runs, source)
            for d in bundle["devices"]:  # a device already here keeps its record (same id: same machine)
                record = {**d["record"], "device_id": d["device_id"], "name": d["name"], "kind": d["kind"]}
                added["devices"] += _changes(conn, store.upsert_device, record)
            for a in bundle["architectures"]:
                cfg = config_from_json(json.dumps(a["config"]))
                added["architectures"] += _changes(conn, store.upsert_architecture, cfg)
            mcols = ",".join(MEASUREMENT_COLUMNS)
            for m in bundle["measurements"]:
                if _changes(conn, store.insert_measurement, m):
                    added["measurements"] += 1
                    continue
                here = conn.execute(f"SELECT {mcols} FROM measurements WHERE arch_id=? AND device_id=? AND protocol=?",
                                    (m["arch_id"], m["device_id"], m["protocol"])).fetchone()
                if here is not None and tuple(here) != tuple(m.get(k) for k in MEASUREMENT_COLUMNS):
                    added["skipped_measurements"] += 1  # the local measurement is the cache every run here reads
            added["runs"] = insert("runs", STORED_RUN_COLUMNS, runs)
            added["run_members"] = insert("run_members", MEMBER_COLUMNS, members)
            if darts:
                run_statements(conn, LEGACY_DARTS_RUNS)
            added["measurement_history"] = insert("measurement_history", HISTORY_COLUMNS,
                                                  bundle.get("measurement_history", []))
    except sqlite3.IntegrityError as exc:  # validation should make this unreachable; never half an import
        raise LtsError(f"{source}: refused by the database, nothing imported ({exc})") from None
    return added
