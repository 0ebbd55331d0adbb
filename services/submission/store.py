"""All of submission's SQL."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

from shared import audit as shared_audit
from shared import codec
from shared.contracts import Channel, LockException, Outcome, Report, Status
from shared.db import Connection

from .senders import Source


class StoredReport(NamedTuple):
    """A report to store, as received. A named tuple: one is built for each report, at a
    third of a frozen dataclass's cost."""

    report: Report
    raw: bytes
    channel: Channel
    received_at: datetime
    source: tuple[str, int, int] | None = None  # topic, partition, offset
    sender: str | None = None  # the authenticated source, when senders are authenticated


@dataclass(frozen=True, slots=True)
class PendingDuplicate:
    report_id: str
    received_at: datetime
    channel: Channel
    sender: str | None = None


async def insert_reports(conn: Connection, reports: Sequence[StoredReport]) -> set[str]:
    """Store new reports; returns the ids inserted (the others were already there)."""
    if not reports:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO reports (report_id, regime, period, unit, revision, body, channel,
                             received_at, source_topic, source_partition, source_offset,
                             sender, signature_key_id, signature)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[],
                             $6::bytea[], $7::text[], $8::timestamptz[], $9::text[],
                             $10::int[], $11::bigint[], $12::text[], $13::text[], $14::text[])
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
        [s.sender for s in reports],
        [s.report.signature.key_id if s.report.signature else None for s in reports],
        [s.report.signature.value if s.report.signature else None for s in reports],
    )
    return {r["report_id"] for r in rows}


async def stored_from(
    conn: Connection, sources: Sequence[tuple[str, int, int]]
) -> set[tuple[str, int, int]]:
    """Which of these Kafka records (topic, partition, offset) a stored report came from.

    A partition is read in offset order, so in the usual batch every record lies beyond
    the last offset stored from its partition: one index look-up per partition settles
    it. Only records at or below that offset (read again after a crash, or in a replay)
    are looked up one by one."""
    if not sources:
        return set()
    partitions = sorted({(topic, partition) for topic, partition, _ in sources})
    lasts = await conn.fetch(
        """
        SELECT s.topic, s.part,
               (SELECT max(r.source_offset) FROM reports r
                 WHERE r.source_topic = s.topic AND r.source_partition = s.part) AS last
        FROM unnest($1::text[], $2::int[]) AS s(topic, part)
        """,
        [p[0] for p in partitions],
        [p[1] for p in partitions],
    )
    last = {(r["topic"], r["part"]): r["last"] for r in lasts if r["last"] is not None}
    sources = [s for s in sources if s[2] <= last.get((s[0], s[1]), -1)]
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


async def forwarded_upto(
    conn: Connection, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The offset up to which each partition's reports are known to be forwarded."""
    partitions = sorted(set(partitions))
    rows = await conn.fetch(
        "SELECT f.source_topic, f.source_partition, f.upto FROM forwarded f"
        " JOIN unnest($1::text[], $2::int[]) AS s(topic, part)"
        " ON f.source_topic = s.topic AND f.source_partition = s.part",
        [p[0] for p in partitions],
        [p[1] for p in partitions],
    )
    return {(r["source_topic"], r["source_partition"]): r["upto"] for r in rows}


# Taken shared by each batch from Kafka as it decides how to forward, and exclusively to
# open a lock exception (see `may_forward_directly`).
_FORWARDING_LOCK: Final = "hashtext(current_schema() || '.forwarding')"


async def may_forward_directly(conn: Connection, received_topic: str) -> bool:
    """Whether a batch from Kafka may publish its forwarding messages itself after its
    commit: the outbox holds none for reports.received.v1, which they would overtake.

    Call first in the batch's transaction. The shared lock keeps a lock exception from
    being opened until the batch has committed; the check is a statement of its own, so
    that it sees a lock exception committed while the lock was awaited."""
    await conn.execute(f"SELECT pg_advisory_xact_lock_shared({_FORWARDING_LOCK})")
    waiting: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE topic = $1)", received_topic
    )
    return not waiting


