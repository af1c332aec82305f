import multiprocessing as mp
import random
import sqlite3
import time

import pytest

from conftest import small_space
from helpers import FAKE_DEVICE
from lts.errors import LtsError
from lts.store.db import SCHEMA_VERSION, Store


def test_schema_wal_and_foreign_keys(tmp_path):
    with Store(tmp_path / "a.db") as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(sqlite3.IntegrityError):
            with s.write() as conn:
                conn.execute("INSERT INTO run_members VALUES ('nope', 'nope', 0, 0, 1, 0)")


def test_failed_write_rolls_back(tmp_path):
    s = Store(tmp_path / "a.db")
    cfg = small_space("gpt2").sample(random.Random(0))
    with pytest.raises(RuntimeError):
        with s.write() as conn:
            s.upsert_architecture(conn, cfg)
            raise RuntimeError("boom")
    assert s.db["architectures"].count == 0


def test_newer_schema_is_refused_and_garbage_is_reported(tmp_path):
    p = tmp_path / "new.db"
    conn = sqlite3.connect(p)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(LtsError, match="newer than this lts"):
        Store(p)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LtsError, match="junk.db"):
        Store(junk)


def test_old_database_is_migrated(tmp_path):
    p = tmp_path / "old.db"
    conn = sqlite3.connect(p)  # an empty pre-release file (user_version 0)
    conn.close()
    with Store(p) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert "runs" in s.db.table_names()


def _writer(path, worker, n):
    from lts.store.db import Store as S

    s = S(path)
    space = small_space("gpt2")
    rng = random.Random(worker)
    for i in range(n):
        cfg = space.sample(rng)
        with s.write() as conn:
            s.upsert_device(conn, {**FAKE_DEVICE})
            s.upsert_architecture(conn, cfg)
            s.insert_measurement(conn, {"arch_id": cfg.arch_id, "device_id": FAKE_DEVICE["device_id"],
                                        "protocol": f"w{worker}-{i}", "latency_ms": 1.0})
    s.close()


def test_two_writers_and_a_reader_lose_nothing(tmp_path):
    path = str(tmp_path / "c.db")
    Store(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in (1, 2)]
    for p in procs:
        p.start()
    reader = Store(path)
    reads = 0
    while any(p.is_alive() for p in procs):
        reader.query("SELECT COUNT(*) AS n FROM measurements")
        reads += 1
        time.sleep(0.005)
    for p in procs:
        p.join()
        assert p.exitcode == 0
    assert reader.db["measurements"].count == 300
    assert reads > 0
