"""Running one service in the test's own event loop, against the real servers.

`running(app)` drives the FastAPI lifespan (database, migrations, topics, broker, outbox
relay, background loops) exactly as uvicorn would, and stops it cleanly; requests go
through `httpx.ASGITransport`. Helpers here produce to and consume from real topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping, Sequence
from types import ModuleType
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI

T = TypeVar("T")


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield client


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, interval: float = 0.1
) -> T:
    """Poll `check` until it returns something other than None/False, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last  # type: ignore[no-any-return]
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value: {last!r})")


@contextlib.contextmanager
def logs_of(
    monkeypatch: pytest.MonkeyPatch, *modules: ModuleType
) -> Iterator[list[MutableMapping[str, Any]]]:
    """What `modules` log through their `log`, as structlog's event dicts. Each gets a fresh
    logger first: one used before is cached with the processors configured then
    (`cache_logger_on_first_use`), out of `capture_logs`'s reach."""
    for module in modules:
        monkeypatch.setattr(module, "log", structlog.get_logger(module.__name__))
    with structlog.testing.capture_logs() as entries:
        yield entries


async def an_advisory_lock_is_awaited(pool: asyncpg.Pool) -> bool:
    """Whether some transaction is blocked on an advisory lock (one another one holds)."""
    blocked: int = await pool.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    )
    return blocked > 0


async def produce(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning and keeps everything seen, for assertions."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[Any] = []
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    async def __aenter__(self) -> TopicReader:
        try:
            await self._consumer.start()
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> list[Any]:
        batches = await self._consumer.getmany(timeout_ms=200)
        for records in batches.values():
            self.records.extend(records)
        return self.records

    async def until(self, count: int, timeout: float = 30.0) -> list[Any]:
        async def enough() -> list[Any] | None:
            records = await self.poll()
            return records if len(records) >= count else None

        return await eventually(enough, timeout=timeout)


def service_settings(cls: type[T], namespace: str, bootstrap: str, dsn: str, **fields: Any) -> T:
    """Settings for one test: its own topics, groups and schemas on the real servers."""
    from shared.settings import KafkaSettings, PostgresSettings

    kafka = KafkaSettings(bootstrap_servers=bootstrap, namespace=namespace, partitions=3)
    postgres = PostgresSettings(dsn=dsn, schema_prefix=namespace)  # type: ignore[arg-type]
    return cls(kafka=kafka, postgres=postgres, log_format="console", **fields)  # type: ignore[call-arg]


def drop_namespace(prefix: str, bootstrap: str | None, dsn: str | None) -> None:
    """Delete a test's topics and schemas (those named with its prefix), best effort.

    Runs in a thread of its own: a fixture's teardown may happen while an event loop runs.
    """

    async def drop() -> None:
        if bootstrap is not None:
            admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await admin.start()
            try:
                mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
                if mine:
                    await admin.delete_topics(mine)
            finally:
                await admin.close()
        if dsn is not None:
            conn = await asyncpg.connect(dsn)
            try:
                schemas = await conn.fetch(
                    "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", prefix
                )
                for row in schemas:
                    await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
            finally:
                await conn.close()

    def run() -> None:
        with contextlib.suppress(Exception):
            asyncio.run(drop())

    worker = threading.Thread(target=run, name="drop-namespace")
    worker.start()
    worker.join(timeout=60)
