"""The SQLite store: one file holds devices, runs, architectures, measurements and run membership.

Concurrency rules (measured on these machines, see the field notes):

* WAL mode, so readers (the dashboard polling a running search) never block the writer.
* Every write is one ``BEGIN IMMEDIATE`` transaction (:meth:`Store.write`) with a busy timeout:
  two writers with deferred transactions fail at once with "database is locked", because a
  reader cannot upgrade to a writer while another writer holds the lock; IMMEDIATE takes the
  write lock up front, so the second writer waits instead.
* ``PRAGMA foreign_keys = ON`` on every connection (SQLite's default is off).

Each thread has its own connection (see :class:`Store`), in autocommit mode
(``isolation_level=None``) with explicit transactions. sqlite-utils wraps it for reads and
introspection (``db.query``, ``table.count``); writes go through plain SQL inside
:meth:`Store.write`, because sqlite-utils' insert helpers open and commit their own transactions,
which would split one logical write (an evaluation, an import) into several.

A file that is not an lts database (another application's SQLite file, garbage) is refused before
anything is written to it; a read-only or corrupt file gives one line, not a traceback.

Schema changes are numbered migrations (:data:`MIGRATIONS`); opening a database from an older
release applies the missing ones in order, inside one transaction each.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from lts.errors import LtsError


def _import_sqlite_utils():  # noqa: ANN202 - returns the module
    """sqlite-utils without pandas: it imports pandas (0.35 s here) only to map ``pd.Timestamp`` in its
    insert helpers, which lts does not use (writes are plain SQL), and every CLI command opens the store.
    Hiding pandas for the duration of that one import makes `lts runs` start in 0.3 s instead of 0.7 s;
    where pandas is loaded already (the dashboard), nothing is hidden."""
    if "pandas" in sys.modules:
        import sqlite_utils
    else:
        sys.modules["pandas"] = None  # type: ignore[assignment]  # import fails -> sqlite-utils skips it
        try:
            import sqlite_utils
        finally:
            if sys.modules.get("pandas") is None:
                del sys.modules["pandas"]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

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

# v6: typed run state (lts.store.runs). ``runs.state_json`` was one JSON bag that the runner rewrote
# on every evaluation while other writers added keys to it (a lost update waiting to happen). It is
# split by owner: ``settings_json`` (fixed when the run is created: evolution, surrogate, drift,
# protocol, memory limit, remote device, proxy settings), ``progress_json`` (a versioned record
# only the runner writes: generation, pending proposals, strategy state, hypervolume scales,
# device seconds, ...), and relations between runs as columns (``reproduces``; no foreign key, like
# validation_runs.source_run_id: a run imported from a bundle may reproduce one that is not here). Proxy objectives'
# values are cached per (architecture, proxy, settings) in ``proxy_scores``, like measurements.
# DARTS rows keep their state_json: the next migration moves them to their own table.
_V_RUN_STATE = """
ALTER TABLE runs ADD COLUMN settings_json TEXT;
ALTER TABLE runs ADD COLUMN progress_json TEXT;
ALTER TABLE runs ADD COLUMN reproduces TEXT;
UPDATE runs SET
    settings_json = json_remove(COALESCE(state_json, '{}'), '$.generation', '$.pending', '$.rng', '$.hv_scales',
        '$.device_seconds', '$.drift_flags', '$.idle_generations', '$.screened', '$.reproduces'),
    progress_json = json_insert(json_remove(COALESCE(state_json, '{}'), '$.evolution', '$.drift', '$.surrogate',
        '$.protocol', '$.memory_limit_mb', '$.remote', '$.reproduces'), '$.version', 1),
    reproduces = json_extract(state_json, '$.reproduces')
    WHERE strategy != 'darts' AND (state_json IS NULL OR json_valid(state_json));
