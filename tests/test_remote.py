"""Remote devices through Ray: a local Ray with two fake device resources ("a" and "b") on this machine."""

from __future__ import annotations

import os
import threading
import time

import pytest

from lts.cost.device import detect_device
from lts.cost.protocol import Protocol
from lts.errors import LtsError

ray = pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'ray>=2.9')")

from lts.cost.remote import DeviceLost, RayMeasurer, cluster_devices  # noqa: E402

pytestmark = pytest.mark.slow  # starts a local Ray cluster


@pytest.fixture(scope="module")
def cluster():
    # Ray runs its workers at niceness 15: beside any busy process they (and the measurement workers
    # they start) get almost no CPU, and a worker's torch import outlasts its 180 s start-up timeout.
    # A device node is started the same way (README: "Remote devices through Ray").
    old = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = "0"
    ray.init(num_cpus=2, resources={"lts-device:a": 1, "lts-device:b": 1}, include_dashboard=False,
             log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("RAY_worker_niceness", None)
        else:
            os.environ["RAY_worker_niceness"] = old


def _configs(n: int, seed: int = 0):
    import random

    from conftest import small_space

    space, rng = small_space("gpt2"), random.Random(seed)
    return [space.sample(rng) for _ in range(n)]


def test_the_cluster_lists_its_devices_and_refuses_an_unknown_one(cluster):
    from lts.cost.remote import list_ray_devices

    assert [d.name for d in cluster_devices(ray)] == ["a", "b"]
    assert [(d.name, d.nodes) for d in list_ray_devices(cluster)] == [("a", 1), ("b", 1)]  # from a subprocess
    with pytest.raises(LtsError, match=r"no device 'c' in the Ray cluster .*devices: a, b.*ray start"):
        RayMeasurer(cluster, "c", Protocol()).start()


def test_measurements_land_under_their_device_one_at_a_time(cluster):
    """Two searches on device a and one on b at once: a's measurements never overlap, a and b run in parallel."""
    replies: dict[str, list[dict]] = {"a": [], "b": []}
    devices = {}

    def search(name: str, seed: int) -> None:
        with RayMeasurer(cluster, name, Protocol()) as m:
            devices[name] = m.device
            for cfg in _configs(3, seed):
                row = m.measure(cfg, _fault="fake:0.3")
                assert row.device_id == m.device.device_id and row.arch_id == cfg.arch_id
                replies[name].append(m.last_reply)

    threads = [threading.Thread(target=search, args=args) for args in (("a", 0), ("a", 1), ("b", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(replies["a"]) == 6 and len(replies["b"]) == 3
    for name in ("a", "b"):  # the record detected on the node, under the device's own name
        assert devices[name].device_id == detect_device(name, threads=1).device_id
        assert {r["device"]["device_id"] for r in replies[name]} == {devices[name].device_id}
    spans = sorted((r["started"], r["ended"]) for r in replies["a"])
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start >= end - 0.01, "two measurements on device a at the same time"
    b_spans = [(r["started"], r["ended"]) for r in replies["b"]]
    assert any(s < e2 and s2 < e for s, e in spans for s2, e2 in b_spans), "devices a and b did not run in parallel"


def test_a_killed_worker_is_retried(cluster, tmp_path):
    marker = tmp_path / "died-once"
    with RayMeasurer(cluster, "b", Protocol(), max_retries=2) as m:
        row = m.measure(_configs(1)[0], _fault=f"exit_once:{marker}")
    assert marker.exists() and row.infeasible is None and row.latency_ms > 0  # the retry measured for real


def test_spent_retries_and_a_vanished_device_stop_the_search_with_the_reason(cluster, monkeypatch):
    with RayMeasurer(cluster, "b", Protocol(), max_retries=1) as m:
        with pytest.raises(DeviceLost, match=r"device 'b': measuring \w+ failed after 2 attempt\(s\)"):
            m.measure(_configs(1)[0], _fault="exit")
        m.node_grace_s = 0.5
        monkeypatch.setattr(RayMeasurer, "_offered", lambda self: False)
        with pytest.raises(DeviceLost, match="device 'b' left the Ray cluster while measuring"):
            m.measure(_configs(1)[0], _fault="fake:5")


def test_a_search_measures_on_the_ray_device(cluster, tmp_path):
    """End to end with real measurements: the run's device is the node's record, results land under it."""
    import contextlib

    from conftest import small_space
    from lts.search.session import new_run, open_runner
    from lts.store.db import Store

    store = Store(tmp_path / "s.db")
    t0 = time.time()
    run_id = new_run(store, small_space("gpt2"), "a", budget=2, population=2, ray_address=cluster)
    run = store.run(run_id)
    assert run["device_id"] == detect_device("a", threads=1).device_id
    with contextlib.ExitStack() as stack:
        result = open_runner(store, run_id, stack).run_to_end()
    assert result["status"] == "finished" and result["n_evaluated"] == 2, result["message"]
    rows = store.query("SELECT * FROM measurements WHERE device_id = ?", (run["device_id"],))
    assert len(rows) == 2 and all(r["latency_ms"] and r["peak_memory_mb"] for r in rows)
    assert result["frontier_size"] >= 1 and time.time() - t0 < 120
