"""The measured architectures of one (device, protocol), as a training or evaluation set."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lts.errors import LtsError
from lts.space.config import Config, config_from_json
from lts.store import measurements as store_measurements
from lts.store.db import Store
from lts.surrogate.features import Shape, matrix

OBJECTIVES = {"latency": "latency_ms", "memory": "peak_memory_mb"}


@dataclass
class Measured:
    arch_ids: list[str]
    configs: list[Config]
    X: np.ndarray
    y: np.ndarray
    seconds: np.ndarray  # what each measurement cost on the device

    def subset(self, idx: np.ndarray | list[int]) -> "Measured":
        idx = list(idx)
        return Measured([self.arch_ids[i] for i in idx], [self.configs[i] for i in idx], self.X[idx], self.y[idx],
                        self.seconds[idx])

    def __len__(self) -> int:
        return len(self.arch_ids)


def objective_column(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise LtsError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    return OBJECTIVES[objective]


def measured(store: Store, device_id: str, protocol: str, objective: str,
             arch_ids: list[str] | None = None) -> Measured:
    """Feasible measurements (ordered by arch id, so a set is reproducible), without drift-marked ones."""
    col = objective_column(objective)
    rows = store_measurements.training_rows(store, device_id, protocol, col)
    if arch_ids is not None:
        keep = set(arch_ids)
        rows = [r for r in rows if r["arch_id"] in keep]
    configs = [config_from_json(r["config_json"]) for r in rows]
    X = matrix(configs, Shape.from_protocol(protocol)) if configs else np.zeros((0, 0))
    return Measured([r["arch_id"] for r in rows], configs, X, np.array([r["y"] for r in rows], dtype=float),
                    np.array([r["seconds"] or 0.0 for r in rows], dtype=float))


def resolve(store: Store, device_name: str, protocol: str | None = None) -> tuple[str, str]:
    """(device_id, protocol) of a device name: the record and protocol with the most measurements."""
    rows = store_measurements.feasible_counts(store, device_name)
    if protocol is not None:
        rows = [r for r in rows if r["protocol"] == protocol]
    if not rows:
        known = sorted({d["name"] for d in store.devices()})
        what = f" with protocol {protocol}" if protocol else ""
        raise LtsError(f"no measurements of device {device_name!r}{what} in {store.path} "
                       f"(devices: {', '.join(known) or 'none'})")
    return rows[0]["device_id"], rows[0]["protocol"]


def held_out_split(data: Measured, n_test: int, n_more: int, seed: int) -> tuple[Measured, np.ndarray]:
    """A fixed seeded held-out set of ``n_test`` and the shuffled indices of the rest (training draws)."""
    if len(data) < n_test + n_more:
        raise LtsError(f"{len(data)} measured architectures; {n_test} held out plus {n_more} to train on are needed")
    order = np.random.default_rng(seed).permutation(len(data))
    return data.subset(sorted(order[:n_test])), order[n_test:]