UPDATE runs SET state_json = NULL WHERE strategy != 'darts' AND settings_json IS NOT NULL;
CREATE TABLE proxy_scores (
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    proxy TEXT NOT NULL,
    settings TEXT NOT NULL,
    value REAL,
    error TEXT,
    seconds REAL,
    computed_at REAL NOT NULL,
    PRIMARY KEY (arch_id, proxy, settings)
);
CREATE INDEX runs_reproduces ON runs(reproduces)
"""

# DARTS searches (lts.darts) as jobs of their own kind (lts.store.darts): the lifecycle columns of
# every job, the settings, progress (step, loss history, latest alpha), the finished result and the
# derived architecture, and the checkpoint a killed search resumes from. DARTS searches that older
# releases wrote into `runs` (strategy 'darts') move here, their derived architecture from their
# one run member, and leave `runs` (their members go with them, ON DELETE CASCADE). Validations
# follow the same lifecycle since: one that ended with failed architectures is 'failed' (a finished
# job never runs again, and a resume retries those), one stopped by Ctrl-C 'cancelled'.
_V_DARTS = """
CREATE TABLE darts_runs (
    darts_id TEXT PRIMARY KEY,
    settings_json TEXT NOT NULL,
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    message TEXT,
    elapsed REAL NOT NULL DEFAULT 0,
    progress_json TEXT,
    result_json TEXT,
    derived_arch_id TEXT REFERENCES architectures(arch_id),
    checkpoint_path TEXT,
    checkpoint_step INTEGER,
    pid INTEGER,
    host TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX darts_runs_created ON darts_runs(created_at);
""" + "{legacy}" + """;
UPDATE validation_runs SET status = 'failed' WHERE status = 'finished' AND n_failed > 0;
UPDATE validation_runs SET status = 'cancelled' WHERE status = 'interrupted'
"""

# Earlier releases kept a DARTS search as a row of `runs` (strategy darts, its derived
# architecture the one member): the v7 migration and a bundle import move such rows to darts_runs.
LEGACY_DARTS_RUNS = """
INSERT OR IGNORE INTO darts_runs (darts_id, settings_json, seed, steps, step, status, message, elapsed, progress_json,
                        result_json, derived_arch_id, pid, host, created_at, updated_at)
    SELECT run_id,
           CASE WHEN json_valid(space_json) THEN json_remove(space_json, '$.family', '$.name') ELSE space_json END,
           seed, COALESCE(budget, n_evaluated), n_evaluated, status, message, elapsed, state_json,
           CASE WHEN status = 'finished' THEN state_json END,
           (SELECT m.arch_id FROM run_members m WHERE m.run_id = runs.run_id ORDER BY m.eval_index LIMIT 1),
           pid, host, created_at, updated_at
    FROM runs WHERE strategy = 'darts';
DELETE FROM runs WHERE strategy = 'darts'
"""
_V_DARTS = _V_DARTS.replace("{legacy}", LEGACY_DARTS_RUNS)

# The weights a validation run trained, kept when asked (lts validate --keep-weights-mb): safetensors
# bytes of the model's state (shared tensors once), so the best model can be exported trained.
_V_WEIGHTS = """
CREATE TABLE trained_weights (
    validation_id TEXT NOT NULL REFERENCES validation_runs(validation_id) ON DELETE CASCADE,
    arch_id TEXT NOT NULL REFERENCES architectures(arch_id),
    format TEXT NOT NULL,
    n_bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    data BLOB NOT NULL,
    saved_at REAL NOT NULL,
    PRIMARY KEY (validation_id, arch_id)
)
"""

# Learning curves: held-out loss at the recipe's checkpoints ([{"step", "tokens", "valid_loss"}, ...]),
# so correlations can be read at every training budget a run passed through.
_V_CURVES = """
ALTER TABLE validation_results ADD COLUMN curve_json TEXT
"""

# The generate workload's figures (lts.cost.protocol): NULL for a forward measurement.
_V_GENERATE = "\n".join(
    f"ALTER TABLE {table} ADD COLUMN {column} REAL;" for table in ("measurements", "measurement_history")
    for column in ("prefill_ms", "decode_ms_per_token", "decode_p90_ms", "tokens_per_s"))

# Index i upgrades a database at version i to version i + 1.
MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V_TEAM, _V_RUN_STATE, _V_DARTS, _V_WEIGHTS, _V_CURVES, _V_GENERATE]
SCHEMA_VERSION = len(MIGRATIONS)
# A measurement row (measurements and measurement_history), as bundles carry it too. GENERATION_COLUMNS
# are lts.cost.protocol.GENERATION_FIELDS, spelled out: importing lts.cost here adds 20 ms to every
# start-up that opens a store (tests/test_workloads.py keeps the two equal).
# A run's space: its space's name, or its family for runs stored before spaces had names.
RUN_SPACE_SQL = "COALESCE(json_extract(r.space_json, '$.name'), r.family)"
GENERATION_COLUMNS = ("prefill_ms", "decode_ms_per_token", "decode_p90_ms", "tokens_per_s")
MEASUREMENT_FIELDS = ("arch_id", "device_id", "protocol", "latency_ms", "latency_cv", "repeats", "peak_memory_mb",
                      "infeasible", "seconds", "measured_at", *GENERATION_COLUMNS)


# Marks a file as an lts database (``PRAGMA application_id``), so that a foreign SQLite file given
# as ``--db`` is recognised and refused before anything is written to it. ASCII "LTS1".
APPLICATION_ID = 0x4C545331


def run_statements(conn: sqlite3.Connection, sql: str) -> None:
    """The ``;``-separated statements of ``sql``, one by one inside the caller's transaction
    (``executescript`` would commit it first)."""
    for stmt in sql.split(";"):
        if stmt.strip():
            conn.execute(stmt)


def _tables_of(ddl: str) -> set[str]:
    return set(re.findall(r"CREATE TABLE (\w+)", ddl))


class Store:
    """One database file; safe to share between the threads of one process.

    Each thread gets its own sqlite3 connection (created on first use, closed with the store or
    when its thread has ended): one connection shared by threads serialises nothing -- one thread's
    ``BEGIN`` fails inside another's transaction, and its statements can land in that transaction
    (measured: 6 of 8 threads failed, 201 of 800 rows landed). Separate connections make SQLite's
    own locking apply between threads exactly as between processes: ``BEGIN IMMEDIATE`` plus the
    busy timeout queues writers, WAL lets readers go on. ``:memory:`` cannot be opened twice, so an
    in-memory store has one connection and a lock held for each whole write and each query.
    """

    def __init__(self, path: str | Path = DEFAULT_DB) -> None:
        self.path = Path(path)
        self._memory = str(path) == ":memory:"
        if not self._memory:
            if self.path.exists() and self.path.is_dir():
                raise LtsError(f"{self.path}: is a directory, not a database file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise LtsError(f"{self.path}: cannot create its folder ({exc.strerror})") from None
        self._local = threading.local()
        self._registry_lock = threading.Lock()
        self._conns: dict[int, tuple[threading.Thread, sqlite3.Connection, sqlite_utils.Database]] = {}
        self._serial = threading.RLock() if self._memory else None
        conn = self.conn  # the first connection: check the file is ours before anything writes to it
        self._check_is_lts(conn)
        if not self._memory:
            self._enable_wal(conn)
        self._migrate()

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        # Switching a rollback-journal file to WAL needs an exclusive lock, and SQLite answers
        # SQLITE_BUSY at once, without the busy handler, while another process holds a write lock
        # on it (the one creating the file): measured 1 in 15 rounds of six processes opening one
        # new file together. So retry until the busy timeout, as the handler would have.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
                return
            except sqlite3.DatabaseError as exc:
                if self._readonly_error(exc):
                    return
                busy = "locked" in str(exc).lower() or "busy" in str(exc).lower()
                if not busy or time.monotonic() > deadline:
                    raise LtsError(f"{self.path}: cannot open database ({exc})") from None
                time.sleep(0.02)

    # -- connections ----------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(self.path) if not self._memory else ":memory:", timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None, check_same_thread=False,  # closed by another thread at close()
            )
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL is durable across app crashes
        except sqlite3.DatabaseError as exc:
            raise LtsError(f"{self.path}: cannot open database ({exc})") from None
        return conn

    def _thread_entry(self) -> tuple[sqlite3.Connection, sqlite_utils.Database]:
        entry = getattr(self._local, "entry", None)
        if entry is not None:
            return entry
        with self._registry_lock:
            if self._memory and self._conns:
                _, conn, db = next(iter(self._conns.values()))
            else:
                # Streamlit runs every script run in a fresh thread: close what ended threads left.
                for ident, (thread, old, _) in list(self._conns.items()):
                    if not thread.is_alive():
                        with contextlib.suppress(sqlite3.Error):
                            old.close()
                        del self._conns[ident]
                conn = self._connect()
                db = sqlite_utils.Database(conn)
                self._conns[threading.get_ident()] = (threading.current_thread(), conn, db)
        self._local.entry = (conn, db)
        return conn, db

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; transactions only through :meth:`write`)."""
        return self._thread_entry()[0]

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over this thread's connection, for reads and introspection."""
        return self._thread_entry()[1]

    def connections(self) -> int:
        """Open connections (one per thread that has used the store and is still alive)."""
        with self._registry_lock:
            return len(self._conns)

    # -- transactions -------------------------------------------------------------------
    @staticmethod
    def _readonly_error(exc: BaseException) -> bool:
        text = str(exc).lower()
        return "readonly" in text or "read-only" in text

    def _db_error(self, exc: sqlite3.DatabaseError, doing: str) -> LtsError | None:
        """The one-line error for a failure the user can cause (read-only file, corrupt file, full
        disk, busy database); None for the rest (constraint violations, programming errors)."""
        text = str(exc).lower()
        if self._readonly_error(exc):
            return LtsError(f"{self.path}: the database is read-only, cannot {doing}")
        if "malformed" in text or "not a database" in text or "corrupt" in text:
            return LtsError(f"{self.path}: the database file is corrupt ({exc}); restore it from a copy")
        if "disk is full" in text or "disk i/o" in text:
            return LtsError(f"{self.path}: cannot {doing} ({exc})")
        if "locked" in text or "busy" in text:
            return LtsError(f"{self.path}: database busy for {BUSY_TIMEOUT_MS // 1000} s, cannot {doing}")
        return None

    def _write_error(self, exc: sqlite3.DatabaseError) -> LtsError:
        return self._db_error(exc, "write") or LtsError(f"{self.path}: cannot write ({exc})")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction on this thread's connection: all of it lands, or none of it."""
        with self._serial if self._serial is not None else contextlib.nullcontext():
            conn = self.conn
            if conn.in_transaction:  # a nested write would silently join the outer transaction
                raise RuntimeError("Store.write() inside another write() of the same thread")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                raise self._write_error(exc) from None
            try:
                yield conn
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
                    mapped = self._db_error(exc, "write")
                    if mapped is not None:
                        raise mapped from None
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.DatabaseError as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise self._write_error(exc) from None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads in the block see one moment of the database (one read transaction on this thread's
        connection), e.g. a run and its members while a search adds to both; inside a write, the
        write's own transaction already is that moment."""
        with self._serial if self._serial is not None else contextlib.nullcontext():
            conn = self.conn
            if conn.in_transaction:
                yield
                return
            conn.execute("BEGIN")
            try:
                yield
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")  # nothing was written: this only ends the snapshot

    def query(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        with self._serial if self._serial is not None else contextlib.nullcontext():
            try:
                return list(self.db.query(sql, params))
            except sqlite3.DatabaseError as exc:
                mapped = self._db_error(exc, "read")
                if mapped is None:
                    raise
                raise mapped from None

    def close(self) -> None:
        """Close every thread's connection (call it when no thread uses the store any more)."""
        with self._registry_lock:
            entries, self._conns = list(self._conns.values()), {}
        for _, conn, _ in entries:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------------------
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _check_is_lts(self, conn: sqlite3.Connection) -> None:
        """Refuse a file that is not an lts database (or not SQLite at all), reading only."""
        try:
            # One read transaction, one snapshot: read one by one, another process's migration can
            # commit between the version (0) and the tables (some), which looks like a foreign file.
            conn.execute("BEGIN")
            try:
                app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                tables = {r[0] for r in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
            finally:
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            busy = self._db_error(exc, "open it")
            if busy is not None and "busy" in str(busy):
                raise busy from None
            raise LtsError(f"{self.path}: not an lts database ({exc})") from None
        if app_id not in (0, APPLICATION_ID):
            raise LtsError(f"{self.path}: not an lts database (an SQLite file of another application, "
                           f"application_id {app_id:#x}); nothing was changed")
        if version > SCHEMA_VERSION:
            raise LtsError(
                f"{self.path}: database schema v{version} is newer than this lts (v{SCHEMA_VERSION}); upgrade lts"
            )
        expected = set().union(*(_tables_of(m) for m in MIGRATIONS[:version])) if version else set()
        if (version == 0 and tables) or not expected <= tables:
            shown = ", ".join(sorted(tables)[:4]) + (" ..." if len(tables) > 4 else "")
            raise LtsError(f"{self.path}: not an lts database (it holds tables {shown or 'none'} but not lts's "
                           f"schema v{version}); nothing was changed")

    def _migrate(self) -> None:
        version = self.schema_version()  # _check_is_lts has refused unreadable and newer files
        for target in range(version, SCHEMA_VERSION):
            with self.write() as conn:
                if self.schema_version() != target:  # another process migrated meanwhile
                    continue
                run_statements(conn, MIGRATIONS[target])
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
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
        from lts.space.counts import proxy_values

        p = proxy_values(cfg)
        conn.execute(
            "INSERT OR IGNORE INTO architectures (arch_id, family, config_json, decoder_params, total_params,"
            " flops, n_layer, d_model, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (cfg.arch_id, cfg.family, cfg.canonical_json(), p["decoder_params"], p["total_params"],
             p["flops"], cfg.n_layer, cfg.d_model, time.time()),
        )

    @staticmethod
    def insert_measurement(conn: sqlite3.Connection, m: dict[str, Any], replace: bool = False) -> None:
        """Cache a measurement; an existing one for the same (arch, device, protocol) stays unless ``replace``."""
        values = {**{k: m.get(k) for k in MEASUREMENT_FIELDS}, "measured_at": m.get("measured_at") or time.time()}
        conn.execute(
            f"INSERT OR {'REPLACE' if replace else 'IGNORE'} INTO measurements ({','.join(MEASUREMENT_FIELDS)})"
            f" VALUES ({','.join('?' * len(MEASUREMENT_FIELDS))})",
            [values[k] for k in MEASUREMENT_FIELDS],
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
            f"SELECT r.*, d.name AS device_name, {RUN_SPACE_SQL} AS space"
            " FROM runs r LEFT JOIN devices d USING (device_id) ORDER BY r.created_at DESC"
        )

    def run_rows(self, run_id: str, frontier_only: bool = False) -> list[dict[str, Any]]:
        """Members of a run with their config, proxies and measurement on the run's device."""
        run = self.run(run_id)
        where = "AND m.on_frontier = 1" if frontier_only else ""
        return self.query(
            f"""SELECT m.eval_index, m.generation, m.feasible, m.on_frontier, a.arch_id, a.family,
                       a.decoder_params, a.total_params, a.flops, a.n_layer, a.d_model, a.config_json,
                       x.latency_ms, x.latency_cv, x.repeats, x.peak_memory_mb, x.infeasible,
                       {", ".join("x." + c for c in GENERATION_COLUMNS)}
                FROM run_members m JOIN architectures a USING (arch_id)
                LEFT JOIN measurements x ON x.arch_id = m.arch_id AND x.device_id = ? AND x.protocol = ?
                WHERE m.run_id = ? {where} ORDER BY m.eval_index""",
            (run["device_id"], run["protocol"], run_id),
        )


def open_store(path: str | Path | None = None) -> Store:
    return Store(path if path is not None else DEFAULT_DB)
