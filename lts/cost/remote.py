"""Measure on a remote device of the team's Ray cluster: one Ray task per candidate.

A device joins the cluster as a node that declares a custom resource naming it::

    ray start --address HEAD:6379 --resources '{"lts-device:jetson-orin": 1}'

The search runs centrally (its database, its frontier); :class:`RayMeasurer` sends each
candidate's measurement as a Ray task that requires ``lts-device:NAME = 1``, so it runs on that
node and, the node holding one unit, one measurement at a time per device (Ray queues the rest, from
any number of searches). On the node the task uses an ordinary :class:`lts.cost.measure.Measurer`,
which also takes the node's host lock, so a local search on the same device waits its turn too.
The device record is detected *on the node* (its CPU, RAM, GPU, torch), so results land under
that device's id exactly as if it had searched itself.

Failures: a candidate that fails to run is ``infeasible`` as on a local device (the Measurer's
isolation is unchanged). A Ray worker or node that dies under a task makes Ray retry it
(``max_retries``); when the retries are spent, or the device's resource has been gone from the
cluster for ``node_grace_s``, :class:`DeviceLost` is raised with one line: the search stops as
failed with that reason, every finished measurement is already in the database, and
``lts search --resume RUN_ID`` carries on once the device is back.

Ray is an optional extra, imported only here (``pip install 'ray[default]'`` or ``ray``); every node
needs lts, torch and the driver's Python and Ray versions. Nothing else in lts imports this module.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from lts.cost.device import DeviceRecord
from lts.cost.measure import Measurement
from lts.cost.protocol import CANDIDATE_TIMEOUT_S, Protocol
from lts.errors import LtsError

RESOURCE_PREFIX = "lts-device:"
POLL_SECONDS = 1.0
SUBPROCESS_TIMEOUT_S = 120.0


class DeviceLost(LtsError):
    """The remote device cannot measure any more (its node left, its worker kept dying)."""


def resource_name(device_name: str) -> str:
    if not device_name or not device_name.strip():
        raise LtsError("a remote device needs a name (--device-name)")
    return RESOURCE_PREFIX + device_name.strip()


def require_ray() -> Any:
    """The ``ray`` module, or one clear line saying how to get it."""
    try:
        import ray
    except ImportError:
        raise LtsError("--ray-address needs Ray, which is not installed here: pip install 'ray>=2.9'") from None
    return ray


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # RayTaskError carries the task's own exception
    text = str(cause if cause is not None else exc)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return f"{type(cause or exc).__name__}: {lines[-1] if lines else ''}"[:300]


@dataclass(frozen=True)
class RayDevice:
    """A device resource offered by the cluster's live nodes."""

    name: str
    nodes: int  # live nodes declaring it
    total: float  # units declared (1 per node: one measurement at a time per node)
    hosts: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_devices(ray: Any) -> list[RayDevice]:
    """Devices of the cluster this process is connected to (``ray.init`` done)."""
    found: dict[str, dict[str, Any]] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        for key, amount in (node.get("Resources") or {}).items():
            if key.startswith(RESOURCE_PREFIX):
                d = found.setdefault(key[len(RESOURCE_PREFIX):], {"nodes": 0, "total": 0.0, "hosts": []})
                d["nodes"] += 1
                d["total"] += float(amount)
                d["hosts"].append(str(node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "?"))
    return [RayDevice(name, d["nodes"], d["total"], tuple(sorted(d["hosts"]))) for name, d in sorted(found.items())]


# -- what runs on the device's node ----------------------------------------------------------
@dataclass(frozen=True)
class NodeRequest:
    device_name: str
    protocol: dict[str, Any]
    config: dict[str, Any]
    memory_limit_mb: float | None = None
    timeout_s: float = CANDIDATE_TIMEOUT_S
    # Test hooks: "exit_once:PATH" (the Ray worker dies the first time), "exit" (dies every time),
    # "fake:SECONDS" (no torch: sleep, then return a synthetic feasible measurement).
    fault: str | None = None


class _NodeMeasurers:
    """The Measurer kept alive in a Ray worker process between tasks of one search.

    A Ray worker process runs many tasks; keeping its Measurer (and the torch workers under it)
    saves the 2-7 s start-up per candidate that a Measurer per task would cost. One entry: a
    worker serves one device and protocol at a time, and a new key closes the old Measurer.
    """

    def __init__(self) -> None:
        self.key: str | None = None
        self.measurer: Any = None
        atexit.register(self.close)

    def get(self, device: DeviceRecord, protocol: Protocol, limit: float | None, timeout_s: float) -> Any:
        from lts.cost.measure import Measurer

        key = json.dumps([device.device_id, protocol.to_dict(), limit, timeout_s], sort_keys=True)
        if key != self.key:
            self.close()
            self.measurer = Measurer(device, protocol, memory_limit_mb=limit, timeout_s=timeout_s)
            self.key = key
        return self.measurer

    def close(self) -> None:
        if self.measurer is not None:
            self.measurer.close()
        self.measurer, self.key = None, None