async def hold_forwarding(conn: Connection) -> None:
    """Wait until no batch from Kafka is deciding how to forward, and keep any from doing
    so until this transaction ends: for opening a lock exception."""
    await conn.execute(f"SELECT pg_advisory_xact_lock({_FORWARDING_LOCK})")


async def mark_forwarded(conn: Connection, upto: Mapping[tuple[str, int], int]) -> None:
    """Every report of these partitions up to these offsets is forwarded (acknowledged, or
    in the outbox of the transaction that calls this)."""
    if not upto:
        return
    await conn.execute(
        """
        INSERT INTO forwarded (source_topic, source_partition, upto)
        SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[])
        ON CONFLICT (source_topic, source_partition)
            DO UPDATE SET upto = greatest(forwarded.upto, excluded.upto)
        """,
        [p[0] for p in upto],
        [p[1] for p in upto],
        list(upto.values()),
    )


async def mark_forwarded_lazily(conn: Connection, upto: Mapping[tuple[str, int], int]) -> None:
    """`mark_forwarded` in a transaction of its own that need not wait for the disk: lost
    in a server crash, the mark only makes those reports be forwarded again."""
    async with conn.transaction():
        await conn.execute("SELECT set_config('synchronous_commit', 'off', true)")
        await mark_forwarded(conn, upto)


@dataclass(frozen=True, slots=True)
class Unforwarded:
    """A stored report from Kafka whose forwarding was never acknowledged."""

    regime: str
    period: str
    raw: bytes
    received_at: datetime
    channel: Channel


async def reports_from(
    conn: Connection, sources: Sequence[tuple[str, int, int]]
) -> list[Unforwarded]:
    """The stored reports these Kafka records (topic, partition, offset) brought, in the
    order they were read."""
    if not sources:
        return []
    rows = await conn.fetch(
        """
        SELECT r.regime, r.period, r.body, r.received_at, r.channel FROM reports r
        JOIN unnest($1::text[], $2::int[], $3::bigint[]) AS s(topic, part, off)
          ON r.source_topic = s.topic AND r.source_partition = s.part
         AND r.source_offset = s.off
        ORDER BY s.topic, s.part, s.off
        """,
        [s[0] for s in sources],
        [s[1] for s in sources],
        [s[2] for s in sources],
    )
    return [
        Unforwarded(r["regime"], r["period"], r["body"], r["received_at"], Channel(r["channel"]))
        for r in rows
    ]


async def owners_of(conn: Connection, report_ids: Iterable[str]) -> dict[str, str]:
    """The sender of each stored report that has one, whatever the channel."""
    rows = await conn.fetch(
        "SELECT report_id, sender FROM reports WHERE report_id = ANY($1::text[])"
        " AND sender IS NOT NULL",
        list(report_ids),
    )
    return {r["report_id"]: r["sender"] for r in rows}


async def senders_of(conn: Connection, report_ids: Iterable[str]) -> dict[str, str]:
    """The authenticated sender of each report received over Kafka that has one."""
    rows = await conn.fetch(
        "SELECT report_id, sender FROM reports WHERE report_id = ANY($1::text[])"
        " AND sender IS NOT NULL AND channel = 'kafka'",
        list(report_ids),
    )
    return {r["report_id"]: r["sender"] for r in rows}


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
    return {r["report_id"]: codec.decode_internal(Outcome, r["outcome"]) for r in rows}


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
            "INSERT INTO pending_duplicates (report_id, received_at, channel, sender) "
            "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[])",
            [p.report_id for p in pending],
            [p.received_at for p in pending],
            [p.channel.value for p in pending],
            [p.sender for p in pending],
        )


async def take_pending_duplicates(
    conn: Connection, report_ids: Iterable[str]
) -> list[PendingDuplicate]:
    # A join, not `report_id = ANY($1)`: with a batch's worth of ids, PostgreSQL plans the
    # small table as a scan comparing each row with every id (8 ms a batch with 200 rows
    # waiting, against 2 ms joined).
    rows = await conn.fetch(
        "DELETE FROM pending_duplicates p USING unnest($1::text[]) AS t(report_id) "
        "WHERE p.report_id = t.report_id "
        "RETURNING p.report_id, p.received_at, p.channel, p.sender",
        list(report_ids),
    )
    return [
        PendingDuplicate(r["report_id"], r["received_at"], Channel(r["channel"]), r["sender"])
        for r in rows
    ]


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
        SELECT r, s, c, o FROM unnest($1::text[], $2::text[], $3::boolean[], $4::bytea[])
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
        encoded,
    )


