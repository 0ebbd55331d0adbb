"""PostgreSQL access: one pool per service, pinned to the service's own schema.

Each service owns one schema and never reads another's (topics are the only coupling).
Migrations are plain SQL files (`NNN_name.sql`) in the service's `migrations/` folder,
applied in order at start, each once, under an advisory lock so that instances starting
together do not race.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeAlias

import asyncpg
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.codec import dumps, loads_internal
from shared.logging import get_logger
from shared.settings import PostgresSettings

log = get_logger(__name__)

Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"
# What `pool.acquire()` yields and what a plain `asyncpg.connect` returns.
Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    # jsonb columns travel as text through our codec, which keeps decimals exact.
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: dumps(v).decode(), decoder=loads_internal, schema="pg_catalog"
    )


async def create_pool(postgres: PostgresSettings, schema: str, *, deadline_s: float = 60.0) -> Pool:
    """Connect (retrying while the server starts), create the schema, pin the search path."""
    dsn = postgres.dsn.get_secret_value()
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((OSError, asyncpg.CannotConnectNowError)),
        wait=wait_exponential(multiplier=0.2, max=3),
        stop=stop_after_delay(deadline_s),
        reraise=True,
    ):
        with attempt:
            conn = await asyncpg.connect(dsn, timeout=postgres.command_timeout_s)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            except asyncpg.UniqueViolationError:
                pass  # another instance created it at the same moment
            finally:
                await conn.close()
    return await asyncpg.create_pool(
        dsn,
        min_size=postgres.pool_min_size,
        max_size=postgres.pool_max_size,
        server_settings={"search_path": schema, "application_name": f"baocao-{schema}"},
        init=_init_connection,
        command_timeout=postgres.command_timeout_s,
        timeout=postgres.command_timeout_s,
    )


SHARED_MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate(pool: Pool, directory: Path) -> list[str]:
    """Apply the shared SQL files (the outbox) and those of `directory` not applied yet."""
    applied: list[str] = []
    # Startup only, a handful of small files: blocking reads are harmless here.
    files = sorted(
        [*SHARED_MIGRATIONS.glob("*.sql"), *directory.glob("*.sql")],  # noqa: ASYNC240
        key=lambda p: p.name,
    )
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.migrations'))"
        )
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for path in files:
            if path.name in done:
                continue
            await conn.execute(path.read_text(encoding="utf-8"))
            await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied.append(path.name)
    if applied:
        log.info("migrations_applied", migrations=applied)
    return applied
