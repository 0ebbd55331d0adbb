"""`recompute`: the snapshots of a regime and period folded again from the stored
contributions and compared with the stored snapshots, one JSON line per scope.

    python -m services.aggregation recompute --regime KSTT-TTHC --period 2025-Q1 [--unit TB.DH]
        [--publish [--actor NAME]]

Exit status 0 when every scope matches, 1 when one differs, 2 when the catalog has no such
regime version, period or scope. With `--publish`, a scope that differs (after a catalog
correction, say) gets the recomputed snapshot as its next version, written to the outbox
in the same transaction, under the same lock as the live roll-up; the running service's
relay publishes it. Exit status 0 then means every difference was published. Each
`--publish` run is written to the audit log in that transaction: who ran it (`--actor`,
by default the login that ran the command), when, and each scope's version published
(none when nothing differed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime
from typing import TextIO

from shared import audit, codec, outbox
from shared.audit import AuditEntry, login_name
from shared.catalog import Catalog, load_catalog
from shared.contracts import AGGREGATES, AggregateSnapshot, scope_key
from shared.db import Connection, Pool, create_pool, migrate
from shared.outbox import OutboxMessage

from . import store
from .app import MIGRATIONS
from .folds import frame_for, snapshot, versions
from .settings import AggregationSettings


async def recompute(
    settings: AggregationSettings,
    regime: str,
    period: str,
    *,
    unit: str | None = None,
    publish: bool = False,
    actor: str | None = None,
    out: TextIO = sys.stdout,
    catalog: Catalog | None = None,
    pool: Pool | None = None,
) -> int:
    """Compare (and with `publish`, repair, recorded as done by `actor`, by default the
    login running this); `catalog` and `pool` are reused when given."""
    frame = frame_for(catalog or load_catalog(settings.catalog_dir), regime, period)
    if frame is None:
        sys.stderr.write(f"no version of {regime} is in force for {period}\n")
        return 2
    if unit is not None and unit not in frame.reporters:
        sys.stderr.write(f"{unit} is not an aggregate scope of {regime} {period}\n")
        return 2
    scopes = frame.scopes if unit is None else (unit,)
    own_pool = pool is None
    if pool is None:
        pool = await create_pool(settings.postgres, settings.postgres.schema_name("aggregation"))
    try:
        if own_pool and publish:
            # The audit log may be newer than the running service's schema.
            await migrate(pool, MIGRATIONS)
        # One transaction under the roll-up's lock: contributions and snapshots are read
        # as of one commit, never halfway through a batch the service is applying.
        async with pool.acquire() as conn, conn.transaction():
            await store.lock(conn, [(regime, period)])
            state = await store.all_contributions(conn, regime, period)
            latest = (await store.stored_snapshots(conn, [(regime, period)])).get(
                (regime, period), {}
            )
            now = settings.clock().now()
            fresh = versions(frame, period, state, latest, now, scopes)
            if not state and not latest:
                fresh = []  # nothing counted, nothing published: nothing to compare
            if publish:
                await _publish(conn, settings, regime, period, fresh)
                entry = _republished(regime, period, unit, fresh, actor or login_name(), now)
                await audit.record(conn, entry)
    finally:
        if own_pool:
            await pool.close()
    published = {s.unit: s.version for s in fresh} if publish else {}
    for scope in scopes:
        figures = snapshot(state, frame, scope)
        kept = latest.get(scope)
        line = {
            "unit": scope,
            "matches_stored": kept.figures == figures if kept else not state,
            "stored_version": kept.number if kept else None,
            "published_version": published.get(scope),
            "values": figures.values,
            "completeness": figures.completeness.model_dump(),
        }
        out.write(codec.dumps(line).decode() + "\n")
    return 1 if fresh and not publish else 0


async def _publish(
    conn: Connection,
    settings: AggregationSettings,
    regime: str,
    period: str,
    fresh: list[AggregateSnapshot],
) -> None:
    if not fresh:
        return
    await store.save_snapshots(conn, fresh)
    # A running service holding this regime-period in memory reads it again.
    await store.advance_generations(conn, [(regime, period)])
    topic = settings.kafka.topic(AGGREGATES)
    await outbox.write(
        conn,
        [OutboxMessage(topic, scope_key(regime, period, s.unit), codec.dumps(s)) for s in fresh],
    )


def _republished(
    regime: str,
    period: str,
    unit: str | None,
    fresh: list[AggregateSnapshot],
    actor: str,
    at: datetime,
) -> AuditEntry:
    published = [{"unit": s.unit, "version": s.version} for s in fresh]
    details = {"regime": regime, "period": period, "unit": unit, "published": published}
    return AuditEntry(at, actor, "aggregates.republish", f"aggregates:{regime}|{period}", details)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.aggregation recompute",
        description="Fold a regime and period again from the stored contributions and "
        "compare with the stored snapshots.",
    )
    parser.add_argument("--regime", required=True, help="regime code, e.g. KSTT-TTHC")
    parser.add_argument("--period", required=True, help="period code, e.g. 2025-Q1")
    parser.add_argument("--unit", help="one aggregate scope (default: every scope)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="publish the recomputed snapshot as the next version of every scope that differs",
    )
    parser.add_argument(
        "--actor",
        default=None,
        help="who the audit log records as having published (default: the login running this)",
    )
    args = parser.parse_args(argv)
    return asyncio.run(
        recompute(
            AggregationSettings(),
            args.regime,
            args.period,
            unit=args.unit,
            publish=args.publish,
            actor=args.actor,
        )
    )
