"""The audit log (nhật ký thao tác) of operators' actions: who, when, what.

Each service that takes operators' actions keeps an `audit_log` table in its own schema
(a migration of its own: services never read each other's tables) and writes a row in
the transaction of the action itself, so that an action without its record, or a record
of an action that did not happen, cannot exist. Rows are only ever added.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import Connection


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


async def record(conn: Connection, entry: AuditEntry) -> None:
    """Record an operator's action; call inside the transaction of the action itself."""
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)",
        entry.at,
        entry.actor,
        entry.action,
        entry.target,
        entry.details,
    )


async def entries(conn: Connection, target: str | None, limit: int) -> list[AuditEntry]:
    """The latest `limit` entries (of one target, or all), oldest first."""
    rows = await conn.fetch(
        "SELECT at, actor, action, target, details FROM audit_log"
        " WHERE $1::text IS NULL OR target = $1 ORDER BY id DESC LIMIT $2",
        target,
        limit,
    )
    return [
        AuditEntry(r["at"], r["actor"], r["action"], r["target"], r["details"])
        for r in reversed(rows)
    ]


def login_name() -> str:
    """Who runs a command, as the operating system knows them; a container's user may
    have no name (no passwd entry), and is then named by its number."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}"