_NODE = _NodeMeasurers()  # per Ray worker process; see the class docstring for why it is kept


def node_detect(device_name: str, kind: str, threads: int) -> dict[str, Any]:
    """Ray task body: this node's device record."""
    from lts.cost.device import detect_device

    return {"device": detect_device(device_name, kind=kind, threads=threads).to_dict(), "host": socket.gethostname()}


def node_measure(req: NodeRequest) -> dict[str, Any]:
    """Ray task body: measure one candidate on this node; returns the measurement and the node's record."""
    from lts.cost.device import detect_device
    from lts.space.config import config_from_dict

    protocol = Protocol.from_dict(req.protocol)
    device = detect_device(req.device_name, kind=protocol.kind, threads=protocol.threads)
    started = time.time()
    kind, _, arg = (req.fault or "").partition(":")
    if kind == "exit" or (kind == "exit_once" and not os.path.exists(arg)):
        if arg:
            open(arg, "w").close()
        os._exit(1)
    if kind == "fake":
        time.sleep(float(arg))
        cfg = config_from_dict(req.config)
        m = Measurement(arch_id=cfg.arch_id, device_id=device.device_id, protocol=protocol.key, latency_ms=1.0,
                        latency_cv=0.0, repeats=3, peak_memory_mb=1.0, infeasible=None, seconds=float(arg))
    else:
        m = _NODE.get(device, protocol, req.memory_limit_mb, req.timeout_s).measure(req.config)
    return {"measurement": m.to_dict(), "device": device.to_dict(), "host": socket.gethostname(),
            "pid": os.getpid(), "started": started, "ended": time.time()}


# -- the driver side -------------------------------------------------------------------------
class RayMeasurer:
    """Same use as :class:`lts.cost.measure.Measurer`, measuring on a device of a Ray cluster.

        with RayMeasurer("HEAD:6379", "jetson-orin", Protocol()) as m:
            m.device                      # DeviceRecord detected on the node
            row = m.measure(cfg)          # a Measurement; DeviceLost if the device is gone

    ``address`` is what ``ray.init`` takes (``auto``, ``HOST:PORT``, ``ray://HOST:10001``). A
    process already connected to Ray (``ray.init`` done) uses that connection as it is.
    """

    def __init__(
        self,
        address: str,
        device_name: str,
        protocol: Protocol,
        memory_limit_mb: float | None = None,
        timeout_s: float = CANDIDATE_TIMEOUT_S,
        max_retries: int = 2,
        node_grace_s: float = 60.0,
    ) -> None:
        self.address = address
        self.device_name = device_name.strip()
        self.resource = resource_name(device_name)
        self.protocol = protocol
        self.memory_limit_mb = memory_limit_mb
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.node_grace_s = node_grace_s
        self.device: DeviceRecord | None = None
        self.last_reply: dict[str, Any] = {}
        self._ray: Any = None
        self._started_here = False

    def __enter__(self) -> "RayMeasurer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        if self._ray is not None:
            return
        ray = require_ray()
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except Exception as exc:
                raise LtsError(f"cannot connect to the Ray cluster at {self.address!r}: {_first_line(exc)}") from None
            self._started_here = True
        self._ray = ray
        try:
            self._check_offered()
            ref = ray.remote(node_detect).options(resources={self.resource: 0.001}, num_cpus=0).remote(
                self.device_name, self.protocol.kind, self.protocol.threads)
            self.device = DeviceRecord.from_dict(self._wait(ref, "detecting the device")["device"])
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._ray is not None and self._started_here:
            self._ray.shutdown()
        self._ray, self._started_here = None, False

    def _check_offered(self) -> None:
        names = [d.name for d in cluster_devices(self._ray)]
        if self.device_name not in names:
            offered = ", ".join(names) or "none"
            raise LtsError(
                f"no device {self.device_name!r} in the Ray cluster at {self.address!r} (devices: {offered}); "
                f"on the device run: ray start --address HEAD:6379 --resources '{{\"{self.resource}\": 1}}'"
            )

    def _offered(self) -> bool:
        return self._ray.cluster_resources().get(self.resource, 0) > 0

    def _wait(self, ref: Any, what: str) -> dict[str, Any]:
        """The task's reply; DeviceLost when Ray gives up on it or the device stays away."""
        ray = self._ray
        gone_since: float | None = None
        while True:
            done, _ = ray.wait([ref], timeout=POLL_SECONDS)
            if done:
                break
            if self._offered():
                gone_since = None
                continue
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since >= self.node_grace_s:
                ray.cancel(ref, force=True)
                raise DeviceLost(f"device {self.device_name!r} left the Ray cluster while {what} "
                                 f"(gone for {self.node_grace_s:g} s)")
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the task itself raised: a problem on the device
            raise LtsError(f"device {self.device_name!r}: {what} failed: {_first_line(exc)}") from None
        except ray.exceptions.RayError as exc:  # worker or node died, and Ray's retries are spent
            raise DeviceLost(f"device {self.device_name!r}: {what} failed after {self.max_retries + 1} "
                             f"attempt(s): {_first_line(exc)}") from None

    def measure(self, config: Any, _fault: str | None = None) -> Measurement:
        """Measure one config on the device (a GPT2Config/TransXLConfig or its dict)."""
        from lts.space.config import config_from_dict

        if self._ray is None:
            self.start()
        assert self.device is not None
        cfg = config if hasattr(config, "arch_id") else config_from_dict(config)
        req = NodeRequest(device_name=self.device_name, protocol=self.protocol.to_dict(), config=cfg.to_dict(),
                          memory_limit_mb=self.memory_limit_mb, timeout_s=self.timeout_s, fault=_fault)
        task = self._ray.remote(node_measure).options(
            resources={self.resource: 1}, num_cpus=0, max_retries=self.max_retries, retry_exceptions=False)
        reply = self._wait(task.remote(req), f"measuring {cfg.arch_id}")
        self.last_reply = reply
        node = DeviceRecord.from_dict(reply["device"])
        if node.device_id != self.device.device_id:
            raise LtsError(f"device name {self.device_name!r} is declared by two different machines "
                           f"({self.device.device_id} and {node.device_id} on {reply.get('host')}): give each its own name")
        return Measurement.from_dict({**reply["measurement"], "device_id": self.device.device_id})


