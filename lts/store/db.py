"""The SQLite store: one file holds devices, runs, architectures, measurements and run membership.

Concurrency rules (measured on these machines, see the field notes):

* WAL mode, so readers (the dashboard polling a running search) never block the writer.
* Every write is one ``BEGIN IMMEDIATE`` transaction (:meth:`Store.write`) with a busy timeout:
  two writers with deferred transactions fail at once with "database is locked", because a
  reader cannot upgrade to a writer while another writer holds the lock; IMMEDIATE takes the
  write lock up front, so the second writer waits instead.
* ``PRAGMA foreign_keys = ON`` on every connection (SQLite's default is off).

The connection runs in autocommit mode (``isolation_level=None``) and transactions are explicit.
sqlite-utils wraps the same connection for reads and introspection (``db.query``, ``table.count``);
writes go through plain SQL inside :meth:`Store.write`, because sqlite-utils' insert helpers open
and commit their own transactions, which would split one logical write (an evaluation, an import)
into several.

Schema changes are numbered migrations (:data:`MIGRATIONS`); opening a database from an older
release applies the missing ones in order, inside one transaction each.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import sqlite_utils

from lts.errors import LtsError

DEFAULT_DB = Path(os.environ.get("LTS_DB", "results/lts.db"))
BUSY_TIMEOUT_MS = 30_000

_V1 = """
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_json TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE architectures (
    arch_id TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    config_json TEXT NOT NULL,
    decoder_params INTEGER NOT NULL,
    total_params INTEGER NOT NULL,
    flops INTEGER NOT NULL,
    n_layer INTEGER NOT NULL,
    d_model INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE measurements (
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    protocol TEXT NOT NULL,
    latency_ms REAL,
    latency_cv REAL,
    repeats INTEGER,
    peak_memory_mb REAL,
    infeasible TEXT,
    seconds REAL,
    measured_at REAL NOT NULL,
    PRIMARY KEY (arch_id, device_id, protocol)
);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    space_json TEXT NOT NULL,
    strategy TEXT NOT NULL,
    objectives_json TEXT NOT NULL,
    constraints_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    budget INTEGER,
    time_budget REAL,
    device_id TEXT REFERENCES devices(device_id),
    protocol TEXT,
    status TEXT NOT NULL,
    message TEXT,
    n_evaluated INTEGER NOT NULL DEFAULT 0,
    frontier_size INTEGER NOT NULL DEFAULT 0,
    hypervolume REAL,
    elapsed REAL NOT NULL DEFAULT 0,
    state_json TEXT,
    pid INTEGER,
    host TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE run_members (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    eval_index INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    feasible INTEGER NOT NULL,
    on_frontier INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, arch_id)
);
CREATE UNIQUE INDEX run_members_order ON run_members(run_id, eval_index);
CREATE INDEX measurements_device ON measurements(device_id, protocol);
CREATE INDEX architectures_params ON architectures(decoder_params);
"""

# v2: validation runs (lts.validate) -- candidates trained on a corpus, and their held-out perplexity.
# The dashboard and lts.explore read these table names. No foreign key from validation_runs to runs:
# a validation of a search's frontier must not stop that search from being deleted.
_V2 = """
CREATE TABLE validation_runs (
    validation_id TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    space_json TEXT NOT NULL,
    corpus_json TEXT NOT NULL,
    tokenizer_json TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    source_run_id TEXT,
    n_archs INTEGER NOT NULL,
    n_done INTEGER NOT NULL DEFAULT 0,
    n_failed INTEGER NOT NULL DEFAULT 0,
    workers INTEGER NOT NULL DEFAULT 1,
    backend TEXT NOT NULL DEFAULT 'local',
    status TEXT NOT NULL,
    message TEXT,
    elapsed REAL NOT NULL DEFAULT 0,
    pid INTEGER,
    host TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE validation_results (
    validation_id TEXT NOT NULL REFERENCES validation_runs(validation_id) ON DELETE CASCADE,
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    position INTEGER NOT NULL,
    source_arch_id TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    valid_ppl REAL,
    valid_loss REAL,
    train_loss REAL,
    wall_seconds REAL,
    tokens_per_second REAL,
    error TEXT,
    finished_at REAL,
    PRIMARY KEY (validation_id, arch_id)
);
CREATE UNIQUE INDEX validation_results_order ON validation_results(validation_id, position);
CREATE INDEX validation_results_arch ON validation_results(arch_id);
"""

# v3: cost surrogates (lts.surrogate) -- fitted models per (device, protocol, objective), versioned;
# predictions made during a surrogate-assisted search, kept apart from measurements (a prediction
# is never a measurement) with the later measurement beside it; drift checks of a reference
# architecture, and a mark on measurements taken while the device had drifted.
_V3 = """
CREATE TABLE surrogates (
    surrogate_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    protocol TEXT NOT NULL,
    objective TEXT NOT NULL,
    version INTEGER NOT NULL,
    model_kind TEXT NOT NULL,
    features_json TEXT NOT NULL,
    train_ids_json TEXT NOT NULL,
    figures_json TEXT NOT NULL,
    model_json TEXT NOT NULL,
    source_surrogate_id TEXT,
    created_at REAL NOT NULL,
    UNIQUE (device_id, protocol, objective, version)
);
CREATE TABLE predictions (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    objective TEXT NOT NULL,
    surrogate_id TEXT REFERENCES surrogates(surrogate_id),
    mean REAL NOT NULL,
    std REAL,
    decision TEXT NOT NULL,
    measured REAL,
    predicted_at REAL NOT NULL,
    PRIMARY KEY (run_id, arch_id, objective)
);
CREATE TABLE drift_checks (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    check_index INTEGER NOT NULL,
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    eval_index INTEGER NOT NULL,
    latency_ms REAL,
    ratio REAL,
    flagged INTEGER NOT NULL DEFAULT 0,
    measured_at REAL NOT NULL,
    PRIMARY KEY (run_id, check_index)
);
ALTER TABLE measurements ADD COLUMN drift_flag TEXT
"""

# v4: re-measurements (lts.decide.remeasure) -- a fresh measurement replaces the row in
# `measurements` (the cache every reader joins on) and the replaced row is kept here, so old and
# new can be shown side by side; `remeasure_jobs` are the queued/running/finished requests the
# dashboard launches as detached `lts remeasure` processes.
_V4 = """
CREATE TABLE measurement_history (
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    protocol TEXT NOT NULL,
    latency_ms REAL,
    latency_cv REAL,
    repeats INTEGER,
    peak_memory_mb REAL,
    infeasible TEXT,
    seconds REAL,
    measured_at REAL NOT NULL,
    replaced_at REAL NOT NULL,
    job_id TEXT,
    PRIMARY KEY (arch_id, device_id, protocol, measured_at)
);
CREATE TABLE remeasure_jobs (
    job_id TEXT PRIMARY KEY,
    device_name TEXT NOT NULL,
    protocol TEXT,
    arch_ids_json TEXT NOT NULL,
    status TEXT NOT NULL,
    n_done INTEGER NOT NULL DEFAULT 0,
    message TEXT,
    pid INTEGER,
    host TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""

# team use (lts.team.audit) -- who launched, cancelled, imported or deleted what, and when; refused
# attempts too (outcome 'denied'). No foreign keys: the trail must outlive the runs it names.
_V_TEAM = """
CREATE TABLE audit_log (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    via TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    outcome TEXT NOT NULL,
    detail_json TEXT
);
CREATE INDEX audit_log_at ON audit_log(at)
"""

# Index i upgrades a database at version i to version i + 1.
MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V_TEAM]
SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """One connection to one database file; safe to share between threads of one process."""

    def __init__(self, path: str | Path = DEFAULT_DB) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            if self.path.exists() and self.path.is_dir():
                raise LtsError(f"{self.path}: is a directory, not a database file")
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.conn.execute("PRAGMA foreign_keys = ON")
            if str(path) != ":memory:":
                self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL is durable across app crashes
        except sqlite3.DatabaseError as exc:
            raise LtsError(f"{self.path}: cannot open database ({exc})") from None
        self.db = sqlite_utils.Database(self.conn)
        self._migrate()

    # -- transactions -------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all of it lands, or none of it."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise LtsError(f"{self.path}: database busy for {BUSY_TIMEOUT_MS // 1000} s ({exc})") from None
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        try:
            version = self.schema_version()
        except sqlite3.DatabaseError as exc:
            raise LtsError(f"{self.path}: not an lts database ({exc})") from None
        if version > SCHEMA_VERSION:
            raise LtsError(
                f"{self.path}: database schema v{version} is newer than this lts (v{SCHEMA_VERSION}); upgrade lts"
            )
        for target in range(version, SCHEMA_VERSION):
            with self.write() as conn:
                if self.schema_version() != target:  # another process migrated meanwhile
                    continue
                for stmt in MIGRATIONS[target].split(";"):
                    if stmt.strip():
                        conn.execute(stmt)
                conn.execute(f"PRAGMA user_version = {target + 1}")

    # -- rows -----------------------------------------------------------------------------
    @staticmethod
    def upsert_device(conn: sqlite3.Connection, record: dict[str, Any]) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO devices (device_id, name, kind, record_json, created_at) VALUES (?,?,?,?,?)",
            (record["device_id"], record["name"], record.get("kind", "cpu"),
             json.dumps(record, sort_keys=True), time.time()),
        )

    @staticmethod
    def upsert_architecture(conn: sqlite3.Connection, cfg: Any) -> None:
        from lts.proxies.params import proxy_values

        p = proxy_values(cfg)
        conn.execute(
            "INSERT OR IGNORE INTO architectures (arch_id, family, config_json, decoder_params, total_params,"
            " flops, n_layer, d_model, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (cfg.arch_id, cfg.family, cfg.canonical_json(), p["decoder_params"], p["total_params"],
             p["flops"], cfg.n_layer, cfg.d_model, time.time()),
        )

    @staticmethod
    def insert_measurement(conn: sqlite3.Connection, m: dict[str, Any]) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO measurements (arch_id, device_id, protocol, latency_ms, latency_cv, repeats,"
            " peak_memory_mb, infeasible, seconds, measured_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (m["arch_id"], m["device_id"], m["protocol"], m.get("latency_ms"), m.get("latency_cv"),
             m.get("repeats"), m.get("peak_memory_mb"), m.get("infeasible"), m.get("seconds"),
             m.get("measured_at") or time.time()),
        )

    def measurement(self, arch_id: str, device_id: str, protocol: str) -> dict[str, Any] | None:
        rows = self.query(
            "SELECT * FROM measurements WHERE arch_id=? AND device_id=? AND protocol=?",
            (arch_id, device_id, protocol),
        )
        return rows[0] if rows else None

    def devices(self) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM devices ORDER BY created_at")

    def run(self, run_id: str) -> dict[str, Any]:
        rows = self.query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise LtsError(f"no run {run_id!r} in {self.path}")
        return rows[0]

    def runs(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT r.*, d.name AS device_name FROM runs r LEFT JOIN devices d USING (device_id)"
            " ORDER BY r.created_at DESC"
        )

    def run_rows(self, run_id: str, frontier_only: bool = False) -> list[dict[str, Any]]:
        """Members of a run with their config, proxies and measurement on the run's device."""
        run = self.run(run_id)
        where = "AND m.on_frontier = 1" if frontier_only else ""
        return self.query(
            f"""SELECT m.eval_index, m.generation, m.feasible, m.on_frontier, a.arch_id, a.family,
                       a.decoder_params, a.total_params, a.flops, a.n_layer, a.d_model, a.config_json,
                       x.latency_ms, x.latency_cv, x.repeats, x.peak_memory_mb, x.infeasible
                FROM run_members m JOIN architectures a USING (arch_id)
                LEFT JOIN measurements x ON x.arch_id = m.arch_id AND x.device_id = ? AND x.protocol = ?
                WHERE m.run_id = ? {where} ORDER BY m.eval_index""",
            (run["device_id"], run["protocol"], run_id),
        )


def open_store(path: str | Path | None = None) -> Store:
    return Store(path if path is not None else DEFAULT_DB)
