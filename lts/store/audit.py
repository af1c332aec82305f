"""The audit trail's table (``audit_log``): every statement on it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from lts.store.db import Store


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the trail (``detail`` decoded; ``entry_id`` None until stored)."""

    at: float
    user: str
    role: str
    via: str
    action: str
    target: str | None
    outcome: str
    detail: Mapping[str, Any] | None = None
    entry_id: int | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "AuditEntry":
        return cls(row["at"], row["user"], row["role"], row["via"], row["action"], row["target"], row["outcome"],
                   json.loads(row["detail_json"]) if row.get("detail_json") else None, row["entry_id"])


def append(store: Store, entry: AuditEntry) -> None:
    """Append one entry, in its own transaction."""
    with store.write() as conn:
        conn.execute(
            "INSERT INTO audit_log (at, user, role, via, action, target, outcome, detail_json) VALUES (?,?,?,?,?,?,?,?)",
            (entry.at, entry.user, entry.role, entry.via, entry.action, entry.target, entry.outcome,
             json.dumps(dict(entry.detail), sort_keys=True, default=str) if entry.detail else None),
        )


def newest(store: Store, limit: int = 1000, user: str | None = None, action: str | None = None) -> list[AuditEntry]:
    """The newest ``limit`` entries, optionally of one user or action, newest first."""
    where, params = [], []
    if user:
        where.append("user = ?")
        params.append(user)
    if action:
        where.append("action = ?")
        params.append(action)
    sql = "SELECT * FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "")
    return [AuditEntry.from_row(r) for r in store.query(sql + " ORDER BY entry_id DESC LIMIT ?", [*params, int(limit)])]


def users_and_actions(store: Store) -> tuple[list[str], list[str]]:
    """The distinct users and actions the trail holds, sorted."""
    users = [r["user"] for r in store.query("SELECT DISTINCT user FROM audit_log ORDER BY user")]
    actions = [r["action"] for r in store.query("SELECT DISTINCT action FROM audit_log ORDER BY action")]
    return users, actions