# -- for processes that must not connect to Ray themselves (the dashboard) ---------------------
def _run_isolated(args: list[str]) -> Any:
    import importlib.util

    if importlib.util.find_spec("ray") is None:  # say so here, without a subprocess (or importing Ray)
        require_ray()
    try:
        out = subprocess.run([sys.executable, "-m", "lts.cost.remote", *args], capture_output=True, text=True,
                             timeout=SUBPROCESS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise LtsError(f"the Ray cluster did not answer in {SUBPROCESS_TIMEOUT_S:g} s") from None
    if out.returncode != 0:
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        raise LtsError(lines[-1].removeprefix("lts: error: ") if lines else f"exit status {out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def list_ray_devices(address: str) -> list[RayDevice]:
    """The device resources of the cluster at ``address``, asked from a short-lived subprocess so
    the caller (a Streamlit server) never becomes a Ray driver itself."""
    return [RayDevice(d["name"], d["nodes"], d["total"], tuple(d["hosts"])) for d in _run_isolated(["devices", address])]


def detect_ray_device(address: str, device_name: str, kind: str = "cpu", threads: int = 1) -> DeviceRecord:
    """The device record of ``device_name`` as detected on its node (in a subprocess, see above)."""
    return DeviceRecord.from_dict(_run_isolated(["detect", address, device_name, kind, str(threads)]))


def _main(argv: list[str]) -> int:
    ray = require_ray()
    try:
        ray.init(address=argv[1], include_dashboard=False, log_to_driver=False)
        if argv[0] == "devices":
            print(json.dumps([d.to_dict() for d in cluster_devices(ray)]))
        else:
            name, kind, threads = argv[2], argv[3], int(argv[4])
            with RayMeasurer(argv[1], name, Protocol(kind=kind, threads=threads)) as m:
                assert m.device is not None
                print(json.dumps(m.device.to_dict()))
    finally:
        ray.shutdown()
    return 0


def _entry(argv: list[str]) -> int:
    try:
        return _main(argv)
    except LtsError as exc:
        print(f"lts: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a cluster that cannot be reached raises Ray's own errors
        print(f"lts: error: cannot reach the Ray cluster at {argv[1]!r}: {_first_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_entry(sys.argv[1:]))
