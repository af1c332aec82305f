"""One measurement at a time per host: a first-come, first-served queue across processes.

Latency and memory taken while another process measures on the same machine are wrong (the two
compete for cores, caches and memory bandwidth). Every :class:`lts.cost.measure.Measurer` takes
this lock for the duration of one measurement, so CLI searches, dashboard-launched searches,
``lts measure`` and re-measurements on one host measure in turn.

How it works, in a directory shared by every process of the host (``$LTS_LOCK_DIR``, default
``<tmp>/lts-locks``):

* a waiter writes a *ticket* ``<name>.queue/<time_ns>-<pid>-<random>`` and holds an exclusive
  ``flock`` on it for as long as it waits or measures. A ticket whose file can be locked by
  someone else belongs to a process that died (the kernel drops a dead process's locks, whatever
  killed it, and pid reuse cannot fool it), so it is skipped and removed;
* the waiter's *position* is the number of live tickets older than its own (the holder's
  included): position 1 means "next";
* at position 0 it takes an exclusive ``flock`` on ``<name>.lock`` itself, which keeps the
  guarantee even if two tickets raced (clock steps, a ticket created between a listing and a
  lock); the ticket goes when the measurement ends, so a process that measures in a loop joins
  the back of the queue each time and two searches alternate instead of one starving the other.

Hand-written on ``fcntl.flock`` rather than the ``filelock`` package: the queue needs the ticket
directory anyway, and ``flock`` on a read-only descriptor lets processes of different users share
one lock file (``filelock`` opens it for writing).

``LTS_HOST_LOCK=off`` disables the lock (for the contrast run of ``bench/host_lock.py`` only).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from lts.errors import LtsError

WaitCallback = Callable[[int], None]


class WaitAborted(LtsError):
    """Raised by an ``on_wait`` callback to leave the queue (e.g. the search was cancelled)."""


def default_lock_dir() -> Path:
    return Path(os.environ.get("LTS_LOCK_DIR") or Path(tempfile.gettempdir()) / "lts-locks")


def lock_enabled() -> bool:
    return os.environ.get("LTS_HOST_LOCK", "on").strip().lower() not in ("off", "0", "no", "false")


def _make_shared_dir(path: Path) -> None:
    """Create ``path`` writable by every user of the host (sticky, like /tmp), if it is not there."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LtsError(f"cannot create the host lock directory {path}: {exc.strerror}") from None
    with contextlib.suppress(OSError):  # someone else's directory: it is theirs to set up
        if path.stat().st_uid == os.getuid():
            os.chmod(path, 0o1777)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _open_shared(path: Path) -> int:
    # Read-only is enough for flock, and works on a file another user created.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    with contextlib.suppress(OSError):
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o666)
    return fd


def _new_ticket() -> str:
    """``<time_ns>-<pid>-<random>``: sorts by arrival (fixed-width time), names its writer, never collides."""
    return f"{time.time_ns():020d}-{os.getpid():08d}-{uuid.uuid4().hex[:8]}"


def _ticket_pid(ticket: str) -> int | None:
    """The writer's pid from a :func:`_new_ticket` name; None for a file that is not a ticket."""
    parts = ticket.split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


@dataclass(frozen=True)
class HostLock:
    """The queue for one measuring resource of this host (``name``: ``measure`` for the machine)."""

    name: str = "measure"
    directory: Path = field(default_factory=default_lock_dir)
    poll_s: float = 0.05

    @property
    def lock_path(self) -> Path:
        return self.directory / f"{self.name}.lock"

    @property
    def queue_dir(self) -> Path:
        return self.directory / f"{self.name}.queue"

    def waiting(self) -> int:
        """Live tickets in the queue now (the holder's included): 0 when the device is free."""
        if not self.queue_dir.is_dir():
            return 0
        return sum(1 for t in sorted(os.listdir(self.queue_dir)) if self._alive(t))

    def _alive(self, ticket: str) -> bool:
        """Whether the process that wrote ``ticket`` still holds it; removes it when not."""
        path = self.queue_dir / ticket
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if not _try_flock(fd):
                return True
            with contextlib.suppress(OSError):  # another user's stale ticket stays; it is skipped anyway
                path.unlink()
            return False
        finally:
            os.close(fd)

    def holder(self) -> int | None:
        """The pid that holds (or is next to take) this host's turn: the oldest live ticket's."""
        if not self.queue_dir.is_dir():
            return None
        for ticket in sorted(os.listdir(self.queue_dir)):
            if self._alive(ticket):
                pid = _ticket_pid(ticket)
                if pid is not None:
                    return pid
        return None

    def describe_holder(self) -> str | None:
        """"process 1234 (lts search --resume ab12...)": who the waiting jobs wait for, from /proc where
        the host has it; None when nobody holds the device."""
        pid = self.holder()
        if pid is None:
            return None
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            cmd = ""
        cmd = cmd if len(cmd) <= 80 else cmd[:77] + "..."
        return f"process {pid}" + (f" ({cmd})" if cmd else "")

    def _position(self, mine: str) -> int:
        return sum(1 for t in sorted(os.listdir(self.queue_dir)) if t < mine and self._alive(t))

    @contextlib.contextmanager
    def hold(self, on_wait: WaitCallback | None = None) -> Iterator[None]:
        """Wait for this host's turn, then hold it until the block ends.

        ``on_wait(position)`` is called on every poll while waiting (position >= 1: how many are
        ahead) and once with 0 when the turn comes after a wait; it may raise :class:`WaitAborted`
        (or anything) to leave the queue.
        """
        if not lock_enabled():
            yield
            return
        _make_shared_dir(self.directory)
        _make_shared_dir(self.queue_dir)
        ticket = _new_ticket()
        ticket_path = self.queue_dir / ticket
        ticket_fd = os.open(ticket_path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o644)
        lock_fd = -1
        try:
            fcntl.flock(ticket_fd, fcntl.LOCK_EX)  # our own fresh file: never contended
            lock_fd = _open_shared(self.lock_path)
            waited = False
            while True:
                position = self._position(ticket)
                if position == 0 and _try_flock(lock_fd):
                    break
                waited = True
                if on_wait is not None:
                    on_wait(max(position, 1))
                time.sleep(self.poll_s)
            if waited and on_wait is not None:
                on_wait(0)
            yield
        finally:
            if lock_fd >= 0:
                os.close(lock_fd)  # closing drops the flock
            with contextlib.suppress(OSError):
                ticket_path.unlink()
            os.close(ticket_fd)
