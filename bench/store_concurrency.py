"""Many writers through one shared Store (the dashboard's case) beside other writer processes.

    python bench/store_concurrency.py [--threads 8] [--writes 200] [--processes 2]

Prints, for lts's Store (a connection per thread) and for the pattern it replaced (one sqlite3
connection with check_same_thread=False shared by every thread), the errors, the rows that landed
out of the rows written, torn reads seen by a polling reader (half of a two-statement transaction
visible), and the wall time.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lts.store.db import Store  # noqa: E402

DDL = "CREATE TABLE IF NOT EXISTS t_rows (who TEXT NOT NULL, i INTEGER NOT NULL, PRIMARY KEY (who, i))"


class SharedConnection:
    """The replaced pattern: one connection for every thread, transactions by hand."""

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 30000")

    @contextmanager
    def write(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def query(self, sql: str) -> list[tuple]:
        return self.conn.execute(sql).fetchall()


def _process_writer(path: str, who: str, n: int) -> None:
    s = Store(path)
    for i in range(n):
        with s.write() as conn:
            conn.execute("INSERT INTO t_rows VALUES (?, ?)", (who, i))
            conn.execute("INSERT INTO t_rows VALUES (?, ?)", (who + "-pair", i))
    s.close()


def trial(kind: str, threads: int, writes: int, processes: int) -> dict:
    path = str(Path(tempfile.mkdtemp()) / "bench.db")
    Store(path).close()
    with Store(path).write() as conn:
        conn.execute(DDL)
    shared = Store(path) if kind == "Store (connection per thread)" else SharedConnection(path)
    errors: list[str] = []
    go = threading.Barrier(threads + 1)

    def writer(k: int) -> None:
        go.wait()
        for i in range(writes):
            try:
                with shared.write() as conn:
                    conn.execute("INSERT INTO t_rows VALUES (?, ?)", (f"t{k}", i))
                    conn.execute("INSERT INTO t_rows VALUES (?, ?)", (f"t{k}-pair", i))
            except Exception as exc:  # noqa: BLE001 - counted
                errors.append(type(exc).__name__)

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(path, f"p{p}", writes)) for p in range(processes)]
    for p in procs:
        p.start()
    ts = [threading.Thread(target=writer, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    reader = Store(path)
    t0 = time.perf_counter()
    go.wait()
    torn = reads = 0
    while any(t.is_alive() for t in ts) or any(p.is_alive() for p in procs):
        counts = dict(reader.conn.execute("SELECT who, COUNT(*) FROM t_rows GROUP BY who").fetchall())
        torn += sum(1 for w, n in counts.items() if not w.endswith("-pair") and counts.get(w + "-pair") != n)
        reads += 1
        time.sleep(0.01)
    for t in ts:
        t.join()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    landed = reader.conn.execute("SELECT COUNT(*) FROM t_rows").fetchone()[0]
    return {"kind": kind, "errors": len(errors), "landed": landed, "written": 2 * writes * (threads + processes),
            "torn_reads": torn, "reads": reads, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--processes", type=int, default=2)
    a = ap.parse_args()
    print(f"{a.threads} threads x {a.writes} transactions through one store, {a.processes} writer processes "
          f"x {a.writes}, a reader polling; 2 rows per transaction")
    for kind in ("Store (connection per thread)", "one shared connection (replaced)"):
        r = trial(kind, a.threads, a.writes, a.processes)
        print(f"{r['kind']:34s} errors {r['errors']:5d}   rows {r['landed']:5d} / {r['written']}   "
              f"torn reads {r['torn_reads']} of {r['reads']}   {r['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
