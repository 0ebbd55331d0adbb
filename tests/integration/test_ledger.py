"""The delivery state, the same cases on PostgreSQL (`PostgresLedger`) and in memory
(`FakeLedger`, which the unit tests of the delivery loop rely on).

Proves: the highest version known is kept, whatever the order it arrives in; a scope is
due only when its latest version is not acknowledged, not parked and its backoff is over;
a claimed scope is nobody else's until the claim ends; each result is recorded by the
rules (acknowledged, retried later with one more attempt, parked), and the result for a
version superseded while in flight leaves the new version due with a clean slate;
`due_now` forgets backoffs but not refusals; `rewind` makes a scope due again; scopes
believed delivered are read a page at a time, each once. On
PostgreSQL only: a claim ends with the connection that held it (a crashed instance
blocks nothing), claims in two schemas of one database never meet, and the attempt's
result and its hub.sync.v1 message are committed together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest

from services.connector import store
from services.connector.hub_client import HubReply
from services.connector.ledger import Ledger, PostgresLedger
from services.connector.policy import Step
from services.connector.store import Attempt, Due, Known, Scope
from shared.contracts import AggregateSnapshot, Completeness, DeliveryOutcome
from shared.db import Pool, create_pool, migrate
from shared.outbox import OutboxMessage
from shared.settings import PostgresSettings
from tests.delivery_fakes import FakeLedger
from tests.harness import eventually

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "connector" / "migrations"
T0 = datetime.fromisoformat("2025-03-18T09:00:00+07:00")
TB: Scope = ("KSTT-TTHC", "2025-Q1", "TB")


def snapshot(unit: str = "TB", version: int = 1) -> AggregateSnapshot:
    return AggregateSnapshot(
        regime="KSTT-TTHC",
        regime_version=1,
        period="2025-Q1",
        unit=unit,
        version=version,
        values={"RECEIVED_ONLINE": Decimal(version), "BUDGET": Decimal("1234567890.123456789")},
        completeness=Completeness(
            expected=1,
            reported=1,
            on_time=1,
            rate=Decimal(100),
            on_time_rate=Decimal(100),
            missing=(),
        ),
        computed_at=T0,
    )


def attempt(
    due: Due, outcome: DeliveryOutcome, step: Step, retry_in: float | None = None
) -> Attempt:
    at = T0 + timedelta(seconds=1)
    next_at = at + timedelta(seconds=retry_in) if retry_in is not None else None
    reply = HubReply(outcome, 200 if step is Step.ACKED else 503, error=None)
    return Attempt(due, reply, step, next_at, at)


class Subject(Protocol):
    ledger: Ledger

    async def remember(self, *snapshots: AggregateSnapshot) -> int: ...

    async def unpark(self) -> int: ...

    async def state(self, scope: Scope) -> dict[str, Any]: ...


class InMemory:
    def __init__(self) -> None:
        self.fake = FakeLedger()
        self.ledger: Ledger = self.fake

    async def remember(self, *snapshots: AggregateSnapshot) -> int:
        return sum(self.fake.remember(s) for s in snapshots)

    async def unpark(self) -> int:
        return self.fake.unpark()

    async def state(self, scope: Scope) -> dict[str, Any]:
        row = self.fake.rows[scope]
        return {
            "version": row.version,
            "acked_version": row.acked_version,
            "attempts": row.attempts,
            "parked_version": row.parked_version,
            "next_attempt_at": row.next_attempt_at,
        }


class InPostgres:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.committed = 0
        self.ledger: Ledger = PostgresLedger(lambda: pool, self._committed)

    def _committed(self) -> None:
        self.committed += 1

    async def remember(self, *snapshots: AggregateSnapshot) -> int:
        async with self.pool.acquire() as conn:
            return await store.remember(conn, [Known(s, None) for s in snapshots])

    async def unpark(self) -> int:
        async with self.pool.acquire() as conn:
            return len(await store.unpark(conn))

    async def state(self, scope: Scope) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            "SELECT version, acked_version, attempts, parked_version, next_attempt_at"
            " FROM deliveries WHERE (regime, period, unit) = ($1, $2, $3)",
            *scope,
        )
        assert row is not None
        state = dict(row)
        if state["next_attempt_at"].year == 1:  # -infinity: due now
            state["next_attempt_at"] = None
        return state


@contextlib.asynccontextmanager
async def connector_pool(dsn: str, schema: str) -> AsyncIterator[Pool]:
    pool = await create_pool(PostgresSettings(dsn=dsn), schema)  # type: ignore[arg-type]
    try:
        await migrate(pool, MIGRATIONS)
        yield pool
    finally:
        await pool.close()


@pytest.fixture(params=["postgres", "memory"])
async def subject(request: pytest.FixtureRequest, namespace: str) -> AsyncIterator[Subject]:
    if request.param == "memory":
        yield InMemory()
        return
    dsn = request.getfixturevalue("postgres_dsn")
    async with connector_pool(dsn, f"{namespace}connector") as pool:
        yield InPostgres(pool)


async def claimed(ledger: Ledger, now: datetime, limit: int = 10) -> list[tuple[str, int]]:
    async with ledger.claim(now, limit) as claim:
        return [(d.snapshot.unit, d.snapshot.version) for d in claim.due]


async def record(
    ledger: Ledger, now: datetime, *steps: tuple[DeliveryOutcome, Step, float | None]
) -> None:
    """Claim, then record one result per claimed scope, in claim order."""
    async with ledger.claim(now, len(steps)) as claim:
        assert len(claim.due) == len(steps)
        await claim.record([attempt(d, *s) for d, s in zip(claim.due, steps, strict=True)], [])


ACKED = (DeliveryOutcome.STORED, Step.ACKED, None)
REFUSED = (DeliveryOutcome.REFUSED, Step.PARKED, None)


def failed(retry_in: float) -> tuple[DeliveryOutcome, Step, float]:
    return (DeliveryOutcome.FAILED, Step.RETRY, retry_in)


# --- the same cases on both ---------------------------------------------------------------


async def test_the_highest_version_known_is_kept_whatever_the_order(subject: Subject) -> None:
    assert await subject.remember(snapshot(version=3)) == 1
    assert await subject.remember(snapshot(version=2)) == 0
    assert await subject.remember(snapshot(version=3)) == 0
    assert await claimed(subject.ledger, T0) == [("TB", 3)]
    assert await subject.remember(snapshot(version=5)) == 1
    assert await claimed(subject.ledger, T0) == [("TB", 5)]


async def test_the_snapshot_is_kept_exactly(subject: Subject) -> None:
    await subject.remember(snapshot(version=2))
    async with subject.ledger.claim(T0, 1) as claim:
        assert [d.snapshot for d in claim.due] == [snapshot(version=2)]


async def test_an_acknowledged_scope_is_not_due_until_a_new_version(subject: Subject) -> None:
    await subject.remember(snapshot(version=1))
    await record(subject.ledger, T0, ACKED)
    assert await claimed(subject.ledger, T0 + timedelta(days=1)) == []
    assert (await subject.state(TB))["acked_version"] == 1
    await subject.remember(snapshot(version=2))
    assert await claimed(subject.ledger, T0) == [("TB", 2)]


async def test_a_failed_scope_is_due_again_once_its_backoff_is_over(subject: Subject) -> None:
    await subject.remember(snapshot())
    await record(subject.ledger, T0, failed(10))
    state = await subject.state(TB)
    assert (state["attempts"], state["acked_version"]) == (1, 0)
    assert state["next_attempt_at"] == T0 + timedelta(seconds=11)
    assert await claimed(subject.ledger, T0 + timedelta(seconds=10.9)) == []
    assert await claimed(subject.ledger, T0 + timedelta(seconds=11)) == [("TB", 1)]
    await record(subject.ledger, T0 + timedelta(seconds=11), failed(20))
    assert (await subject.state(TB))["attempts"] == 2


async def test_a_refused_version_is_parked_until_a_new_version_or_an_operator(
    subject: Subject,
) -> None:
    await subject.remember(snapshot(version=1))
    await record(subject.ledger, T0, REFUSED)
    assert (await subject.state(TB))["parked_version"] == 1
    assert await claimed(subject.ledger, T0 + timedelta(days=1)) == []
    assert await subject.ledger.backlog() == (0, 1)
    assert await subject.unpark() == 1
    assert await claimed(subject.ledger, T0) == [("TB", 1)]
    await record(subject.ledger, T0, REFUSED)
    await subject.remember(snapshot(version=2))
    assert await claimed(subject.ledger, T0) == [("TB", 2)]
    assert await subject.ledger.backlog() == (1, 0)


async def test_a_claimed_scope_is_nobody_elses_until_the_claim_ends(subject: Subject) -> None:
    await subject.remember(snapshot("TB"), snapshot("TB.DH"))
    async with subject.ledger.claim(T0, 1) as first:
        assert len(first.due) == 1
        others = await claimed(subject.ledger, T0)
        assert len(others) == 1
        assert others[0][0] != first.due[0].snapshot.unit
    assert sorted(await claimed(subject.ledger, T0)) == [("TB", 1), ("TB.DH", 1)]


async def test_claims_are_ordered_by_due_time_and_limited(subject: Subject) -> None:
    await subject.remember(*(snapshot(f"TB.U{n}") for n in range(5)))
    await record(subject.ledger, T0, failed(5), failed(1), ACKED, ACKED, ACKED)
    assert await claimed(subject.ledger, T0 + timedelta(seconds=60), limit=1) == [("TB.U1", 1)]


async def test_a_version_superseded_in_flight_leaves_the_new_one_due(subject: Subject) -> None:
    await subject.remember(snapshot(version=1))
    async with subject.ledger.claim(T0, 1) as claim:
        await subject.remember(snapshot(version=2))  # arrives while version 1 is at the hub
        await claim.record([attempt(claim.due[0], *failed(60))], [])
    state = await subject.state(TB)
    assert (state["acked_version"], state["attempts"], state["next_attempt_at"]) == (0, 0, None)
    async with subject.ledger.claim(T0, 1) as claim:
        assert [d.snapshot.version for d in claim.due] == [2]
        await subject.remember(snapshot(version=3))
        await claim.record([attempt(claim.due[0], *ACKED)], [])
    state = await subject.state(TB)
    assert (state["version"], state["acked_version"]) == (3, 2)
    assert await claimed(subject.ledger, T0) == [("TB", 3)]


async def test_due_now_forgets_backoffs_but_not_refusals(subject: Subject) -> None:
    await subject.remember(snapshot("TB"), snapshot("TB.DH"), snapshot("TB.HH"))
    await record(subject.ledger, T0, failed(600), REFUSED, ACKED)
    assert await subject.ledger.due_now() == 1
    assert await claimed(subject.ledger, T0) == [("TB", 1)]
    assert await subject.ledger.due_now() == 0


async def test_rewind_makes_a_scope_due_again(subject: Subject) -> None:
    await subject.remember(snapshot(version=4))
    await record(subject.ledger, T0, ACKED)
    assert await subject.ledger.acknowledged(None, 10) == [(*TB, 4)]
    assert not await subject.ledger.rewind(*TB, 4)
    assert await subject.ledger.rewind(*TB, 2)
    assert await subject.ledger.acknowledged(None, 10) == []
    assert await claimed(subject.ledger, T0) == [("TB", 4)]
    assert await subject.ledger.backlog() == (1, 0)


async def test_scopes_believed_delivered_are_read_a_page_at_a_time(subject: Subject) -> None:
    units = ["TB", "TB.DH", "TB.DH.X01", "TB.HH", "TB.QP", "TB.VT"]
    await subject.remember(*(snapshot(unit) for unit in units))
    await record(subject.ledger, T0, *[ACKED] * len(units))
    await subject.remember(snapshot("TB.KX"))  # not delivered: not listed
    pages = [await subject.ledger.acknowledged(None, 4)]
    while len(pages[-1]) == 4 and len(pages) < 5:
        pages.append(await subject.ledger.acknowledged(pages[-1][-1][:3], 4))
    read = [row for page in pages for row in page]
    assert [len(page) for page in pages] == [4, 2]
    assert sorted(read) == [("KSTT-TTHC", "2025-Q1", unit, 1) for unit in sorted(units)]


# --- PostgreSQL only ------------------------------------------------------------------------


async def test_a_claim_ends_with_the_connection_that_held_it(
    namespace: str, postgres_dsn: str
) -> None:
    schema = f"{namespace}connector"
    async with (
        connector_pool(postgres_dsn, schema) as pool,
        connector_pool(postgres_dsn, schema) as doomed,
    ):
        await InPostgres(pool).remember(snapshot())
        ledger = PostgresLedger(lambda: pool, lambda: None)
        # An instance claims, then dies without a word (SIGKILL): its socket just closes.
        conn = await doomed.acquire()
        assert [d.snapshot.unit for d in await store.claim(conn, T0, 1)] == ["TB"]
        assert await claimed(ledger, T0) == []
        conn.terminate()
        await doomed.release(conn)

        async def free() -> list[tuple[str, int]]:
            return await claimed(ledger, T0)

        assert await eventually(free, timeout=10) == [("TB", 1)]


async def test_claims_in_two_schemas_of_one_database_never_meet(
    namespace: str, postgres_dsn: str
) -> None:
    async with (
        connector_pool(postgres_dsn, f"{namespace}connector") as one,
        connector_pool(postgres_dsn, f"{namespace}other_connector") as two,
    ):
        first, second = InPostgres(one), InPostgres(two)
        await first.remember(snapshot())
        await second.remember(snapshot())
        async with first.ledger.claim(T0, 1) as claim:
            assert len(claim.due) == 1
            assert await claimed(second.ledger, T0) == [("TB", 1)]


async def test_a_result_and_its_message_are_committed_together(
    namespace: str, postgres_dsn: str
) -> None:
    async with connector_pool(postgres_dsn, f"{namespace}connector") as pool:
        subject = InPostgres(pool)
        await subject.remember(snapshot())
        message = OutboxMessage("hub.sync.v1", b"KSTT-TTHC|2025-Q1|TB", b"{}")
        broken = [message, OutboxMessage("hub.sync.v1", None, None)]  # type: ignore[arg-type]
        with pytest.raises(asyncpg.NotNullViolationError):
            async with subject.ledger.claim(T0, 1) as claim:
                await claim.record([attempt(claim.due[0], *ACKED)], broken)
        assert (await subject.state(TB))["acked_version"] == 0  # rolled back with the message
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
        async with subject.ledger.claim(T0, 1) as claim:
            await claim.record([attempt(claim.due[0], *ACKED)], [message])
        assert (await subject.state(TB))["acked_version"] == 1
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
        assert subject.committed == 1
