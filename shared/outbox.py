"""The transactional outbox: messages committed with the state, relayed to Kafka after.

A handler writes its new state and the messages announcing it in one PostgreSQL
transaction, then acknowledges its input. The relay takes outbox rows in id order, deletes
them, publishes them gathering the broker's confirmations per batch, and only then commits
the delete. A crash before the delete republishes (consumers are idempotent); nothing
committed is ever lost. One relay per schema runs at a time (advisory lock), which keeps
the messages of one key in the order they were committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from operator import itemgetter
from types import MappingProxyType
from typing import NamedTuple

from shared.batches import Record
from shared.db import Connection, Pool
from shared.logging import get_logger
from shared.observability.metrics import Metrics

log = get_logger(__name__)

_ID = itemgetter(0)
NO_HEADERS: Mapping[str, str] = MappingProxyType({})

# Sends every message, in order per topic and key, and returns once the broker has
# acknowledged them all.
Publish = Callable[[Sequence["OutboxMessage"]], Awaitable[None]]


class OutboxMessage(NamedTuple):
    """A message to publish. Immutable, and a tuple: every stage builds one or two for each
    report, at a third of a frozen dataclass's cost."""

    topic: str
    key: bytes | None
    payload: bytes
    headers: Mapping[str, str] = NO_HEADERS


def dead_letter(record: Record, dlq_topic: str, stage: str, error: str) -> OutboxMessage:
    """The raw record, kept byte for byte, with why and where it failed."""
    return OutboxMessage(
        topic=dlq_topic,
        key=record.key,
        payload=record.value or b"",
        headers={
            "dlq.error": error[:2000],
            "dlq.stage": stage,
            "dlq.source.topic": record.topic,
            "dlq.source.partition": str(record.partition),
            "dlq.source.offset": str(record.offset),
        },
    )


def dead_letter_http(
    body: bytes, dlq_topic: str, stage: str, error: str, *, truncated: bool = False
) -> OutboxMessage:
    """A request body refused over HTTP, kept like a refused record: it has no topic or
    offset, so its channel says where it came from. A body cut at the size limit is kept
    up to the limit (`truncated`): the rest was never read."""
    headers = {"dlq.error": error[:2000], "dlq.stage": stage, "dlq.source.channel": "http"}
    if truncated:
        headers["dlq.truncated"] = "true"
    return OutboxMessage(topic=dlq_topic, key=None, payload=body, headers=headers)


async def write(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
    """Insert messages into the outbox; call inside the transaction that changes the state."""
    if not messages:
        return
    # Most messages have no headers: NULL there, so that neither this side nor the relay
    # encodes or parses an empty JSON object per message.
    await conn.execute(
        "INSERT INTO outbox (topic, key, payload, headers) "
        "SELECT t, k, p, coalesce(h, '{}') "
        "FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::jsonb[]) AS m(t, k, p, h)",
        [m.topic for m in messages],
        [m.key for m in messages],
        [m.payload for m in messages],
        [dict(m.headers) if m.headers else None for m in messages],
    )


async def backlog(conn: Connection) -> tuple[int, float]:
    """(messages waiting, age in seconds of the oldest one, 0 when none), by the database's
    clock on both ends."""
    row = await conn.fetchrow(
        "SELECT count(*) AS waiting,"
        " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
        " FROM outbox"
    )
    assert row is not None
    return int(row["waiting"]), float(row["oldest"])


class OutboxRelay:
    def __init__(
        self,
        pool: Pool,
        publish: Publish,
        metrics: Metrics,
        *,
        batch_size: int = 1000,
        idle_s: float = 0.5,
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._metrics = metrics
        self._batch_size = batch_size
        self._idle_s = idle_s
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Something was committed to the outbox: relay now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            self._wake.clear()
            try:
                sent = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                failures += 1
                log.exception("outbox_relay_failed", failures=failures)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            failures = 0
            if sent < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_s)

    async def relay_once(self) -> int:
        """Publish one batch from the outbox; returns how many messages were sent."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The delete need not wait for the disk (synchronous_commit off for this
            # transaction): if the server lost it in a crash, the rows would only be
            # published again, and every consumer is idempotent.
            locked = await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext(current_schema() || '.outbox'))"
                " AND set_config('synchronous_commit', 'off', true) = 'off'"
            )
            if not locked:
                return 0
            # Taken and deleted in one statement: the transaction ends (deleting them for
            # good) only once the broker has acknowledged every one.
            rows = await conn.fetch(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT $1)"
                " RETURNING id, topic, key, payload, nullif(headers, '{}')",
                self._batch_size,
            )
            if not rows:
                return 0
            rows.sort(key=_ID)  # RETURNING keeps no order
            # Read by position: a batch has up to a thousand rows, read in the stage's loop.
            await self._publish([OutboxMessage(r[1], r[2], r[3], r[4] or {}) for r in rows])
        counts = Counter(r[1] for r in rows)
        for topic, n in counts.items():
            self._metrics.outbox_published.labels(topic=topic).inc(n)
        return len(rows)
