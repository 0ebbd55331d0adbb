"""All of the connector's SQL: the durable delivery state per scope.

One row per scope (regime, period, unit): the latest snapshot version known and its body,
the latest version the hub acknowledged, the attempts at the current version, when the
next attempt is due, the version parked after a refusal, and the last attempt's result.

A scope being delivered is claimed with a session advisory lock, held by the connection
of the instance that sends it until it has recorded the result. Advisory locks are
database-wide, so the key includes the schema: two deployments (or test runs) in one
database never wait on each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.contracts import AggregateSnapshot
from shared.db import Connection

from .hub_client import HubReply
from .policy import Step

Scope = tuple[str, str, str]
ListedState = Literal["behind", "parked", "delivered"]


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

    @property
    def scope(self) -> Scope:
        return (self.snapshot.regime, self.snapshot.period, self.snapshot.unit)


@dataclass(frozen=True, slots=True)
class Attempt:
    due: Due
    reply: HubReply
    step: Step
    next_attempt_at: datetime | None
    at: datetime


async def remember(conn: Connection, known: Sequence[Known]) -> int:
    """Keep the highest version of each scope; returns how many scopes moved forward."""
    if not known:
        return 0
    latest: dict[Scope, Known] = {}
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


def _columns(scopes: Sequence[Scope]) -> tuple[list[str], list[str], list[str]]:
    return [s[0] for s in scopes], [s[1] for s in scopes], [s[2] for s in scopes]


async def claim(conn: Connection, now: datetime, limit: int) -> list[Due]:
    """Claim up to `limit` due scopes for this connection; `release` them when recorded.

    The locks are taken before the rows are read again, so what is sent is the latest
    version at claim time, and no other instance sends that scope meanwhile. If the
    process dies, its connection closes and PostgreSQL releases the locks.
    """
    candidates = await conn.fetch(
        """
        SELECT regime, period, unit FROM deliveries
        WHERE acked_version < version
          AND (parked_version IS NULL OR parked_version < version)
          AND next_attempt_at <= $1
        ORDER BY next_attempt_at, computed_at LIMIT $2
        """,
        now,
        limit * 4,  # other instances may hold some of the first ones
    )
    if not candidates:
        return []
    locked = await conn.fetch(
        """
        SELECT k.regime, k.period, k.unit
        FROM unnest($1::text[], $2::text[], $3::text[]) AS k(regime, period, unit)
        WHERE pg_try_advisory_lock(
            hashtextextended(current_schema() || '.delivery|' || k.regime || '|' || k.period
                             || '|' || k.unit, 0))
        """,
        *_columns([(r["regime"], r["period"], r["unit"]) for r in candidates]),
    )
    if not locked:
        return []
    rows = await conn.fetch(
        """
        SELECT d.snapshot, d.attempts, d.newest_receipt FROM deliveries d
        JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(regime, period, unit)
            USING (regime, period, unit)
        WHERE d.acked_version < d.version
          AND (d.parked_version IS NULL OR d.parked_version < d.version)
          AND d.next_attempt_at <= $1
        ORDER BY d.next_attempt_at, d.computed_at
        """,
        now,
        *_columns([(r["regime"], r["period"], r["unit"]) for r in locked]),
    )
    due = [
        Due(AggregateSnapshot.model_validate(r["snapshot"]), r["attempts"], r["newest_receipt"])
        for r in rows[:limit]
    ]
    taken = {d.scope for d in due}
    spare = [(r["regime"], r["period"], r["unit"]) for r in locked]
    await release(conn, [s for s in spare if s not in taken])
    return due


async def release(conn: Connection, scopes: Sequence[Scope]) -> None:
    if not scopes:
        return
    await conn.execute(
        """
        SELECT pg_advisory_unlock(
            hashtextextended(current_schema() || '.delivery|' || k.regime || '|' || k.period
                             || '|' || k.unit, 0))
        FROM unnest($1::text[], $2::text[], $3::text[]) AS k(regime, period, unit)
        """,
        *_columns(scopes),
    )


async def record(conn: Connection, attempts: Sequence[Attempt]) -> None:
    """Write each attempt's result. Bookkeeping of a version that was superseded while in
    flight is dropped: the newer version starts with a clean slate."""
    if not attempts:
        return
    await conn.execute(
        """
        UPDATE deliveries d SET
            acked_version = CASE WHEN a.step = 'acked'
                                 THEN greatest(d.acked_version, a.version)
                                 ELSE d.acked_version END,
            parked_version = CASE WHEN a.step = 'parked' AND d.version = a.version
                                  THEN a.version ELSE d.parked_version END,
            attempts = CASE WHEN d.version = a.version AND a.step = 'retry' THEN d.attempts + 1
                            WHEN d.version = a.version THEN 0
                            ELSE d.attempts END,
            next_attempt_at = CASE WHEN d.version = a.version AND a.step = 'retry'
                                   THEN a.next_at ELSE d.next_attempt_at END,
            last_outcome = a.outcome, last_status = a.status, last_error = a.error,
            last_attempt_at = a.at, updated_at = now()
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],
                    $6::timestamptz[], $7::text[], $8::int[], $9::text[], $10::timestamptz[])
            AS a(regime, period, unit, version, step, next_at, outcome, status, error, at)
        WHERE (d.regime, d.period, d.unit) = (a.regime, a.period, a.unit)
        """,
        [a.due.snapshot.regime for a in attempts],
        [a.due.snapshot.period for a in attempts],
        [a.due.snapshot.unit for a in attempts],
        [a.due.snapshot.version for a in attempts],
        [a.step.value for a in attempts],
        [a.next_attempt_at for a in attempts],
        [a.reply.outcome.value for a in attempts],
        [a.reply.status_code for a in attempts],
        [a.reply.error for a in attempts],
        [a.at for a in attempts],
    )


async def due_now(conn: Connection) -> int:
    """Scopes behind the hub and waiting out a backoff are due at once (the hub is back,
    or the service just started); returns how many."""
    result = await conn.fetch(
        """
        UPDATE deliveries SET next_attempt_at = '-infinity'
        WHERE acked_version < version AND (parked_version IS NULL OR parked_version < version)
          AND next_attempt_at > '-infinity'
        RETURNING 1
        """
    )
    return len(result)


async def unpark(conn: Connection, regime: str | None = None) -> list[tuple[str, str, str, int]]:
    """An operator's command: parked scopes are tried again (all, or one regime's).
    Returns each scope released with the version that was parked."""
    rows = await conn.fetch(
        """
        UPDATE deliveries d SET parked_version = NULL, attempts = 0,
            next_attempt_at = '-infinity'
        FROM (SELECT regime, period, unit, parked_version FROM deliveries
              WHERE parked_version IS NOT NULL AND ($1::text IS NULL OR regime = $1)
              FOR UPDATE) AS parked
        WHERE (d.regime, d.period, d.unit) = (parked.regime, parked.period, parked.unit)
        RETURNING d.regime, d.period, d.unit, parked.parked_version
        """,
        regime,
    )
    released = [(r["regime"], r["period"], r["unit"], r["parked_version"]) for r in rows]
    return sorted(released)


async def acknowledged(
    conn: Connection, after: Scope | None, limit: int
) -> list[tuple[str, str, str, int]]:
    """Scopes believed delivered, to check against what the hub holds: a page of them in
    the primary key's order, after the scope `after` (None: from the first)."""
    first = after is None
    regime, period, unit = after or ("", "", "")
    rows = await conn.fetch(
        "SELECT regime, period, unit, acked_version FROM deliveries"
        " WHERE acked_version >= version AND ($1 OR (regime, period, unit) > ($2, $3, $4))"
        " ORDER BY regime, period, unit LIMIT $5",
        first,
        regime,
        period,
        unit,
        limit,
    )
    return [(r["regime"], r["period"], r["unit"], r["acked_version"]) for r in rows]


