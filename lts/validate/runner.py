"""Run (or resume) a validation: train every architecture that is not done yet, record each as it lands.

Durability: each finished architecture is one transaction (its result row and the run's
counters), written by this process only. A validation killed at any instant keeps every
architecture that finished; resuming trains only the ones still ``pending`` or ``failed``.

Jobs are handed to the backend largest first (by FLOPs per token, a good proxy for training
time): with two workers, starting the longest jobs first keeps both busy until the end.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from lts.errors import LtsError
from lts.store.db import Store
from lts.validate.backends import Job, Outcome, run_jobs
from lts.validate.session import get_validation, result_rows, token_data


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
        row = self.store.query(
            "SELECT SUM(status = 'done') AS done, SUM(status = 'failed') AS failed FROM validation_results"
            " WHERE validation_id = ?", (self.validation_id,))[0]
        return int(row["done"] or 0), int(row["failed"] or 0)

    def check_resumable(self) -> None:
        """Refuse, with one line, a validation with nothing left to train."""
        if not self._todo():
            raise LtsError(f"validation {self.validation_id} has already finished")

    def _todo(self) -> list[dict[str, Any]]:
        rows = [r for r in result_rows(self.store, self.validation_id) if r["status"] != "done"]
        return sorted(rows, key=lambda r: (-r["flops"], r["position"]))

    def _set_status(self, status: str, message: str | None = None, elapsed: float | None = None) -> None:
        backend = f"ray:{self.ray_address}" if self.ray_address else "local"
        with self.store.write() as conn:
            conn.execute(
                "UPDATE validation_runs SET status = ?, message = ?, pid = ?, host = ?, workers = ?, backend = ?,"
                " updated_at = ?, elapsed = COALESCE(?, elapsed) WHERE validation_id = ?",
                (status, message, os.getpid(), socket.gethostname(), self.workers, backend, time.time(), elapsed,
                 self.validation_id),
            )

    def _cancel_requested(self) -> bool:
        return get_validation(self.store, self.validation_id)["status"] == "cancelling"

    def _record(self, arch_id: str, outcome: Outcome, elapsed: float) -> Progress:
        r = outcome.result or {}
        with self.store.write() as conn:
            conn.execute(
                "UPDATE validation_results SET status = ?, valid_ppl = ?, valid_loss = ?, train_loss = ?,"
                " wall_seconds = ?, tokens_per_second = ?, error = ?, finished_at = ?"
                " WHERE validation_id = ? AND arch_id = ?",
                ("done" if outcome.error is None else "failed", r.get("valid_ppl"), r.get("valid_loss"),
                 r.get("train_loss"), r.get("wall_seconds"), r.get("tokens_per_second"), outcome.error, time.time(),
                 self.validation_id, arch_id),
            )
            counts = conn.execute(
                "SELECT SUM(status = 'done'), SUM(status = 'failed') FROM validation_results WHERE validation_id = ?",
                (self.validation_id,)).fetchone()
            conn.execute(
                "UPDATE validation_runs SET n_done = ?, n_failed = ?, elapsed = ?, updated_at = ? WHERE validation_id = ?",
                (counts[0] or 0, counts[1] or 0, elapsed, time.time(), self.validation_id),
            )
        return Progress(int(counts[0] or 0), int(counts[1] or 0), int(self.row["n_archs"]), arch_id,
                        r.get("valid_ppl"), outcome.error)

    def run_to_end(self) -> dict[str, Any]:
        """Train what is left; returns the final ``validation_runs`` row."""
        self.check_resumable()
        todo = self._todo()
        _, tokens_path = token_data(self.row)
        jobs = [Job(r["arch_id"], r["config_json"], self.recipe, tokens_path) for r in todo]
        start_elapsed = float(self.row["elapsed"] or 0.0)
        t0 = time.perf_counter()
        elapsed = lambda: start_elapsed + time.perf_counter() - t0  # noqa: E731
        self._set_status("running")
        cancelled = False

        def should_stop() -> bool:
            nonlocal cancelled
            cancelled = cancelled or self._cancel_requested()
            return cancelled

        try:
            for arch_id, outcome in run_jobs(jobs, self.workers, self.ray_address, should_stop):
                progress = self._record(arch_id, outcome, elapsed())
                if self.on_progress:
                    self.on_progress(progress)
        except KeyboardInterrupt:
            self._set_status("interrupted", f"stopped by the user; resume with lts validate --resume {self.validation_id}",
                             elapsed())
            raise
        except Exception as exc:
            self._set_status("failed", f"{type(exc).__name__}: {exc}".splitlines()[0], elapsed())
            raise
        done, failed = self.counts()
        if cancelled and done + failed < int(self.row["n_archs"]):
            self._set_status("cancelled", f"cancelled after {done} of {self.row['n_archs']} architectures", elapsed())
        elif failed:
            self._set_status("finished", f"{failed} architecture(s) failed; lts validate --resume "
                                         f"{self.validation_id} retries them", elapsed())
        else:
            self._set_status("finished", None, elapsed())
        return get_validation(self.store, self.validation_id)
