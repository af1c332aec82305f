"""A Store shared by threads (as the dashboard shares one across browser sessions) and processes."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
import threading
import time

import pytest

from lts.errors import LtsError
from lts.store.db import Store

N_THREADS, N_WRITES = 8, 200


def _table(store: Store) -> None:
    with store.write() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_rows (who TEXT NOT NULL, i INTEGER NOT NULL, PRIMARY KEY (who, i))")


def _process_writer(path: str, who: str, n: int) -> None:
    s = Store(path)
    for i in range(n):
        with s.write() as conn:
            conn.execute("INSERT INTO t_rows VALUES (?, ?)", (who, i))
            conn.execute("INSERT INTO t_rows VALUES (?, ?)", (who + "-pair", i))  # two statements, one transaction
    s.close()


def test_threads_and_processes_writing_through_one_store_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.db")
    store = Store(path)
    _table(store)
    errors: list[str] = []
    start = threading.Barrier(N_THREADS + 1)

    def thread_writer(k: int) -> None:
        start.wait()
        for i in range(N_WRITES):
            try:
                with store.write() as conn:
                    conn.execute("INSERT INTO t_rows VALUES (?, ?)", (f"thread{k}", i))
                    conn.execute("INSERT INTO t_rows VALUES (?, ?)", (f"thread{k}-pair", i))
            except Exception as exc:  # noqa: BLE001 - every failure is counted, none may happen
                errors.append(f"{type(exc).__name__}: {exc}")

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(path, f"proc{p}", N_WRITES)) for p in range(2)]
    for p in procs:
        p.start()
    threads = [threading.Thread(target=thread_writer, args=(k,)) for k in range(N_THREADS)]
    for t in threads:
        t.start()
    reads, torn = 0, 0
    start.wait()
    reader = Store(path)
    while any(t.is_alive() for t in threads) or any(p.is_alive() for p in procs):
        # The reader polls through the shared store too: it must never see half a transaction.
        rows = store.query("SELECT who, COUNT(*) AS n FROM t_rows GROUP BY who")
        counts = {r["who"]: r["n"] for r in rows}
        torn += sum(1 for w, n in counts.items() if not w.endswith("-pair") and counts.get(w + "-pair") != n)
        reader.query("SELECT COUNT(*) FROM t_rows")
        reads += 1
        time.sleep(0.01)
    for t in threads:
        t.join()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert errors == []
    assert torn == 0 and reads > 0
    got = {(r["who"], r["i"]) for r in store.query("SELECT who, i FROM t_rows")}
    whos = [f"thread{k}" for k in range(N_THREADS)] + ["proc0", "proc1"]
    assert got == {(w + sfx, i) for w in whos for sfx in ("", "-pair") for i in range(N_WRITES)}
    assert len(got) == (N_THREADS + 2) * 2 * N_WRITES


def test_another_threads_statements_never_land_in_my_transaction(tmp_path):
    """Thread A holds a write and then fails; thread B's write meanwhile must wait, land, and survive A's rollback."""
    store = Store(tmp_path / "a.db")
    _table(store)
    inside, b_done = threading.Event(), threading.Event()
    result: dict[str, object] = {}

    def a() -> None:
        try:
            with store.write() as conn:
                conn.execute("INSERT INTO t_rows VALUES ('a', 0)")
                inside.set()
                b_done.wait(0.5)  # B must not get in while A holds the write lock
                raise RuntimeError("a fails")
        except RuntimeError:
            result["a"] = "rolled back"

    def b() -> None:
        inside.wait(10)
        with store.write() as conn:
            conn.execute("INSERT INTO t_rows VALUES ('b', 0)")
        result["b_at"] = time.monotonic()
        b_done.set()

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start(), tb.start()
    ta.join(30), tb.join(30)
    assert result["a"] == "rolled back"
    assert [r["who"] for r in store.query("SELECT who FROM t_rows")] == ["b"]


def test_connections_of_ended_threads_are_closed(tmp_path):
    """Streamlit runs every rerun in a new thread: the store must not keep a connection per thread ever seen."""
    store = Store(tmp_path / "a.db")
    for _ in range(30):
        t = threading.Thread(target=lambda: store.query("SELECT 1"))
        t.start()
        t.join()
    assert store.connections() <= 2  # this thread's and at most the last ended one's (closed on the next)
    store.close()
    assert store.connections() == 0


def test_nested_write_in_one_thread_is_refused(tmp_path):
    store = Store(tmp_path / "a.db")
    with pytest.raises(RuntimeError, match="inside another write"):
        with store.write():
            with store.write():
                pass
    assert not store.conn.in_transaction


def test_memory_store_is_shared_and_serialised():
    store = Store(":memory:")
    _table(store)

    def w(k: int) -> None:
        for i in range(50):
            with store.write() as conn:
                conn.execute("INSERT INTO t_rows VALUES (?, ?)", (str(k), i))

    threads = [threading.Thread(target=w, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.query("SELECT COUNT(*) AS n FROM t_rows")[0]["n"] == 200


# -- files that are not lts databases --------------------------------------------------------------
def _digest(path) -> bytes:
    return path.read_bytes()


def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path):
    p = tmp_path / "other.db"
    conn = sqlite3.connect(p)
    conn.execute("CREATE TABLE runs (x)")  # a name lts also uses: the old code then failed half-way
    conn.execute("INSERT INTO runs VALUES (1)")
    conn.commit()
    conn.close()
    before = _digest(p)
    with pytest.raises(LtsError, match="not an lts database"):
        Store(p)
    assert _digest(p) == before
    assert not (tmp_path / "other.db-wal").exists()


def test_another_applications_file_is_refused(tmp_path):
    p = tmp_path / "app.db"
    conn = sqlite3.connect(p)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    before = _digest(p)
    with pytest.raises(LtsError, match="another application"):
        Store(p)
    assert _digest(p) == before


def test_new_databases_are_marked_as_lts(tmp_path):
    from lts.store.db import APPLICATION_ID

    Store(tmp_path / "new.db").close()
    conn = sqlite3.connect(tmp_path / "new.db")
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID


def test_a_read_only_database_gives_one_line_and_reads_still_work(tmp_path, monkeypatch, capsys):
    """Read-only as SQLite reports it (SQLITE_READONLY): a write says so in one line; reads go on.

    The suite runs as root, for whom file modes do not make a file read-only, so the connection is made
    read-only with ``PRAGMA query_only`` (the same error a read-only file or mount gives)."""
    import json

    from lts.cli import main

    path = tmp_path / "ro.db"
    Store(path).close()
    connect = Store._connect

    def read_only(self):
        conn = connect(self)
        conn.execute("PRAGMA query_only = ON")
        return conn

    monkeypatch.setattr(Store, "_connect", read_only)
    s = Store(path)
    assert s.query("SELECT COUNT(*) AS n FROM runs") == [{"n": 0}]
    with pytest.raises(LtsError, match="read-only"):
        with s.write() as conn:
            conn.execute("INSERT INTO audit_log (at, user, role, via, action, outcome) VALUES (0,'u','r','cli','a','ok')")
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"format": "lts-results-bundle", "version": 1, "devices": [], "architectures": [],
                                  "measurements": [], "runs": [], "members": []}))
    assert main(["import", str(bundle), "--db", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "read-only" in err[0], err


def test_a_snapshot_sees_one_moment(tmp_path):
    store, other = Store(tmp_path / "s.db"), Store(tmp_path / "s.db")
    _table(store)
    with store.snapshot():
        before = store.query("SELECT COUNT(*) AS n FROM t_rows")[0]["n"]
        with other.write() as conn:  # another writer commits meanwhile
            conn.execute("INSERT INTO t_rows VALUES ('x', 0)")
        assert store.query("SELECT COUNT(*) AS n FROM t_rows")[0]["n"] == before == 0
    assert store.query("SELECT COUNT(*) AS n FROM t_rows")[0]["n"] == 1
    with store.write() as conn, store.snapshot():  # inside a write: the write's own view
        conn.execute("INSERT INTO t_rows VALUES ('y', 0)")
        assert store.query("SELECT COUNT(*) AS n FROM t_rows")[0]["n"] == 2


def _open_at(path: str, start: float) -> str:
    while time.time() < start:  # all open together: the race is in the first milliseconds of a file
        pass
    try:
        Store(path).close()
        return "ok"
    except LtsError as exc:
        return str(exc)


def test_processes_opening_one_new_database_together_all_succeed(tmp_path):
    # Before the fix, 2 of 15 rounds of six failed: "database is locked" switching to WAL while
    # another process created the file, or "not an lts database" from a half-read schema.
    ctx = mp.get_context("spawn")
    failures = []
    with ctx.Pool(6) as pool:
        for round_ in range(25):
            path = str(tmp_path / f"new{round_}.db")
            start = time.time() + 0.3
            failures += [r for r in pool.starmap(_open_at, [(path, start)] * 6) if r != "ok"]
    assert failures == []
    assert Store(str(tmp_path / "new0.db")).schema_version() > 0
