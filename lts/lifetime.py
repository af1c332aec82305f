"""Child processes that end with the process that started them.

``kill -9`` of a parent does not end its children: a measurement worker whose search was killed
went on timing candidates (for minutes, outside the host's measuring lock, spoiling every later
measurement on the host), and a validation worker went on training a model nobody would record.
A child therefore watches its parent and exits as soon as it is gone.

Watching ``os.getppid()`` from a thread rather than ``prctl(PR_SET_PDEATHSIG)``: the death signal
fires when the *thread* that started the child ends, and lts starts workers from short-lived
threads (a dashboard session, a test), which would kill healthy workers.
"""

from __future__ import annotations

import os
import threading
import time


def exit_with_parent(parent_pid: int, poll_s: float = 0.2) -> threading.Thread:
    """Start a daemon thread that ends this process (status 1) once ``parent_pid`` is no longer its parent."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
