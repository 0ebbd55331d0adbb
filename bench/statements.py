"""PostgreSQL's time by statement during the flat-out phase (`pg_stat_statements`).

py-spy shows where the services spend their CPU, not what the server does for them: the
server took about a sixth of all the CPU a report in full runs. When the server has the
extension loaded (`shared_preload_libraries`, as the local server started by
`scripts/run` has), the bench empties its counters before the phase and reads them after.
Times are the server's wall time in each statement: on a busy machine they include waits
for a core, so their shares say more than their values.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg

TOP = 12
_SPACES = re.compile(r"\s+")


async def reset(dsn: str) -> bool:
    """Empty the counters; False (and nothing done) when the extension cannot be used."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    except asyncpg.PostgresError:
        return False  # not preloaded, or not ours to create
    finally:
        await conn.close()
    return True


async def top(dsn: str, limit: int = TOP) -> list[dict[str, Any]]:
    """The statements that took the most time since `reset`, in this database."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT query, calls, rows, total_exec_time,
                   total_exec_time / nullif(sum(total_exec_time) OVER (), 0) AS share
            FROM pg_stat_statements
            WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ORDER BY total_exec_time DESC
            LIMIT $1
            """,
            limit,
        )
    finally:
        await conn.close()
    return [
        {
            "statement": _SPACES.sub(" ", r["query"]).strip(),
            "calls": r["calls"],
            "rows": r["rows"],
            "total_ms": round(r["total_exec_time"]),
            "us_per_row": round(r["total_exec_time"] * 1000 / r["rows"], 1) if r["rows"] else None,
            "share": round(r["share"] or 0.0, 3),
        }
        for r in rows
    ]
