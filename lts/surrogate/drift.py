"""Device drift: one reference architecture measured at the start of a run and at intervals.

If its latency moves by more than ``threshold`` from the run's first check (thermal throttling,
another job, a governor change), the check is flagged and the measurements taken on that device
since the previous check are marked (``measurements.drift_flag``): surrogates leave them out and
the dashboard shows them.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

from lts.errors import LtsError
from lts.space.counts import decoder_params
from lts.space.config import Config
from lts.space.ranges import SearchSpace
from lts.store import surrogates as store_surrogates
from lts.store.db import Store


@dataclass(frozen=True)
class DriftSettings:
    every: int = 0  # evaluations between checks; 0: off
    threshold: float = 0.15  # relative change of the reference latency that flags a window

    def __post_init__(self) -> None:
        if self.every < 0:
            raise LtsError(f"drift interval must be >= 0, got {self.every}")
        if not 0 < self.threshold < 10:
            raise LtsError(f"drift threshold must lie in (0, 10), got {self.threshold}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_config(space: SearchSpace, seed: int = 12345) -> Config:
    """A fixed mid-size architecture of the space: the median by decoder params of 51 seeded draws."""
    rng = random.Random(seed)
    draws = sorted((space.sample(rng) for _ in range(51)), key=lambda c: (decoder_params(c), c.arch_id))
    return draws[len(draws) // 2]


class DriftMonitor:
    def __init__(self, store: Store, run_id: str, device_id: str, protocol: str, space: SearchSpace,
                 settings: DriftSettings, measure: Callable[[Config], Mapping[str, Any]]) -> None:
        self.store, self.run_id, self.device_id, self.protocol = store, run_id, device_id, protocol
        self.settings = settings
        self.measure = measure
        self.reference = reference_config(space)

    def _checks(self) -> list[dict[str, Any]]:
        return store_surrogates.drift_checks(self.store, self.run_id)

    def due(self, n_evaluated: int) -> bool:
        if self.settings.every <= 0:
            return False
        checks = self._checks()
        last = checks[-1]["eval_index"] if checks else None
        return last is None or n_evaluated - last >= self.settings.every

    def check(self, n_evaluated: int) -> dict[str, Any]:
        """Measure the reference now; flag and mark the window if it moved. Returns the check row."""
        checks = self._checks()
        m = dict(self.measure(self.reference))
        lat = m.get("latency_ms")
        first = next((c["latency_ms"] for c in checks if c["latency_ms"]), None)
        ratio = (lat / first) if (lat and first) else (1.0 if lat else None)
        flagged = ratio is not None and abs(math.log(ratio)) > math.log1p(self.settings.threshold)
        now = time.time()
        row = {"run_id": self.run_id, "check_index": len(checks), "arch_id": self.reference.arch_id,
               "eval_index": n_evaluated, "latency_ms": lat, "ratio": ratio, "flagged": int(flagged), "measured_at": now,
               "seconds": m.get("seconds") or 0.0}
        mark = {"run_id": self.run_id, "check": len(checks), "ratio": round(ratio, 4)} if flagged and checks else None
        store_surrogates.record_drift_check(self.store, self.reference, row, self.device_id, self.protocol,
                                            checks[-1]["measured_at"] if mark else None, mark)
        return row
