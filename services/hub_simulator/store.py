"""All of the hub simulator's SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import Connection


@dataclass(frozen=True)
class Held:
    version: int
    body: dict[str, Any]


async def held(conn: Connection, regime: str, period: str, unit: str) -> Held | None:
    row = await conn.fetchrow(
        "SELECT version, body FROM aggregates WHERE regime = $1 AND period = $2 AND unit = $3",
        regime,
        period,
        unit,
    )
    return Held(row["version"], row["body"]) if row else None


async def lock_scope(conn: Connection, regime: str, period: str, unit: str) -> None:
    """Until the transaction ends. Advisory locks are database-wide: the schema is in the key,
    so simulators of other runs in the same database never wait on this one."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock("
        "hashtextextended(current_schema() || '.hub|' || $1 || '|' || $2 || '|' || $3, 0))",
        regime,
        period,
        unit,
    )


async def seen_key(conn: Connection, key: str) -> str | None:
    """The body hash stored under an idempotency key, if any."""
    value: str | None = await conn.fetchval(
        "SELECT body_sha256 FROM received WHERE idempotency_key = $1", key
    )
    return value


async def store(
    conn: Connection,
    regime: str,
    period: str,
    unit: str,
    version: int,
    body: dict[str, Any],
    key: str,
    digest: str,
    at: datetime,
) -> None:
    await conn.execute(
        """
        INSERT INTO aggregates (regime, period, unit, version, body, stored_at)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (regime, period, unit) DO UPDATE
            SET version = excluded.version, body = excluded.body, stored_at = excluded.stored_at
        """,
        regime,
        period,
        unit,
        version,
        body,
        at,
    )
    await conn.execute(
        "INSERT INTO received (regime, period, unit, version, idempotency_key, body_sha256,"
        " body, stored_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        regime,
        period,
        unit,
        version,
        key,
        digest,
        body,
        at,
    )


async def received_log(
    conn: Connection, after: int, limit: int, *, bodies: bool = False
) -> list[dict[str, Any]]:
    """Stored versions after id `after`, in order; with their bodies if asked (null for
    versions stored before bodies were kept)."""
    rows = await conn.fetch(
        "SELECT id, regime, period, unit, version, idempotency_key, stored_at,"
        " CASE WHEN $3 THEN body END AS body FROM received"
        " WHERE id > $1"
        " ORDER BY id LIMIT $2",
        after,
        limit,
        bodies,
    )
    return [
        {k: v for k, v in r.items() if bodies or k != "body"}
        | {"stored_at": r["stored_at"].isoformat()}
        for r in rows
    ]


async def all_held(conn: Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT body FROM aggregates ORDER BY regime, period, unit")
    return [r["body"] for r in rows]


async def arrived(
    conn: Connection, regime: str, period: str, unit: str, version: int | None, at: datetime
) -> int:
    """Log a PUT as it arrives, with the version held for its scope then; returns its id."""
    put_id: int = await conn.fetchval(
        """
        INSERT INTO puts (regime, period, unit, version, held_version, arrived_at)
        VALUES ($1, $2, $3, $4,
                (SELECT version FROM aggregates
                 WHERE regime = $1 AND period = $2 AND unit = $3), $5)
        RETURNING id
        """,
        regime,
        period,
        unit,
        version,
        at,
    )
    return put_id


async def answered(conn: Connection, put_id: int, status: int, outcome: str, at: datetime) -> None:
    await conn.execute(
        "UPDATE puts SET status = $2, outcome = $3, answered_at = $4 WHERE id = $1",
        put_id,
        status,
        outcome,
        at,
    )


async def puts_log(conn: Connection, after: int, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, regime, period, unit, version, held_version, arrived_at, status, outcome,"
        " answered_at FROM puts WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit,
    )
    return [
        dict(r)
        | {
            "arrived_at": r["arrived_at"].isoformat(),
            "answered_at": r["answered_at"].isoformat() if r["answered_at"] else None,
        }
        for r in rows
    ]
