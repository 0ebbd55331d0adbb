"""All of the connector's SQL: the durable delivery state per scope."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.contracts import AggregateSnapshot
from shared.db import Connection

from .hub_client import HubReply
from .policy import Step


@dataclass(frozen=True, slots=True)
class Known:
    """A snapshot version read from aggregates.v1."""

    snapshot: AggregateSnapshot
    newest_receipt: datetime | None


@dataclass(frozen=True, slots=True)
class Due:
    """A scope whose latest version the hub has not acknowledged, claimed for one attempt."""

    snapshot: AggregateSnapshot
    attempts: int
    newest_receipt: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    due: Due
    reply: HubReply
    step: Step
    next_attempt_at: datetime | None


async def remember(conn: Connection, known: Sequence[Known]) -> int:
    """Keep the highest version of each scope; returns how many scopes moved forward."""
    if not known:
        return 0
    latest: dict[tuple[str, str, str], Known] = {}
    for k in known:
        s = k.snapshot
        key = (s.regime, s.period, s.unit)
        if key not in latest or latest[key].snapshot.version < s.version:
            latest[key] = k
    rows = list(latest.values())
    result = await conn.fetch(
        """
        INSERT INTO deliveries
            (regime, period, unit, version, snapshot, computed_at, newest_receipt)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::jsonb[],
                             $6::timestamptz[], $7::timestamptz[])
        ON CONFLICT (regime, period, unit) DO UPDATE SET
            version = excluded.version, snapshot = excluded.snapshot,
            computed_at = excluded.computed_at, newest_receipt = excluded.newest_receipt,
            attempts = 0, next_attempt_at = '-infinity', updated_at = now()
            WHERE deliveries.version < excluded.version
        RETURNING 1
        """,
        [k.snapshot.regime for k in rows],
        [k.snapshot.period for k in rows],
        [k.snapshot.unit for k in rows],
        [k.snapshot.version for k in rows],
        [k.snapshot.model_dump(mode="python", by_alias=True) for k in rows],
        [k.snapshot.computed_at for k in rows],
        [k.newest_receipt for k in rows],
    )
    return len(result)


async def claim_due(conn: Connection, now: datetime, limit: int, lease_s: float) -> list[Due]:
    """Claim up to `limit` scopes due for an attempt; the lease keeps other instances off."""
    rows = await conn.fetch(
        """
        UPDATE deliveries d
        SET lease_until = $1 + make_interval(secs => $3)
        FROM (
            SELECT regime, period, unit FROM deliveries
            WHERE acked_version < version
              AND (parked_version IS NULL OR parked_version < version)
              AND next_attempt_at <= $1 AND lease_until <= $1
            ORDER BY next_attempt_at, computed_at
            LIMIT $2
            FOR UPDATE SKIP LOCKED
        ) due
        WHERE (d.regime, d.period, d.unit) = (due.regime, due.period, due.unit)
        RETURNING d.snapshot, d.attempts, d.newest_receipt
        """,
        now,
        limit,
        lease_s,
    )
    return [
        Due(AggregateSnapshot.model_validate(r["snapshot"]), r["attempts"], r["newest_receipt"])
        for r in rows
    ]


async def record(conn: Connection, attempts: Sequence[Attempt]) -> None:
    """Write each attempt's result. Bookkeeping of a version that was superseded while in
    flight is dropped: the newer version starts with a clean slate."""
    for a in attempts:
        s = a.due.snapshot
        await conn.execute(
            """
            UPDATE deliveries SET
                acked_version = CASE WHEN $5 = 'acked' THEN greatest(acked_version, $4)
                                     ELSE acked_version END,
                parked_version = CASE WHEN $5 = 'parked' AND version = $4 THEN $4
                                      ELSE parked_version END,
                attempts = CASE WHEN version = $4 AND $5 = 'retry' THEN attempts + 1
                                WHEN version = $4 THEN 0 ELSE attempts END,
                next_attempt_at = CASE WHEN version = $4 AND $5 = 'retry' THEN $6
                                       ELSE next_attempt_at END,
                last_status = $7, last_error = $8,
                lease_until = '-infinity', updated_at = now()
            WHERE regime = $1 AND period = $2 AND unit = $3
            """,
            s.regime,
            s.period,
            s.unit,
            s.version,
            a.step.value,
            a.next_attempt_at,
            a.reply.status_code,
            a.reply.error,
        )


async def unpark(conn: Connection, regime: str | None = None) -> int:
    """An operator's command: parked scopes are tried again (all, or one regime's)."""
    result = await conn.fetch(
        """
        UPDATE deliveries SET parked_version = NULL, attempts = 0, next_attempt_at = '-infinity'
        WHERE parked_version IS NOT NULL AND ($1::text IS NULL OR regime = $1)
        RETURNING 1
        """,
        regime,
    )
    return len(result)


async def acknowledged(conn: Connection, limit: int) -> list[tuple[str, str, str, int]]:
    """Scopes believed delivered, to check against what the hub holds."""
    rows = await conn.fetch(
        "SELECT regime, period, unit, acked_version FROM deliveries"
        " WHERE acked_version >= version ORDER BY updated_at DESC LIMIT $1",
        limit,
    )
    return [(r["regime"], r["period"], r["unit"], r["acked_version"]) for r in rows]


async def rewind(conn: Connection, regime: str, period: str, unit: str, held: int) -> None:
    """The hub holds less than we thought: what it lacks is due again."""
    await conn.execute(
        "UPDATE deliveries SET acked_version = $4, attempts = 0, next_attempt_at = '-infinity'"
        " WHERE regime = $1 AND period = $2 AND unit = $3 AND acked_version > $4",
        regime,
        period,
        unit,
        held,
    )


async def backlog(conn: Connection) -> tuple[int, int]:
    """(scopes behind the hub, scopes parked)."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE acked_version < version"
        "   AND (parked_version IS NULL OR parked_version < version)) AS behind,"
        " count(*) FILTER (WHERE parked_version = version) AS parked FROM deliveries"
    )
    assert row is not None
    return int(row["behind"]), int(row["parked"])