async def rewind(conn: Connection, regime: str, period: str, unit: str, held: int) -> bool:
    """The hub holds less than we thought: what it lacks is due again."""
    result = await conn.fetch(
        "UPDATE deliveries SET acked_version = $4, attempts = 0, next_attempt_at = '-infinity'"
        " WHERE regime = $1 AND period = $2 AND unit = $3 AND acked_version > $4 RETURNING 1",
        regime,
        period,
        unit,
        held,
    )
    return bool(result)


async def backlog(conn: Connection) -> tuple[int, int]:
    """(scopes behind the hub, scopes parked)."""
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE acked_version < version"
        "   AND (parked_version IS NULL OR parked_version < version)) AS behind,"
        " count(*) FILTER (WHERE parked_version = version) AS parked FROM deliveries"
    )
    assert row is not None
    return int(row["behind"]), int(row["parked"])


_LISTED = {
    "behind": "acked_version < version AND (parked_version IS NULL OR parked_version < version)",
    "parked": "parked_version = version",
    "delivered": "acked_version >= version",
}


async def listing(
    conn: Connection, state: ListedState | None, regime: str | None, limit: int
) -> list[dict[str, Any]]:
    """The delivery state of scopes, for operators: behind first, then by scope."""
    condition = _LISTED[state] if state else "true"
    rows = await conn.fetch(
        f"""
        SELECT regime, period, unit, version, acked_version, parked_version, attempts,
               next_attempt_at, last_outcome, last_status, last_error, last_attempt_at,
               computed_at
        FROM deliveries WHERE ({condition}) AND ($1::text IS NULL OR regime = $1)
        ORDER BY acked_version >= version, regime, period, unit LIMIT $2
        """,  # noqa: S608 - the condition is one of three constants above
        regime,
        limit,
    )
    times = ("next_attempt_at", "last_attempt_at", "computed_at")
    return [dict(r) | {name: _iso(r[name]) for name in times} for r in rows]


def _iso(value: datetime | None) -> str | None:
    """ISO text; None for no time and for PostgreSQL's -infinity ("due now")."""
    # asyncpg reads ±infinity as datetime.min and datetime.max.
    return value.isoformat() if value is not None and 1 < value.year < 9999 else None
