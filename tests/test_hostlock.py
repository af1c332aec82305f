"""One measurement at a time per host: the cross-process queue, and its use by Measurer and searches."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lts.cost.hostlock import HostLock, WaitAborted

ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import json, sys, time
from pathlib import Path
from lts.cost.hostlock import HostLock
lock = HostLock(directory=Path(sys.argv[1]), poll_s=0.01)
time.sleep(max(0.0, float(sys.argv[4]) - time.time()) if len(sys.argv) > 4 else 0)  # start together
out = []
for _ in range(int(sys.argv[2])):
    with lock.hold():
        t0 = time.time(); time.sleep(float(sys.argv[3])); out.append((t0, time.time()))
print(json.dumps(out))
"""


def _python(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", *args], stdout=subprocess.PIPE, text=True, env=env, **kw)


def test_two_processes_never_hold_it_together(tmp_path):
    start = str(time.time() + 3)
    procs = [_python(HOLDER, str(tmp_path), "6", "0.05", start) for _ in range(2)]
    spans = [[tuple(s) for s in json.loads(p.communicate(timeout=60)[0])] for p in procs]
    both = sorted(s for spans_ in spans for s in spans_)
    assert len(both) == 12
    for (_, end), (start, _) in zip(both, both[1:]):
        assert start >= end - 1e-3, "two processes measured at the same time"
    # They take turns (first come, first served) rather than one finishing before the other starts.
    owner = [0 if s in spans[0] else 1 for s in both]
    switches = sum(a != b for a, b in zip(owner, owner[1:]))
    assert switches >= 3


def test_waiters_see_their_position_and_go_in_order(tmp_path):
    lock = HostLock(directory=tmp_path, poll_s=0.01)
    seen: dict[str, list[int]] = {"a": [], "b": []}
    order: list[str] = []
    release = threading.Event()

    def holder() -> None:
        with lock.hold():
            release.wait(10)

    def waiter(name: str) -> None:
        with lock.hold(on_wait=seen[name].append):
            order.append(name)
            time.sleep(0.2)  # long enough for the next one to see itself at position 1

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    time.sleep(0.1)
    for name in ("a", "b"):
        t = threading.Thread(target=waiter, args=(name,))
        t.start()
        threads.append(t)
        time.sleep(0.1)
    assert lock.waiting() == 3
    release.set()
    for t in threads:
        t.join(10)
    assert order == ["a", "b"]
    assert seen["a"][0] == 1 and seen["a"][-1] == 0
    assert seen["b"][0] == 2 and 1 in seen["b"] and seen["b"][-1] == 0
    assert lock.waiting() == 0 and not list(lock.queue_dir.iterdir())


def test_a_killed_holder_frees_the_host(tmp_path):
    proc = _python(HOLDER, str(tmp_path), "1", "60")
    lock = HostLock(directory=tmp_path, poll_s=0.01)
    deadline = time.time() + 30
    while lock.waiting() == 0 and time.time() < deadline:
        time.sleep(0.05)
    assert lock.waiting() == 1
    positions: list[int] = []
    killer = threading.Timer(0.3, proc.send_signal, (signal.SIGKILL,))
    killer.start()
    t0 = time.time()
    with lock.hold(on_wait=positions.append):
        waited = time.time() - t0
    proc.wait()
    assert 0.2 < waited < 5 and positions[0] == 1 and positions[-1] == 0
    assert not list(lock.queue_dir.iterdir())  # the dead process's ticket was removed


def test_on_wait_can_leave_the_queue(tmp_path):
    lock = HostLock(directory=tmp_path, poll_s=0.01)

    def give_up(position: int) -> None:
        raise WaitAborted(f"cancelled at position {position}")

    with lock.hold():
        with pytest.raises(WaitAborted, match="position 1"):
            with lock.hold(on_wait=give_up):
                pass
    assert lock.waiting() == 0


def test_off_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("LTS_HOST_LOCK", "off")
    lock = HostLock(directory=tmp_path / "locks")
    with lock.hold(), lock.hold():  # would wait forever if it were on
        pass
    assert not (tmp_path / "locks").exists()


def test_measurer_waits_for_the_host(tmp_path):
    """Every Measurer.measure takes the host lock (a candidate refused before any worker starts is enough)."""
    from lts.cost import Measurer, Protocol, detect_device
    from lts.space.ranges import load_space

    cfg = load_space("gpt2").sample(__import__("random").Random(0))
    lock = HostLock(directory=tmp_path, poll_s=0.01)
    positions: list[int] = []
    m = Measurer(detect_device("t"), Protocol(), memory_limit_mb=0.001, host_lock=lock, on_wait=positions.append)
    with lock.hold():
        t = threading.Thread(target=lambda: positions.append(("result", m.measure(cfg).infeasible)))
        t.start()
        time.sleep(0.3)
        assert t.is_alive() and positions and positions[0] == 1
    t.join(10)
    assert positions[-2] == 0 and "weights alone" in positions[-1][1]


# -- searches: "queued (position N)" while waiting, cancel while queued ----------------------------
def _queued_search(tmp_path, lock):
    from conftest import small_space
    from helpers import FAKE_DEVICE, FakeMeasure
    from lts.search.runner import SearchSettings, create_run
    from lts.search.session import _QueueAwareRunner, queue_reporter
    from lts.store.db import Store

    store = Store(tmp_path / "s.db")
    run_id = create_run(store, SearchSettings(space=small_space("gpt2"), budget=3), FAKE_DEVICE, "fake-b1")
    fake, report = FakeMeasure(), queue_reporter(store, run_id, check_every_s=0.0)

    def measure(cfg):
        with lock.hold(on_wait=report):
            return fake(cfg)

    return store, run_id, _QueueAwareRunner(store, run_id, measure=measure)


def _wait_for(pred, timeout=30.0):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_waiting_search_shows_its_queue_position(tmp_path):
    from lts.search.session import queue_position

    lock = HostLock(directory=tmp_path / "locks", poll_s=0.01)
    store, run_id, runner = _queued_search(tmp_path, lock)
    result = {}
    with lock.hold():
        t = threading.Thread(target=lambda: result.update(runner.run_to_end()))
        t.start()
        _wait_for(lambda: queue_position(store.run(run_id)) == 1)
        assert store.run(run_id)["message"] == "queued (position 1)" and store.run(run_id)["status"] == "running"
    t.join(30)
    assert result["status"] == "finished" and result["n_evaluated"] == 3
    assert queue_position(store.run(run_id)) is None


def test_cancelling_a_queued_search_stops_it_as_cancelled(tmp_path):
    from lts.search.session import cancel

    lock = HostLock(directory=tmp_path / "locks", poll_s=0.01)
    store, run_id, runner = _queued_search(tmp_path, lock)
    result = {}
    with lock.hold():
        t = threading.Thread(target=lambda: result.update(runner.run_to_end()))
        t.start()
        _wait_for(lambda: (store.run(run_id)["message"] or "").startswith("queued"))
        assert cancel(store, run_id) == "cancelling"
        t.join(30)
    assert result["status"] == "cancelled" and result["n_evaluated"] == 0
    assert "cancelled while queued" in result["message"]


def test_a_cli_search_waits_for_the_host_and_says_so(tmp_path):
    """End to end: `lts search` (real measurements) queues behind a measurement holding the host."""
    from conftest import small_space
    from lts.store.db import Store

    space = tmp_path / "space.json"
    space.write_text(json.dumps(small_space("gpt2").to_dict()))
    db = tmp_path / "s.db"
    lock = HostLock(directory=tmp_path / "locks", poll_s=0.01)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LTS_LOCK_DIR": str(lock.directory)}
    with lock.hold():
        proc = subprocess.Popen([sys.executable, "-m", "lts.cli", "search", "--space", str(space), "--device-name",
                                 "t", "--budget", "2", "--population", "2", "--db", str(db), "--no-progress"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        _wait_for(lambda: db.exists() and any((r["message"] or "").startswith("queued (position 1)")
                                              for r in Store(db).runs()), timeout=120)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out
    run = Store(db).runs()[0]
    assert run["status"] == "finished" and run["n_evaluated"] == 2 and run["message"] is None


def test_a_waiter_is_told_which_process_holds_the_device(tmp_path):
    lock = HostLock(directory=tmp_path, poll_s=0.01)
    assert lock.holder() is None and lock.describe_holder() is None
    proc = _python(HOLDER, str(tmp_path), "1", "60")
    try:
        deadline = time.time() + 30
        while lock.waiting() == 0 and time.time() < deadline:
            time.sleep(0.05)
        assert lock.holder() == proc.pid
        said = lock.describe_holder()
        assert said.startswith(f"process {proc.pid} (") and "python" in said
    finally:
        proc.kill()
        proc.wait()
    assert lock.holder() is None  # a dead holder's ticket does not count