async def report_state(conn: Connection, report_id: str) -> tuple[datetime | None, Outcome | None]:
    """When the report was received (None if never) and its verdict (None if not yet)."""
    row = await conn.fetchrow(
        "SELECT r.received_at, v.outcome FROM (SELECT $1::text AS report_id) q "
        "LEFT JOIN reports r USING (report_id) LEFT JOIN verdicts v USING (report_id)",
        report_id,
    )
    assert row is not None
    stored = row["outcome"]
    outcome = codec.decode_internal(Outcome, stored) if stored is not None else None
    return row["received_at"], outcome


# Verdicts given before the input was a stored report: a sender refused (E140-E142) can
# name any report id, and must never overwrite the verdict on a report really stored.
async def report_unit(conn: Connection, report_id: str) -> str | None:
    """The unit of a stored report, or of the verdict given on it."""
    unit: str | None = await conn.fetchval(
        "SELECT coalesce((SELECT unit FROM reports WHERE report_id = $1),"
        " (SELECT convert_from(outcome, 'UTF8')::jsonb->>'unit' FROM verdicts"
        " WHERE report_id = $1))",
        report_id,
    )
    return unit


CONTRACT_CODES = frozenset({"E100", "E140", "E141", "E142", "E150"})


def is_contract_only(outcome: Outcome) -> bool:
    """A verdict given before the input was a stored report (it never reached validation)."""
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


# --- senders, operators and their audit log ----------------------------------------------


@dataclass(frozen=True, slots=True)
class SourceRow:
    name: str
    units: tuple[str, ...]
    signatures_required: bool
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    keys: tuple[str, ...]
    kafka_principal: str | None = None


async def active_sources(conn: Connection, names: Iterable[str]) -> dict[str, Source]:
    """The named sources that are not revoked, with their keys that are not revoked."""
    rows = await conn.fetch(
        "SELECT s.name, s.units, s.credential_hash, s.signatures_required,"
        " coalesce(array_agg(k.key_id) FILTER (WHERE k.key_id IS NOT NULL), '{}') AS key_ids,"
        " coalesce(array_agg(k.public_key) FILTER (WHERE k.key_id IS NOT NULL), '{}') AS keys"
        " FROM sources s LEFT JOIN source_keys k"
        " ON k.source = s.name AND k.revoked_at IS NULL"
        " WHERE s.name = ANY($1::text[]) AND s.revoked_at IS NULL"
        " GROUP BY s.name",
        list(names),
    )
    return {
        r["name"]: Source(
            name=r["name"],
            units=frozenset(r["units"]),
            credential_hash=r["credential_hash"],
            signatures_required=r["signatures_required"],
            keys=dict(zip(r["key_ids"], (bytes(k) for k in r["keys"]), strict=True)),
        )
        for r in rows
    }


async def insert_source(
    conn: Connection,
    name: str,
    units: Sequence[str],
    credential_hash: str,
    signed: bool,
    at: datetime,
) -> bool:
    """Register a source; False when the name is taken (even by a revoked source)."""
    inserted = await conn.fetchval(
        "INSERT INTO sources (name, units, credential_hash, signatures_required, created_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING name",
        name,
        list(units),
        credential_hash,
        signed,
        at,
    )
    return inserted is not None


# Who holds a credential, and the table that keeps them. Sources (local systems) and
# operators share one lifecycle: a credential is rotated or revoked, a name never reused.
Holder = Literal["source", "operator"]
_HOLDER_TABLES: Final[dict[Holder, str]] = {"source": "sources", "operator": "operators"}


