"""`--db` pointing at something that is not a healthy lts database: one line, exit 2, file unchanged."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from lts.cli import main
from lts.store.db import SCHEMA_VERSION, Store


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE runs (run_id TEXT, note TEXT)")  # a table name lts uses too
    conn.execute("INSERT INTO runs VALUES ('x', 'theirs')")
    conn.commit()
    conn.close()


def _other_app(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 7")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()


def _garbage(path: Path) -> None:
    path.write_bytes(b"certainly not SQLite\n" * 400)


def _garbled(path: Path) -> None:
    """A real lts database whose table pages were overwritten (a disk or copy went wrong)."""
    s = Store(path)
    with s.write() as conn:
        conn.executemany("INSERT INTO audit_log (at, user, role, via, action, outcome) VALUES (?,?,?,?,?,?)",
                         [(float(i), "u" * 300, "r", "cli", "a", "ok") for i in range(3000)])
    s.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    data = bytearray(path.read_bytes())
    for off in range(2 * 4096, len(data), 4096):
        data[off: off + 64] = b"\xa5" * 64
    path.write_bytes(bytes(data))


DATABASES = {"foreign": _foreign, "other_app": _other_app, "newer": _newer, "garbage": _garbage, "garbled": _garbled}
COMMANDS = {
    "runs": ["runs"],
    "frontier": ["frontier", "0123456789ab"],
    "search": ["search", "--objectives", "proxy", "--budget", "1", "--no-progress"],
    "import": ["import", "{bundle}"],
    "audit": ["team", "audit"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind", list(DATABASES))
def test_a_bad_database_is_one_line_and_unchanged(tmp_path, capsys, kind, command):
    db = tmp_path / "x.db"
    DATABASES[kind](db)
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps({"format": "lts-results-bundle", "version": 1, "devices": [], "architectures": [],
                                  "measurements": [], "runs": [], "members": []}))
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    argv = [a.replace("{bundle}", str(bundle)) for a in COMMANDS[command]] + ["--db", str(db)]
    assert main(argv) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("lts: error: ") and "Traceback" not in err[0], err
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert not Path(f"{db}-wal").exists() or Path(f"{db}-wal").stat().st_size == 0
