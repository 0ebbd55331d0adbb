"""The bench's reading of PostgreSQL's time by statement, against the real server (which
the local set-up starts with pg_stat_statements loaded)."""

from __future__ import annotations

import asyncpg

from bench import statements


async def test_the_statements_run_after_the_reset_are_counted_with_their_rows(
    postgres_dsn: str,
) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.fetchval("SELECT count(*) FROM generate_series(1, 10) AS before_reset")
        assert await statements.reset(postgres_dsn)
        for _ in range(3):
            await conn.fetchval("SELECT count(*) FROM generate_series(1, $1::int) AS counted", 100)
    finally:
        await conn.close()
    found = await statements.top(postgres_dsn, limit=100)
    counted = [s for s in found if "AS counted" in s["statement"]]
    assert [(s["calls"], s["rows"]) for s in counted] == [(3, 3)]
    assert not [s for s in found if "before_reset" in s["statement"]]
    assert all(0 <= s["share"] <= 1 for s in found)
