"""The device record: who measured, on what, so results from several devices can be told apart.

A :class:`DeviceRecord` holds a user-given ``name`` plus what is detected on this machine (CPU
model, usable cores, RAM, GPU, torch version, the fixed thread count). Its ``device_id`` is the
first 16 hex digits of the SHA-256 of the *stable* fields -- name, kind, CPU model, cores, RAM
rounded to a whole GiB, GPU and threads -- so measuring again on the same machine with the same
settings gives the same id, and a store can cache on it. The torch version is recorded but not
hashed: upgrading torch should not silently orphan every cached measurement (compare the field if
you care). RAM is rounded because the kernel's ``MemTotal`` moves by a few MiB between boots.

``gpu`` is the GPU the measurements run on: set for ``kind="cuda"``, ``None`` for ``kind="cpu"``
(a CPU latency does not depend on which GPU sits in the box, and leaving it out keeps CPU ids
stable across driver states).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

from lts.errors import LtsError

KINDS = ("cpu", "cuda")


@dataclass(frozen=True)
class DeviceRecord:
    name: str
    device_id: str
    kind: str  # "cpu" or "cuda"
    cpu_model: str
    cores: int
    ram_gb: float
    gpu: str | None
    torch_version: str
    threads: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DeviceRecord":
        if not isinstance(d, Mapping):
            raise LtsError(f"a device record must be a JSON object, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise LtsError(f"device record lacks {missing[0]!r}")
        return cls(**{n: d[n] for n in names})

    def stable_fields(self) -> dict[str, Any]:
        """The fields the id is computed from."""
        return _stable(self.name, self.kind, self.cpu_model, self.cores, self.ram_gb, self.gpu, self.threads)


def _stable(name: str, kind: str, cpu_model: str, cores: int, ram_gb: float, gpu: str | None,
            threads: int) -> dict[str, Any]:
    return {
        "name": name, "kind": kind, "cpu_model": cpu_model, "cores": int(cores),
        "ram_gb": int(round(ram_gb)), "gpu": gpu, "threads": int(threads),
    }


def compute_device_id(stable: Mapping[str, Any]) -> str:
    text = json.dumps(dict(stable), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- detection ------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _cores() -> int:
    # Cores this process may run on (a container or taskset may allow fewer than the box has).
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _ram_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def _torch_version() -> str:
    # importlib.metadata avoids importing torch (a second or two) just to read a version string.
    try:
        from importlib.metadata import version

        return version("torch")
    except Exception:
        import torch

        return str(torch.__version__)


def default_threads() -> int:
    from lts.cost.protocol import DEFAULT_THREADS

    return min(DEFAULT_THREADS, _cores())


def detect_device(name: str, kind: str = "cpu", threads: int | None = None) -> DeviceRecord:
    """Describe this machine. ``threads=None`` takes the protocol default (see ``Protocol``)."""
    if not isinstance(name, str) or not name.strip():
        raise LtsError("a device needs a non-empty name (--device-name)")
    if kind not in KINDS:
        raise LtsError(f"device kind must be one of {list(KINDS)}, got {kind!r}")
    if threads is None:
        threads = default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise LtsError(f"threads must be a positive integer, got {threads!r}")
    gpu = None
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LtsError("device kind 'cuda' requested but torch sees no CUDA device")
        props = torch.cuda.get_device_properties(0)
        gpu = f"{props.name} ({round(props.total_memory / 2**30)} GiB)"
    cpu_model, cores, ram_gb = _cpu_model(), _cores(), _ram_gb()
    device_id = compute_device_id(_stable(name.strip(), kind, cpu_model, cores, ram_gb, gpu, threads))
    return DeviceRecord(
        name=name.strip(), device_id=device_id, kind=kind, cpu_model=cpu_model, cores=cores,
        ram_gb=ram_gb, gpu=gpu, torch_version=_torch_version(), threads=threads,
    )
