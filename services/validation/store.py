"""All of validation's SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from shared.contracts import LockException
from shared.db import Connection

from .rules import Judged, LockWindow

NaturalKey = tuple[str, str, str]  # regime, period, unit


async def decided(conn: Connection, report_ids: Iterable[str]) -> set[str]:
    rows = await conn.fetch(
        "SELECT report_id FROM verdicts WHERE report_id = ANY($1::text[])", list(report_ids)
    )
    return {r["report_id"] for r in rows}


async def latest_revisions(conn: Connection, keys: Iterable[NaturalKey]) -> dict[NaturalKey, int]:
    keys = list(keys)
    rows = await conn.fetch(
        """
        SELECT l.regime, l.period, l.unit, l.revision
        FROM latest_accepted l
        JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(regime, period, unit)
          USING (regime, period, unit)
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    return {(r["regime"], r["period"], r["unit"]): r["revision"] for r in rows}


async def lock_windows(
    conn: Connection, keys: Iterable[NaturalKey]
) -> dict[NaturalKey, list[LockWindow]]:
    """Every lock exception opened for each key, as (opened_at, expires_at) windows."""
    keys = list(keys)
    rows = await conn.fetch(
        """
        SELECT e.regime, e.period, e.unit, e.opened_at, e.expires_at
        FROM lock_exceptions e
        JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(regime, period, unit)
          USING (regime, period, unit)
        ORDER BY e.opened_at
        """,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
    )
    windows: dict[NaturalKey, list[LockWindow]] = {}
    for r in rows:
        key = (r["regime"], r["period"], r["unit"])
        windows.setdefault(key, []).append(LockWindow(r["opened_at"], r["expires_at"]))
    return windows


async def save(
    conn: Connection,
    verdicts: Sequence[Judged],
    encoded: Sequence[bytes],
    decided_at: datetime,
    accepted: dict[NaturalKey, tuple[int, str]],
    exceptions: Sequence[LockException],
) -> None:
    """`encoded`: each verdict's Outcome as published, stored as it is (not encoded again)."""
    if verdicts:
        await conn.execute(
            """
            INSERT INTO verdicts
                (report_id, regime, period, unit, revision, status, outcome, decided_at)
            SELECT r, g, p, u, v, s, o, $8
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],
                        $7::bytea[]) AS t(r, g, p, u, v, s, o)
            ON CONFLICT (report_id) DO NOTHING
            """,
            [j.report.report_id for j in verdicts],
            [j.report.regime for j in verdicts],
            [j.report.period for j in verdicts],
            [j.report.unit for j in verdicts],
            [j.report.revision for j in verdicts],
            [j.verdict.status.value for j in verdicts],
            encoded,
            decided_at,
        )
    if accepted:
        keys = list(accepted)
        await conn.execute(
            """
            INSERT INTO latest_accepted (regime, period, unit, revision, report_id)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[])
            ON CONFLICT (regime, period, unit) DO UPDATE
                SET revision = excluded.revision, report_id = excluded.report_id
                WHERE latest_accepted.revision < excluded.revision
            """,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [accepted[k][0] for k in keys],
            [accepted[k][1] for k in keys],
        )
    if exceptions:
        await conn.executemany(
            """
            INSERT INTO lock_exceptions
                (regime, period, unit, expires_at, reason, opened_by, opened_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT DO NOTHING
            """,
            [
                (e.regime, e.period, e.unit, e.expires_at, e.reason, e.opened_by, e.opened_at)
                for e in exceptions
            ],
        )
