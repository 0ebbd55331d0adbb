"""All of aggregation's SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

from shared.contracts import AcceptedReport, AggregateSnapshot, Completeness
from shared.db import Connection

from .folds import Contribution, Figures, Version

RegimePeriod = tuple[str, str]


async def lock(conn: Connection, keys: Iterable[RegimePeriod]) -> None:
    """Serialise the transactions that change the same regime-periods, until commit.

    One instance owns a regime-period (its reports share a partition), but during a
    rebalance the previous owner may still be finishing a batch, and `recompute --publish`
    runs beside the service: without this, two transactions could fold the same old state
    or number two different snapshots alike. Locks are taken in one order (no deadlock);
    the schema is part of the key, so separate deployments on one server never wait on
    each other.
    """
    names = sorted({f"{regime}|{period}" for regime, period in keys})
    if not names:
        return
    await conn.execute(
        """
        SELECT pg_advisory_xact_lock(h) FROM (
            SELECT DISTINCT hashtext(current_schema() || '.aggregate|' || n) AS h
            FROM unnest($1::text[]) AS n ORDER BY h
        ) AS ordered
        """,
        names,
    )


async def generations(conn: Connection, keys: Iterable[RegimePeriod]) -> dict[RegimePeriod, int]:
    """The generation of each regime-period (absent: never written)."""
    regimes, periods = _pairs(keys)
    if not regimes:
        return {}
    rows = await conn.fetch(
        """
        SELECT g.regime, g.period, g.generation FROM generations g
        JOIN unnest($1::text[], $2::text[]) AS k(regime, period) USING (regime, period)
        """,
        regimes,
        periods,
    )
    return {(r["regime"], r["period"]): r["generation"] for r in rows}


async def advance_generations(
    conn: Connection, keys: Iterable[RegimePeriod]
) -> dict[RegimePeriod, int]:
    """Raise the generation of each regime-period written in this transaction."""
    regimes, periods = _pairs(keys)
    if not regimes:
        return {}
    rows = await conn.fetch(
        """
        INSERT INTO generations (regime, period, generation)
        SELECT regime, period, 1 FROM unnest($1::text[], $2::text[]) AS k(regime, period)
        ON CONFLICT (regime, period) DO UPDATE SET generation = generations.generation + 1
        RETURNING regime, period, generation
        """,
        regimes,
        periods,
    )
    return {(r["regime"], r["period"]): r["generation"] for r in rows}


async def applied_of(conn: Connection, report_ids: Iterable[str]) -> set[str]:
    """Which of these reports the inbox holds already."""
    rows = await conn.fetch(
        "SELECT report_id FROM applied WHERE report_id = ANY($1::text[])", list(report_ids)
    )
    return {r["report_id"] for r in rows}


async def mark_applied(conn: Connection, reports: Sequence[AcceptedReport]) -> set[str]:
    """Record the reports as applied; returns the ids not applied before."""
    if not reports:
        return set()
    rows = await conn.fetch(
        "INSERT INTO applied (report_id, revision) "
        "SELECT * FROM unnest($1::text[], $2::int[]) ON CONFLICT DO NOTHING RETURNING report_id",
        [r.report_id for r in reports],
        [r.revision for r in reports],
    )
    return {r["report_id"] for r in rows}


def _pairs(keys: Iterable[RegimePeriod]) -> tuple[list[str], list[str]]:
    keys = list(keys)
    return [k[0] for k in keys], [k[1] for k in keys]


async def contributions(
    conn: Connection, keys: Iterable[RegimePeriod]
) -> dict[RegimePeriod, dict[str, Contribution]]:
    regimes, periods = _pairs(keys)
    if not regimes:
        return {}
    rows = await conn.fetch(
        """
        SELECT c.* FROM contributions c
        JOIN unnest($1::text[], $2::text[]) AS k(regime, period) USING (regime, period)
        """,
        regimes,
        periods,
    )
    found: dict[RegimePeriod, dict[str, Contribution]] = {}
    for r in rows:
        found.setdefault((r["regime"], r["period"]), {})[r["unit"]] = Contribution(
            unit=r["unit"],
            revision=r["revision"],
            report_id=r["report_id"],
            values=_values(r["values"]),
            received_at=r["received_at"],
            first_revision=r["first_revision"],
            first_on_time=r["first_on_time"],
        )
    return found


def _values(raw: dict[str, Any]) -> dict[str, Any]:
    """JSON integers come back as int; every number is a Decimal in the fold."""
    return {
        k: Decimal(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in raw.items()
    }


async def save_contributions(
    conn: Connection, changed: Sequence[tuple[RegimePeriod, Contribution]]
) -> None:
    if not changed:
        return
    await conn.execute(
        """
        INSERT INTO contributions (regime, period, unit, revision, report_id, values,
                                   received_at, first_revision, first_on_time)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[],
                             $6::jsonb[], $7::timestamptz[], $8::int[], $9::boolean[])
        ON CONFLICT (regime, period, unit) DO UPDATE SET
            revision = excluded.revision, report_id = excluded.report_id,
            values = excluded.values, received_at = excluded.received_at,
            first_revision = excluded.first_revision, first_on_time = excluded.first_on_time
        """,
        [k[0] for k, _ in changed],
        [k[1] for k, _ in changed],
        [c.unit for _, c in changed],
        [c.revision for _, c in changed],
        [c.report_id for _, c in changed],
        [dict(c.values) for _, c in changed],
        [c.received_at for _, c in changed],
        [c.first_revision for _, c in changed],
        [c.first_on_time for _, c in changed],
    )


async def stored_snapshots(
    conn: Connection, keys: Iterable[RegimePeriod]
) -> dict[RegimePeriod, dict[str, Version]]:
    """The latest version of every scope of the regime-periods, by regime-period and scope."""
    regimes, periods = _pairs(keys)
    if not regimes:
        return {}
    rows = await conn.fetch(
        """
        SELECT s.* FROM snapshots s
        JOIN unnest($1::text[], $2::text[]) AS k(regime, period) USING (regime, period)
        """,
        regimes,
        periods,
    )
    found: dict[RegimePeriod, dict[str, Version]] = {}
    for r in rows:
        found.setdefault((r["regime"], r["period"]), {})[r["unit"]] = Version(
            r["version"],
            Figures(
                r["regime_version"],
                _values(r["values"]),
                Completeness.model_validate(r["completeness"]),
            ),
        )
    return found


async def completeness_at(
    conn: Connection, scope: str, keys: Iterable[RegimePeriod]
) -> dict[RegimePeriod, Completeness]:
    """The completeness in the latest snapshot of one scope, per regime and period."""
    regimes, periods = _pairs(keys)
    rows = await conn.fetch(
        """
        SELECT s.regime, s.period, s.completeness FROM snapshots s
        JOIN unnest($1::text[], $2::text[]) AS k(regime, period) USING (regime, period)
        WHERE s.unit = $3
        """,
        regimes,
        periods,
        scope,
    )
    return {
        (r["regime"], r["period"]): Completeness.model_validate(r["completeness"]) for r in rows
    }


async def save_snapshots(conn: Connection, snapshots: Sequence[AggregateSnapshot]) -> None:
    if not snapshots:
        return
    await conn.execute(
        """
        INSERT INTO snapshots (regime, period, unit, version, regime_version, values,
                               completeness, computed_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::int[],
                             $6::jsonb[], $7::jsonb[], $8::timestamptz[])
        ON CONFLICT (regime, period, unit) DO UPDATE SET
            version = excluded.version, regime_version = excluded.regime_version,
            values = excluded.values, completeness = excluded.completeness,
            computed_at = excluded.computed_at
        """,
        [s.regime for s in snapshots],
        [s.period for s in snapshots],
        [s.unit for s in snapshots],
        [s.version for s in snapshots],
        [s.regime_version for s in snapshots],
        [dict(s.values) for s in snapshots],
        [s.completeness.model_dump(mode="python") for s in snapshots],
        [s.computed_at for s in snapshots],
    )


async def all_contributions(conn: Connection, regime: str, period: str) -> dict[str, Contribution]:
    found = await contributions(conn, [(regime, period)])
    return found.get((regime, period), {})
