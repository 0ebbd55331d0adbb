"""The delivery state as the deliverer sees it: claim due scopes, record what happened.

`Ledger` is the deliverer's only way to the state, so the delivery loop can run on an
in-memory ledger in unit tests; `PostgresLedger` is the real one (SQL in `store`). A claim
is a context: the scopes are the caller's until it exits, and each attempt's result is
recorded together with its `hub.sync.v1` message in one transaction (the outbox).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from shared import outbox
from shared.db import Connection, Pool
from shared.logging import get_logger
from shared.outbox import OutboxMessage

from . import store
from .store import Attempt, Due, Scope

log = get_logger(__name__)


class Claim(Protocol):
    due: Sequence[Due]

    async def record(self, attempts: Sequence[Attempt], messages: Sequence[OutboxMessage]) -> None:
        """Store the attempts' results and their messages, atomically."""
        ...


class Ledger(Protocol):
    def claim(self, now: datetime, limit: int) -> AbstractAsyncContextManager[Claim]:
        """Up to `limit` scopes due at `now`, each with its latest version, held until exit."""
        ...

    async def due_now(self) -> int:
        """Every scope behind the hub is due at once (backoffs forgotten, parked excepted)."""
        ...

    async def acknowledged(
        self, after: Scope | None, limit: int
    ) -> list[tuple[str, str, str, int]]:
        """(regime, period, unit, acknowledged version) of up to `limit` scopes believed
        delivered, in scope order, after the scope `after` (a page of them)."""
        ...

    async def rewind(self, regime: str, period: str, unit: str, held: int) -> bool:
        """The hub holds only `held`: the scope is due again. False if nothing changed."""
        ...

    async def backlog(self) -> tuple[int, int]:
        """(scopes behind the hub, scopes parked)."""
        ...


class _PostgresClaim:
    def __init__(self, conn: Connection, due: Sequence[Due], committed: Callable[[], None]):
        self.due = due
        self._conn = conn
        self._committed = committed

    async def record(self, attempts: Sequence[Attempt], messages: Sequence[OutboxMessage]) -> None:
        async with self._conn.transaction():
            await store.record(self._conn, attempts)
            await outbox.write(self._conn, messages)
        self._committed()


class PostgresLedger:
    """`pool` and `committed` are read late: the pool exists once the service has started;
    `committed` tells the outbox relay there is something to publish."""

    def __init__(self, pool: Callable[[], Pool], committed: Callable[[], None]) -> None:
        self._pool = pool
        self._committed = committed

    @contextlib.asynccontextmanager
    async def claim(self, now: datetime, limit: int) -> AsyncIterator[Claim]:
        async with self._pool().acquire() as conn:
            due = await store.claim(conn, now, limit)
            try:
                yield _PostgresClaim(conn, due, self._committed)
            finally:
                try:
                    await store.release(conn, [d.scope for d in due])
                except Exception as error:
                    # A broken connection is closed by the pool, which ends its locks too.
                    log.warning("claim_release_failed", error=repr(error))

    async def due_now(self) -> int:
        async with self._pool().acquire() as conn:
            return await store.due_now(conn)

    async def acknowledged(
        self, after: Scope | None, limit: int
    ) -> list[tuple[str, str, str, int]]:
        async with self._pool().acquire() as conn:
            return await store.acknowledged(conn, after, limit)

    async def rewind(self, regime: str, period: str, unit: str, held: int) -> bool:
        async with self._pool().acquire() as conn:
            return await store.rewind(conn, regime, period, unit, held)

    async def backlog(self) -> tuple[int, int]:
        async with self._pool().acquire() as conn:
            return await store.backlog(conn)
