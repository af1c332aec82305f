"""The audit trail: who launched, cancelled, imported or deleted what, and when (table ``audit_log``).

Every call of :mod:`lts.team.guarded` writes one row, whether it succeeded (``ok``), was refused
by a role or a limit (``denied``) or failed (``failed``), so the trail also shows attempts.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lts.store.db import Store
from lts.team.auth import User

OUTCOMES = ("ok", "denied", "failed")
COLUMNS = ["at", "user", "role", "via", "action", "target", "outcome", "detail"]


def record(store: Store, user: User | None, action: str, target: str | None, outcome: str,
           detail: dict[str, Any] | None = None) -> None:
    """Append one entry (its own transaction: a refused action leaves its trace too)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    with store.write() as conn:
        conn.execute(
            "INSERT INTO audit_log (at, user, role, via, action, target, outcome, detail_json) VALUES (?,?,?,?,?,?,?,?)",
            (time.time(), user.name if user else "(not signed in)", user.role if user else "-",
             user.via if user else "-", action, target, outcome,
             json.dumps(detail, sort_keys=True, default=str) if detail else None),
        )


def entries(store: Store, limit: int = 1000, user: str | None = None, action: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` entries, optionally of one user or action; ``detail`` decoded."""
    where, params = [], []
    if user:
        where.append("user = ?")
        params.append(user)
    if action:
        where.append("action = ?")
        params.append(action)
    sql = "SELECT * FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "")
    rows = store.query(sql + " ORDER BY entry_id DESC LIMIT ?", [*params, int(limit)])
    for r in rows:
        r["detail"] = json.loads(r.pop("detail_json")) if r.get("detail_json") else None
    return rows


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
    users = [r["user"] for r in store.query("SELECT DISTINCT user FROM audit_log ORDER BY user")]
    actions = [r["action"] for r in store.query("SELECT DISTINCT action FROM audit_log ORDER BY action")]
    return users, actions
