"""Run (or resume) a validation: train every architecture that is not done yet, record each as it lands.

Durability: each finished architecture is one transaction (its result row and the run's
counters), written by this process only. A validation killed at any instant keeps every
architecture that finished; resuming trains only the ones still ``pending`` or ``failed``.

Jobs are handed to the backend largest first (by FLOPs per token, a good proxy for training
time): with two workers, starting the longest jobs first keeps both busy until the end.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from lts.errors import LtsError
from lts.jobs import lifecycle
from lts.store import jobs
from lts.store import validations as repo
from lts.store.db import Store
from lts.text.tokenizer import token_data
from lts.validate.backends import Job, Outcome, run_jobs
from lts.validate.session import get_validation, result_rows


@dataclass(frozen=True)
class Progress:
    n_done: int
    n_failed: int
    n_archs: int
    arch_id: str | None = None
    valid_ppl: float | None = None
    error: str | None = None


class ValidationRunner:
    """Drives one validation to the end (or until cancelled); construct again to resume."""

    def __init__(
        self,
        store: Store,
        validation_id: str,
        workers: int = 1,
        ray_address: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.store = store
        self.validation_id = validation_id
        self.workers = max(1, int(workers))
        self.ray_address = ray_address
        self.on_progress = on_progress
        self.row = get_validation(store, validation_id)
        self.recipe = json.loads(self.row["recipe_json"])

    def counts(self) -> tuple[int, int]:
        c = repo.counts(self.store, self.validation_id)
        return c.n_done, c.n_failed

    def check_resumable(self) -> None:
        """Refuse, with one line, a validation with nothing left to train."""
        if not self._todo():
            raise LtsError(f"validation {self.validation_id} has already finished")

    def _todo(self) -> list[dict[str, Any]]:
        rows = [r for r in result_rows(self.store, self.validation_id) if r["status"] != "done"]
        return sorted(rows, key=lambda r: (-r["flops"], r["position"]))

    def _claim(self) -> None:
        """Make this process the validation's (refused when another live process runs it)."""
        jobs.claim(self.store, jobs.VALIDATION, self.validation_id)
        backend = f"ray:{self.ray_address}" if self.ray_address else "local"
        jobs.update(self.store, jobs.VALIDATION, self.validation_id, workers=self.workers, backend=backend,
                    message=None)

    def _end(self, status: str, message: str | None, elapsed: float) -> None:
        jobs.transition(self.store, jobs.VALIDATION, self.validation_id, status, message=message, elapsed=elapsed)

    def _cancel_requested(self) -> bool:
        return repo.get(self.store, self.validation_id).status == lifecycle.CANCELLING

    def _record(self, arch_id: str, outcome: Outcome, elapsed: float) -> Progress:
        r = outcome.result or {}
        c = repo.record_result(self.store, self.validation_id, arch_id, outcome.result, outcome.error, elapsed)
        return Progress(c.n_done, c.n_failed, int(self.row["n_archs"]), arch_id, r.get("valid_ppl"), outcome.error)

    def run_to_end(self) -> dict[str, Any]:
        """Train what is left; returns the final ``validation_runs`` row."""
        self.check_resumable()
        todo = self._todo()
        _, tokens_path = token_data(self.row)
        work = [Job(r["arch_id"], r["config_json"], self.recipe, tokens_path) for r in todo]
        start_elapsed = float(self.row["elapsed"] or 0.0)
        t0 = time.perf_counter()
        elapsed = lambda: start_elapsed + time.perf_counter() - t0  # noqa: E731
        self._claim()
        cancelled = False

        def should_stop() -> bool:
            nonlocal cancelled
            cancelled = cancelled or self._cancel_requested()
            return cancelled

        try:
            for arch_id, outcome in run_jobs(work, self.workers, self.ray_address, should_stop):
                progress = self._record(arch_id, outcome, elapsed())
                if self.on_progress:
                    self.on_progress(progress)
        except KeyboardInterrupt:
            self._end(lifecycle.CANCELLED,
                      f"stopped by the user; resume with lts validate --resume {self.validation_id}", elapsed())
            raise
        except Exception as exc:
            self._end(lifecycle.FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0], elapsed())
            raise
        done, failed = self.counts()
        if cancelled and done + failed < int(self.row["n_archs"]):
            self._end(lifecycle.CANCELLED, f"cancelled after {done} of {self.row['n_archs']} architectures", elapsed())
        elif failed:  # failed, not finished: a finished job never runs again, and a resume retries these
            self._end(lifecycle.FAILED, f"{failed} architecture(s) failed; lts validate --resume "
                                        f"{self.validation_id} retries them", elapsed())
        else:
            self._end(lifecycle.FINISHED, None, elapsed())
        return get_validation(self.store, self.validation_id)
