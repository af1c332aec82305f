"""Background jobs: the one lifecycle every kind of job follows (search, validation, re-measure,
DARTS) and the process helpers that run them detached. Below the store: it knows statuses and
processes, not tables (the store's :mod:`lts.store.jobs` applies it to each kind's table)."""

from lts.jobs.lifecycle import (ACTIVE, CANCELLABLE, CANCELLED, CANCELLING, CREATED, DELETABLE, ENDED, FAILED,
                                FINISHED, QUEUED, RUNNING, STARTING_S, STATUSES, STOPPED, check_transition,
                                effective_status, is_owned_elsewhere, occupies_slot)
from lts.jobs.process import process_alive, spawn_detached

__all__ = ["ACTIVE", "CANCELLABLE", "CANCELLED", "CANCELLING", "CREATED", "DELETABLE", "ENDED", "FAILED", "FINISHED",
           "QUEUED", "RUNNING", "STARTING_S", "STATUSES", "STOPPED", "check_transition", "effective_status",
           "is_owned_elsewhere", "occupies_slot",
           "process_alive", "spawn_detached"]
