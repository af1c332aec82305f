"""Measure a candidate's latency and peak memory on this device, in isolated worker processes.

    with Measurer(detect_device("laptop"), Protocol()) as m:
        for cfg in candidates:
            row = m.measure(cfg)          # never raises for a candidate that fails to run
            if row.infeasible: ...        # one-line reason: out of memory, crash, timeout, ...

A :class:`Measurer` owns long-lived workers (:mod:`lts.cost.worker`) that import torch once and
measure candidates one after another: on CPU a memory worker and a latency worker (the two want
opposite allocator settings, see the worker's docstring); on CUDA one worker does both. On CPU the
latency worker builds and warms the candidate up while the memory worker measures it (when two
copies fit easily in free memory; ``overlap=False`` turns this off) and starts timing as soon as it
is warm, while the memory worker's forward is still running (``time_early=False`` waits for it).
The build is about a tenth of a forward and the memory forward about 1.6-1.9 forwards (it page-
faults every block in afresh), so that overlap covers the first timed forward or so, and the median
of three or more discounts it. Measured in paired runs here (bench/early_timing.py: the same
architectures both ways, back to back): latency early / late +1.3%, -0.9%, +0.7% (medians of 40
pairs; machine noise between repeats 4-9%), 0.76-0.78 s instead of 0.94-0.96 s per measurement.
What it guarantees:

* a Python error in a worker (an allocation refused by the memory guard, a shape error, CUDA
  OOM) comes back as ``infeasible="<one line>"``, and the worker carries on;
* a worker that dies (SIGKILL from the OOM killer, a segfault) gives
  ``infeasible="worker died (signal 9 SIGKILL, likely out of memory)"``; the next call starts a
  new worker. Earlier measurements are unaffected: each one is returned when it is taken;
* a candidate that takes longer than ``timeout_s`` (per worker call) is killed and recorded as
  timed out;
* ``memory_limit_mb``: a candidate whose fp32 weights alone exceed it is refused before anything is
  built, and one whose measured peak exceeds it is infeasible, its latency not recorded (its peak
  is still returned). Two copies run at once only when they fit in a quarter of the free memory;
  otherwise memory is measured first, and a candidate that cannot fit is never timed.

A :class:`Measurement` carries ``arch_id``, ``device_id`` and the protocol key: the store caches on
that triple, so a search never measures the same architecture twice on a device.

Measurements on one host take turns: each ``measure`` call holds the host-wide queue of
:mod:`lts.cost.hostlock` for the duration of one measurement (worker restarts included), so two
searches, a re-measurement and ``lts measure`` never time candidates at the same time.
``on_wait(position)`` is told the queue position while a call waits (0 once its turn comes).

If the kernel cannot reset the peak-RSS mark (``/proc/self/clear_refs``; Linux < 4.0 or a sandbox
without it), every candidate gets a fresh memory worker instead, whose high-water mark then
starts at the torch import: 1-2 s slower per candidate, and the peak is an upper bound.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from lts.cost.device import DeviceRecord
from lts.cost.hostlock import HostLock, WaitCallback
from lts.cost.protocol import CANDIDATE_TIMEOUT_S, GENERATION_FIELDS, Protocol
from lts.errors import LtsError
from lts.space.counts import total_params

START_TIMEOUT_S = 180.0  # importing torch on a cold, busy machine can take a while


@dataclass
class Measurement:
    arch_id: str
    device_id: str
    protocol: str  # Protocol.key
    latency_ms: float | None  # median of the timed forwards
    latency_cv: float | None  # standard deviation / mean of the timed forwards
    repeats: int  # timed forwards
    peak_memory_mb: float | None  # MiB: weights + one steady-state forward (see lts.cost.worker)
    infeasible: str | None  # None when feasible, else a one-line reason
    seconds: float  # wall time spent measuring (builds, memory, warm-up, timing, messaging)
    weights_memory_mb: float | None = None  # MiB resident for the built model alone
    converged: bool | None = None  # the median's 95% CI met the protocol's rel_ci
    latency_wall_ms: float | None = None  # median elapsed time (= latency_ms with the wall clock)
    latency_cpu_ms: float | None = None  # median thread CPU time (= latency_ms with the cpu clock)
    # the generate workload (None for forward): latency_ms is then one whole generation
    prefill_ms: float | None = None  # median prefill of the prompt
    decode_ms_per_token: float | None = None  # median decode step, over every step of every repeat
    decode_p90_ms: float | None = None  # its 90th percentile
    tokens_per_s: float | None = None  # decode throughput: 1000 / decode_ms_per_token

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Measurement":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


# The reasons a candidate is refused by the memory limit (not by the device): such a measurement
# holds only under that limit, so a run with a larger limit (or none) measures the candidate again.
LIMIT_REFUSALS = ("weights alone need ", "peak memory ")


def refused_by_limit(infeasible: str | None) -> bool:
    return bool(infeasible) and infeasible.startswith(LIMIT_REFUSALS)


def weights_mb(cfg: Any) -> float:
    """MiB of the candidate's fp32 weights (what the limit is first checked against)."""
    return 4 * total_params(cfg) / 2**20


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return "unknown signal"


