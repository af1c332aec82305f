"""Running a job detached from its caller, and telling whether its process still lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def spawn_detached(lts_args: list[str], db_path: str | Path, log_name: str, log_dir: str | Path | None = None) -> int:
    """Start ``python -m lts.cli *lts_args`` in its own session, output appended to a log beside the
    database (``logs/``), so it outlives the caller (a browser session, a CLI); returns its pid."""
    log_dir = Path(log_dir) if log_dir else Path(db_path).resolve().parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / log_name, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lts.cli", *lts_args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return proc.pid


def process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a finished child that nobody waited for is a zombie: not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