async def set_credential(
    conn: Connection, holder: Holder, name: str, credential_hash: str, at: datetime
) -> bool:
    """Replace an active holder's credential hash; False when there is none by that name."""
    table = _HOLDER_TABLES[holder]
    done = await conn.fetchval(
        f"UPDATE {table} SET credential_hash = $2, rotated_at = $3"  # noqa: S608 - a table above
        " WHERE name = $1 AND revoked_at IS NULL RETURNING name",
        name,
        credential_hash,
        at,
    )
    return done is not None


async def revoke(conn: Connection, holder: Holder, name: str, at: datetime) -> bool:
    """Revoke an active holder; False when there is none by that name."""
    table = _HOLDER_TABLES[holder]
    done = await conn.fetchval(
        f"UPDATE {table} SET revoked_at = $2"  # noqa: S608 - a table above
        " WHERE name = $1 AND revoked_at IS NULL RETURNING name",
        name,
        at,
    )
    return done is not None


async def insert_source_key(
    conn: Connection, source: str, key_id: str, public_key: bytes, at: datetime
) -> bool:
    """Register a public key; False when the source has that key id already."""
    done = await conn.fetchval(
        "INSERT INTO source_keys (source, key_id, public_key, added_at)"
        " SELECT $1, $2, $3, $4 WHERE EXISTS"
        " (SELECT 1 FROM sources WHERE name = $1 AND revoked_at IS NULL)"
        " ON CONFLICT (source, key_id) DO NOTHING RETURNING key_id",
        source,
        key_id,
        public_key,
        at,
    )
    return done is not None


async def revoke_source_key(conn: Connection, source: str, key_id: str, at: datetime) -> bool:
    done = await conn.fetchval(
        "UPDATE source_keys SET revoked_at = $3"
        " WHERE source = $1 AND key_id = $2 AND revoked_at IS NULL RETURNING key_id",
        source,
        key_id,
        at,
    )
    return done is not None


async def sources(conn: Connection) -> list[SourceRow]:
    rows = await conn.fetch(
        "SELECT s.name, s.units, s.signatures_required, s.created_at, s.rotated_at,"
        " s.revoked_at, s.kafka_principal, coalesce(array_agg(k.key_id ORDER BY k.key_id)"
        " FILTER (WHERE k.key_id IS NOT NULL), '{}') AS keys"
        " FROM sources s LEFT JOIN source_keys k ON k.source = s.name AND k.revoked_at IS NULL"
        " GROUP BY s.name ORDER BY s.name"
    )
    return [
        SourceRow(
            r["name"],
            tuple(r["units"]),
            r["signatures_required"],
            r["created_at"],
            r["rotated_at"],
            r["revoked_at"],
            tuple(r["keys"]),
            r["kafka_principal"],
        )
        for r in rows
    ]


async def source_state(conn: Connection, name: str) -> tuple[bool, str | None] | None:
    """(active, Kafka principal granted) of a source; None when there is none by that name."""
    row = await conn.fetchrow(
        "SELECT revoked_at IS NULL AS active, kafka_principal FROM sources WHERE name = $1", name
    )
    return (row["active"], row["kafka_principal"]) if row is not None else None


async def set_kafka_principal(conn: Connection, name: str, principal: str | None) -> None:
    await conn.execute("UPDATE sources SET kafka_principal = $2 WHERE name = $1", name, principal)


async def operator_hash(conn: Connection, name: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT credential_hash FROM operators WHERE name = $1 AND revoked_at IS NULL", name
    )
    return found


async def insert_operator(conn: Connection, name: str, credential_hash: str, at: datetime) -> bool:
    done = await conn.fetchval(
        "INSERT INTO operators (name, credential_hash, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO NOTHING RETURNING name",
        name,
        credential_hash,
        at,
    )
    return done is not None


async def operators(conn: Connection) -> list[tuple[str, datetime, datetime | None]]:
    rows = await conn.fetch("SELECT name, created_at, revoked_at FROM operators ORDER BY name")
    return [(r["name"], r["created_at"], r["revoked_at"]) for r in rows]


# The audit log's rows and queries are shared with every service that keeps one.
audit = shared_audit.record
audit_entries = shared_audit.entries
