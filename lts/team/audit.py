"""The audit trail: who launched, cancelled, imported or deleted what, and when (table ``audit_log``).

Every call of :mod:`lts.team.guarded` writes one row, whether it succeeded (``ok``), was refused
by a role or a limit (``denied``) or failed (``failed``), so the trail also shows attempts.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lts.store import audit as store_audit
from lts.store.audit import AuditEntry
from lts.store.db import Store
from lts.team.auth import User

OUTCOMES = ("ok", "denied", "failed")
COLUMNS = ["at", "user", "role", "via", "action", "target", "outcome", "detail"]


def record(store: Store, user: User | None, action: str, target: str | None, outcome: str,
           detail: dict[str, Any] | None = None) -> None:
    """Append one entry (its own transaction: a refused action leaves its trace too)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    store_audit.append(store, AuditEntry(
        time.time(), user.name if user else "(not signed in)", user.role if user else "-", user.via if user else "-",
        action, target, outcome, detail or None))


def entries(store: Store, limit: int = 1000, user: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, optionally of one user or action; ``detail`` decoded."""
    return [{"entry_id": e.entry_id, "at": e.at, "user": e.user, "role": e.role, "via": e.via, "action": e.action,
             "target": e.target, "outcome": e.outcome, "detail": dict(e.detail) if e.detail else None}
            for e in store_audit.newest(store, limit, user, action)]


def audit_frame(store: Store, limit: int = 1000, user: str | None = None, action: str | None = None) -> Any:
    """The entries as a DataFrame for the audit page: local time, one column per field, newest first."""
    import pandas as pd

    rows = entries(store, limit, user, action)
    frame = pd.DataFrame(rows, columns=["entry_id", *COLUMNS])
    frame["at"] = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in frame["at"]]
    frame["detail"] = [json.dumps(d, sort_keys=True) if d else "" for d in frame["detail"]]
    return frame[COLUMNS]


def known_values(store: Store) -> tuple[list[str], list[str]]:
    """The users and the actions the trail holds (the audit page's filter choices)."""
    return store_audit.users_and_actions(store)
