"""All of submission's SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared import codec
from shared.contracts import Channel, LockException, Outcome, Report, Status
from shared.db import Connection


@dataclass(frozen=True, slots=True)
class StoredReport:
    report: Report
    raw: bytes
    channel: Channel
    received_at: datetime
    source: tuple[str, int, int] | None = None  # topic, partition, offset


@dataclass(frozen=True, slots=True)
class PendingDuplicate:
    report_id: str
    received_at: datetime
    channel: Channel


async def insert_reports(conn: Connection, reports: Sequence[StoredReport]) -> set[str]:
    """Store new reports; returns the ids inserted (the others were already there)."""
    if not reports:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO reports (report_id, regime, period, unit, revision, body, channel,
                             received_at, source_topic, source_partition, source_offset)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                             $6::bytea[], $7::text[], $8::timestamptz[], $9::text[],
                             $10::int[], $11::bigint[])
        ON CONFLICT (report_id) DO NOTHING
        RETURNING report_id
        """,
        [s.report.report_id for s in reports],
        [s.report.regime for s in reports],
        [s.report.period for s in reports],
        [s.report.unit for s in reports],
        [s.report.revision for s in reports],
        [s.raw for s in reports],
        [s.channel.value for s in reports],
        [s.received_at for s in reports],
        [s.source[0] if s.source else None for s in reports],
        [s.source[1] if s.source else None for s in reports],
        [s.source[2] if s.source else None for s in reports],
    )
    return {r["report_id"] for r in rows}


async def stored_from(
    conn: Connection, sources: Sequence[tuple[str, int, int]]
) -> set[tuple[str, int, int]]:
    """Which of these Kafka records (topic, partition, offset) a stored report came from."""
    if not sources:
        return set()
    rows = await conn.fetch(
        """
        SELECT r.source_topic, r.source_partition, r.source_offset FROM reports r
        JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS s(topic, part, off)
          ON r.source_topic = s.topic AND r.source_partition = s.part
         AND r.source_offset = s.off
        """,
        [s[0] for s in sources],
        [s[1] for s in sources],
        [s[2] for s in sources],
    )
    return {(r["source_topic"], r["source_partition"], r["source_offset"]) for r in rows}


async def sources_of(conn: Connection, report_ids: Iterable[str]) -> dict[str, tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT report_id, source_topic, source_partition, source_offset FROM reports "
        "WHERE report_id = ANY($1::text[])",
        list(report_ids),
    )
    return {
        r["report_id"]: (r["source_topic"], r["source_partition"], r["source_offset"]) for r in rows
    }


async def verdicts_of(conn: Connection, report_ids: Iterable[str]) -> dict[str, Outcome]:
    rows = await conn.fetch(
        "SELECT report_id, outcome FROM verdicts WHERE report_id = ANY($1::text[])",
        list(report_ids),
    )
    return {r["report_id"]: Outcome.model_validate(r["outcome"]) for r in rows}


async def lock_pending_duplicates(conn: Connection) -> None:
    """Until commit: a duplicate is recorded as pending, and pending duplicates are answered
    with a new verdict, one transaction at a time (see `Ingest`). The schema is in the key,
    so other deployments on the server never wait on this one."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.pending_duplicates'))"
    )


async def add_pending_duplicates(conn: Connection, pending: Sequence[PendingDuplicate]) -> None:
    if pending:
        await conn.execute(
            "INSERT INTO pending_duplicates (report_id, received_at, channel) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[])",
            [p.report_id for p in pending],
            [p.received_at for p in pending],
            [p.channel.value for p in pending],
        )


async def take_pending_duplicates(
    conn: Connection, report_ids: Iterable[str]
) -> list[PendingDuplicate]:
    rows = await conn.fetch(
        "DELETE FROM pending_duplicates WHERE report_id = ANY($1::text[]) "
        "RETURNING report_id, received_at, channel",
        list(report_ids),
    )
    return [PendingDuplicate(r["report_id"], r["received_at"], Channel(r["channel"])) for r in rows]


async def save_verdicts(
    conn: Connection, outcomes: Sequence[Outcome], encoded: Sequence[bytes] | None = None
) -> None:
    """Keep each report's verdict (`encoded`: its JSON as published, stored as it is, when
    the caller has it). A contract rejection (E100/E150 of a message that named the id)
    never replaces the verdict on a stored report, which always wins."""
    if not outcomes:
        return
    if encoded is None:
        encoded = [codec.dumps(o) for o in outcomes]
    await conn.execute(
        """
        INSERT INTO verdicts (report_id, status, contract_only, outcome)
        SELECT r, s, c, o::jsonb FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[])
            AS t(r, s, c, o)
        ON CONFLICT (report_id) DO UPDATE
            SET status = excluded.status, contract_only = excluded.contract_only,
                outcome = excluded.outcome, updated_at = now()
            WHERE (verdicts.contract_only OR NOT excluded.contract_only)
              -- A verdict read again (a replay) is not written again.
              AND verdicts.outcome IS DISTINCT FROM excluded.outcome
        """,
        [o.report_id for o in outcomes],
        [o.status.value for o in outcomes],
        [is_contract_only(o) for o in outcomes],
        [e.decode() for e in encoded],
    )


async def report_state(conn: Connection, report_id: str) -> tuple[datetime | None, Outcome | None]:
    """When the report was received (None if never) and its verdict (None if not yet)."""
    row = await conn.fetchrow(
        "SELECT r.received_at, v.outcome FROM (SELECT $1::text AS report_id) q "
        "LEFT JOIN reports r USING (report_id) LEFT JOIN verdicts v USING (report_id)",
        report_id,
    )
    assert row is not None
    outcome = Outcome.model_validate(row["outcome"]) if row["outcome"] is not None else None
    return row["received_at"], outcome


CONTRACT_CODES = frozenset({"E100", "E150"})


def is_contract_only(outcome: Outcome) -> bool:
    """A verdict given before the input was a report at all (it never reached validation)."""
    return outcome.status is Status.REJECTED and all(
        i.code in CONTRACT_CODES for i in outcome.issues
    )


async def insert_lock_exception(conn: Connection, exception: LockException) -> int:
    """Record an operator's lock exception; returns its id."""
    new_id: int = await conn.fetchval(
        "INSERT INTO lock_exceptions "
        "(regime, period, unit, expires_at, reason, opened_by, opened_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        exception.regime,
        exception.period,
        exception.unit,
        exception.expires_at,
        exception.reason,
        exception.opened_by,
        exception.opened_at,
    )
    return new_id


async def lock_exceptions(
    conn: Connection, regime: str | None, period: str | None, unit: str | None
) -> list[tuple[int, LockException]]:
    """The recorded lock exceptions, oldest first, filtered by whichever of the keys is given."""
    rows = await conn.fetch(
        "SELECT id, regime, period, unit, expires_at, reason, opened_by, opened_at "
        "FROM lock_exceptions WHERE ($1::text IS NULL OR regime = $1) "
        "AND ($2::text IS NULL OR period = $2) AND ($3::text IS NULL OR unit = $3) "
        "ORDER BY id",
        regime,
        period,
        unit,
    )
    return [
        (
            r["id"],
            LockException(
                regime=r["regime"],
                period=r["period"],
                unit=r["unit"],
                expires_at=r["expires_at"],
                reason=r["reason"],
                opened_by=r["opened_by"],
                opened_at=r["opened_at"],
            ),
        )
        for r in rows
    ]