class _Worker:
    """One worker process and its reply pipe."""

    def __init__(self, role: str, protocol: Protocol, warm: bool = True) -> None:
        self.role = role
        env = dict(os.environ)
        n = str(protocol.threads)
        # Fix every threading library's pool before it starts, not only torch's intra-op pool.
        env.update(OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
        if role == "memory":
            # MKL keeps a pool of GEMM scratch buffers that only grows; without it, what a forward
            # needs is allocated and freed inside the forward (and counted in its peak).
            env["MKL_DISABLE_FAST_MM"] = "1"
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        cmd = [sys.executable, "-m", "lts.cost.worker", "--threads", n, "--kind", protocol.kind,
               "--role", role, "--parent-pid", str(os.getpid())]
        if not warm:
            cmd.append("--no-warmup")
        self._stderr = tempfile.TemporaryFile()
        self._buf = b""
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, bufsize=0
        )
        self.ready: dict[str, Any] | None = None

    def wait_ready(self) -> None:
        reply = None
        try:
            reply = self.read(time.monotonic() + START_TIMEOUT_S)
        except TimeoutError:
            pass
        if reply is None or not reply.get("ready"):
            why = (reply or {}).get("error") or self.death_reason()
            self.stop()
            raise LtsError(f"could not start the {self.role} worker: {why}")
        self.ready = reply

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def read(self, deadline: float) -> dict[str, Any] | None:
        """One JSON reply, or None when the worker closed the pipe; raises TimeoutError."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def send(self, request: Mapping[str, Any], timeout_s: float) -> str | None:
        """Send one request; ``None``, or the reason the worker is gone."""
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
        except (BrokenPipeError, ConnectionResetError, ValueError):
            why = self.death_reason()
            self.stop()
            return why
        return None

    def recv(self) -> tuple[dict[str, Any] | None, str | None]:
        """``(reply, None)``, or ``(None, reason)`` when the worker died or timed out (then it is gone)."""
        try:
            reply = self.read(self.deadline)
        except TimeoutError:
            self.kill()
            return None, f"timed out after {self.timeout_s:g} s"
        if reply is None:
            why = self.death_reason()
            self.stop()
            return None, why
        return reply, None

    def call(self, request: Mapping[str, Any], timeout_s: float) -> tuple[dict[str, Any] | None, str | None]:
        why = self.send(request, timeout_s)
        return (None, why) if why is not None else self.recv()

    def death_reason(self) -> str:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        if rc < 0:
            sig = -rc
            hint = ", likely out of memory" if sig == signal.SIGKILL else ""
            return f"worker died (signal {sig} {_signal_name(sig)}{hint})"
        tail = ""
        if not self._stderr.closed:
            self._stderr.seek(0)
            lines = [ln for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
            tail = f": {lines[-1].strip()[:200]}" if lines else ""
        return f"worker exited with status {rc}{tail}"

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait()
        self.stop()

    def stop(self) -> None:
        if self.alive:
            # A worker keeps nothing worth a graceful exit, and tearing torch down takes a while.
            self.proc.kill()
            self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass
        if not self._stderr.closed:
            self._stderr.close()


class Measurer:
    """Context manager owning the isolated worker processes (restarted when one dies)."""

    def __init__(
        self,
        device: DeviceRecord,
        protocol: Protocol,
        memory_limit_mb: float | None = None,
        timeout_s: float = CANDIDATE_TIMEOUT_S,
        overlap: bool = True,
        time_early: bool = True,
        host_lock: HostLock | None = None,
        on_wait: WaitCallback | None = None,
    ) -> None:
        if device.kind != protocol.kind:
            raise LtsError(f"device {device.name!r} is kind {device.kind!r} but the protocol is {protocol.kind!r}")
        if device.threads != protocol.threads:
            raise LtsError(
                f"device {device.name!r} was recorded with {device.threads} threads "
                f"but the protocol uses {protocol.threads}"
            )
        if memory_limit_mb is not None and not memory_limit_mb > 0:
            raise LtsError(f"memory limit must be positive, got {memory_limit_mb!r}")
        if not timeout_s > 0:
            raise LtsError(f"timeout must be positive, got {timeout_s!r}")
        self.device = device
        self.protocol = protocol
        self.memory_limit_mb = memory_limit_mb
        self.timeout_s = timeout_s
        self.overlap = overlap
        self.time_early = time_early
        self.host_lock = host_lock if host_lock is not None else HostLock()
        self.on_wait = on_wait  # told the queue position while a measurement waits for the host
        self.roles = ("both",) if protocol.kind == "cuda" else ("memory", "latency")
        self.startup_seconds: list[float] = []  # one entry per (re)start of the worker set
        self._workers: dict[str, _Worker] = {}
        self._fresh_memory_worker = False
        self.last_reply: dict[str, Any] = {}  # everything the workers sent for the last candidate

    # -- worker lifecycle -------------------------------------------------------------------
    def __enter__(self) -> "Measurer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the workers that are not running (otherwise the first ``measure`` does)."""
        missing = [r for r in self.roles if r not in self._workers or not self._workers[r].alive]
        if not missing:
            return
        t0 = time.perf_counter()
        for role in missing:  # start them all, then wait: the imports run in parallel
            self._drop(role)
            warm = not (role == "memory" and self._fresh_memory_worker)
            self._workers[role] = _Worker(role, self.protocol, warm=warm)
        try:
            for role in missing:
                self._workers[role].wait_ready()
        except LtsError:
            self.close()
            raise
        self.startup_seconds.append(time.perf_counter() - t0)
        first = self._workers[self.roles[0]].ready or {}
        if self.protocol.kind == "cpu" and not first.get("peak_reset", True) and not self._fresh_memory_worker:
            # Peak RSS cannot be reset here: measure memory in a fresh process per candidate.
            self._fresh_memory_worker = True
            self._drop("memory")

    def close(self) -> None:
        for role in list(self._workers):
            self._drop(role)

    def _drop(self, role: str) -> None:
        w = self._workers.pop(role, None)
        if w is not None:
            w.stop()

    @property
    def worker_pids(self) -> dict[str, int]:
        return {r: w.proc.pid for r, w in self._workers.items() if w.alive}

    # -- measuring --------------------------------------------------------------------------
    def measure(self, config: Any, _fault: str | None = None) -> Measurement:
        """Measure one config (a GPT2Config/TransXLConfig or its dict).

        Never raises for a candidate that fails to run: that is ``infeasible``. A dict that is not
        a valid config raises ``LtsError`` (it has no architecture id to record against).
        ``_fault`` is a test hook: ``"sigkill"``, ``"raise"`` or ``"hang"`` in the first worker, or
        ``"latency:sigkill"`` etc. in the latency worker.
        """
        from lts.space.config import config_from_dict

        cfg = config if hasattr(config, "arch_id") else config_from_dict(config)
        with self.host_lock.hold(self.on_wait):
            return self._measure(cfg, _fault)

    def _measure(self, cfg: Any, _fault: str | None) -> Measurement:
        t0 = time.perf_counter()
        fields: dict[str, Any] = {}

        def result(infeasible: str | None) -> Measurement:
            self.last_reply = dict(fields)
            return Measurement(
                arch_id=cfg.arch_id, device_id=self.device.device_id, protocol=self.protocol.key,
                latency_ms=fields.get("latency_ms"), latency_cv=fields.get("latency_cv"),
                repeats=int(fields.get("repeats", 0)), peak_memory_mb=fields.get("peak_memory_mb"),
                infeasible=infeasible, seconds=time.perf_counter() - t0,
                weights_memory_mb=fields.get("weights_memory_mb"), converged=fields.get("converged"),
                latency_wall_ms=fields.get("wall_ms"), latency_cpu_ms=fields.get("cpu_ms"),
                **{k: fields.get(k) for k in GENERATION_FIELDS},
            )

        limit = self.memory_limit_mb
        if limit is not None:
            weights = weights_mb(cfg)
            if weights > limit:
                return result(f"weights alone need {weights:.0f} MB, over the {limit:g} MB limit")

        fault_role, _, fault = (_fault or "").rpartition(":")

        def request(task: str, role: str) -> dict[str, Any]:
            return {
                "task": task, "config": cfg.to_dict(), "protocol": asdict(self.protocol),
                "memory_limit_mb": limit,
                "fault": fault if fault and (fault_role or self.roles[0]) == role else None,
            }

        def call(role: str, req: Mapping[str, Any]) -> str | None:
            """Run one request; merge its figures. Returns an infeasibility reason or None."""
            reply, died = self._workers[role].call(req, self.timeout_s)
            if role == "memory" and self._fresh_memory_worker:
                self._drop("memory")
            return self._absorb(role, reply, died, fields)

        def over_limit() -> str | None:
            peak = fields.get("peak_memory_mb")
            if limit is not None and peak is not None and peak > limit:
                return f"peak memory {peak:.0f} MB is over the {limit:g} MB limit"
            return None

        self.start()
        if self.protocol.kind == "cuda":  # one worker: memory, then latency of the same model
            return result(call("both", request("both", "both")) or over_limit())

        overlap = self.overlap and self._fits_twice(cfg)
        if not overlap:
            why = call("memory", request("memory", "memory")) or over_limit()
            return result(why if why is not None else call("latency", request("latency", "latency")))

        # The latency worker builds and warms up while the memory worker measures; with
        # ``time_early`` it starts timing as soon as it is warm (see the class docstring).
        latency, memory = self._workers["latency"], self._workers["memory"]
        died = latency.send(request("prepare", "latency"), self.timeout_s)
        if died is not None:
            self._workers.pop("latency", None)
            return result(died)
        mem_died = memory.send(request("memory", "memory"), self.timeout_s)
        lat: dict[str, Any] = {}
        lat_why: str | None = None
        timing = False
        if self.time_early:
            lat_why = self._absorb("latency", *latency.recv(), lat)
            if lat_why is None:
                died = latency.send({"task": "time"}, self.timeout_s)
                timing = died is None
                lat_why = None if timing else self._absorb("latency", None, died, lat)
        why = self._absorb("memory", *((None, mem_died) if mem_died is not None else memory.recv()), fields)
        if self._fresh_memory_worker:
            self._drop("memory")
        why = why or over_limit()
        if timing:
            lat_why = self._absorb("latency", *latency.recv(), lat)
        elif not self.time_early:
            lat_why = self._absorb("latency", *latency.recv(), lat)
            if lat_why is None and why is not None:  # free the model it holds
                latency.call({"task": "discard"}, self.timeout_s)
            elif lat_why is None:
                lat_why = self._absorb("latency", *latency.call({"task": "time"}, self.timeout_s), lat)
        if why is not None:
            return result(why)
        fields.update(lat)
        return result(lat_why)

    def _absorb(self, role: str, reply: dict[str, Any] | None, died: str | None,
                fields: dict[str, Any]) -> str | None:
        if died is not None:
            self._workers.pop(role, None)  # a new one starts with the next measure
            return died
        assert reply is not None
        if not reply.get("ok"):
            return str(reply.get("error") or "unknown error")
        fields.update(reply)
        return None

    def _fits_twice(self, cfg: Any) -> bool:
        """Whether two copies of this candidate (one per worker) fit comfortably in free memory."""
        from lts.cost.worker import _proc_kb

        avail_kb = _proc_kb("/proc/meminfo", "MemAvailable")
        if avail_kb is None:
            return False
        p = self.protocol
        seq = p.prompt_len + p.new_tokens if p.workload == "generate" else p.seq_len_for(cfg)
        est = 4 * total_params(cfg) + 3 * 4 * self.protocol.batch * seq * cfg.vocab_size
        return 2 * est < 0.25 * avail_kb * 1024


def measure(config: Any, device: DeviceRecord, protocol: Protocol | None = None, **kwargs: Any) -> Measurement:
    """One-shot: start the workers, measure ``config``, stop them (adds 2 s or so of start-up)."""
    with Measurer(device, protocol or Protocol(kind=device.kind, threads=device.threads), **kwargs) as m:
        return m.measure(config)
