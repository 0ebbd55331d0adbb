"""Applying a batch of accepted reports: inbox, fold, snapshots and outbox in one transaction.

Accepted reports are keyed by regime|period, so one instance owns every scope of the
regime-periods it receives and versions rise in order; a lock per regime-period keeps that
true while a rebalance hands a partition over. In one PostgreSQL transaction per batch:
the reports not applied before are recorded in the inbox (`applied`, by report id), folded
into the stored contributions, and every scope whose content changed gets a new version,
written to `snapshots` and to the outbox. Kafka offsets are committed only after that
transaction (by the batch consumer), and the outbox is relayed after it, so a crash
between any two steps neither loses an update (the batch is redelivered) nor counts one
twice (the inbox and the fold ignore what is already counted).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType

from pydantic import ValidationError

from shared import codec, outbox
from shared.batches import Record
from shared.contracts import (
    ACCEPTED,
    AGGREGATES,
    NEWEST_RECEIPT_HEADER,
    AcceptedReport,
    AggregateSnapshot,
    scope_key,
)
from shared.db import Connection
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.runtime import Runtime

from . import store
from .folds import Contribution, Frame, fold, frame_for, versions
from .store import RegimePeriod

log = get_logger(__name__)

Fresh = dict[RegimePeriod, list[AcceptedReport]]


class RollupStage:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._frames: dict[RegimePeriod, Frame | None] = {}
        runtime.metrics.prepare_rollup(runtime.catalog.regime_codes)

    def frame(self, key: RegimePeriod) -> Frame | None:
        if key not in self._frames:
            self._frames[key] = frame_for(self._rt.catalog, *key)
        return self._frames[key]

    async def apply(self, records: Sequence[Record]) -> None:
        reports: list[AcceptedReport] = []
        messages: list[OutboxMessage] = []
        for record in records:
            try:
                reports.append(codec.decode(AcceptedReport, record.value or b""))
            except (ValueError, ValidationError) as error:
                dlq = self._rt.settings.kafka.dlq(ACCEPTED)
                messages.append(outbox.dead_letter(record, dlq, "aggregate", str(error)))
        dead = len(messages)
        now = self._rt.clock.now()
        async with self._rt.pool.acquire() as conn, conn.transaction():
            fresh, emitted = await self.roll_up(conn, reports, now)
            messages += [self._message(s, fresh) for s in emitted]
            await outbox.write(conn, messages)
        if messages:
            self._rt.relay.notify()
        self._count(dead, fresh, emitted, now)

    async def roll_up(
        self, conn: Connection, reports: Sequence[AcceptedReport], now: datetime
    ) -> tuple[Fresh, list[AggregateSnapshot]]:
        """Inbox, fold and new versions, inside the caller's transaction (set-based SQL)."""
        await store.lock(conn, {(r.regime, r.period) for r in reports})
        fresh_ids = await store.mark_applied(conn, reports)
        fresh: Fresh = defaultdict(list)
        for report in reports:
            if report.report_id in fresh_ids:
                fresh[(report.regime, report.period)].append(report)
        before = await store.contributions(conn, fresh)
        changed: list[tuple[RegimePeriod, Contribution]] = []
        states = {}
        for key, batch in fresh.items():
            old = MappingProxyType(before.get(key, {}))
            new = fold(batch, old)
            moved = [c for unit, c in new.items() if old.get(unit) != c]
            if moved:
                changed += [(key, c) for c in moved]
                states[key] = new
        latest = await store.stored_snapshots(conn, states)
        emitted: list[AggregateSnapshot] = []
        for key, state in states.items():
            frame = self.frame(key)
            if frame is None:
                # Validation accepts only periods with a regime version in force (E107).
                log.error("no_frame_for_accepted_report", regime=key[0], period=key[1])
                continue
            emitted += versions(frame, key[1], state, latest.get(key, {}), now)
        await store.save_contributions(conn, changed)
        await store.save_snapshots(conn, emitted)
        return fresh, emitted

    def _message(self, snapshot: AggregateSnapshot, fresh: Fresh) -> OutboxMessage:
        newest = max(r.received_at for r in fresh[(snapshot.regime, snapshot.period)])
        return OutboxMessage(
            self._rt.topic(AGGREGATES),
            scope_key(snapshot.regime, snapshot.period, snapshot.unit),
            codec.dumps(snapshot),
            {NEWEST_RECEIPT_HEADER: newest.isoformat()},
        )

    def _count(
        self, dead: int, fresh: Fresh, emitted: list[AggregateSnapshot], now: datetime
    ) -> None:
        """Counted after the commit, so a batch retried after a failure counts once."""
        metrics = self._rt.metrics
        if dead:
            metrics.dlq_messages.labels(topic=ACCEPTED.name).inc(dead)
        for snapshot in emitted:
            metrics.snapshots_emitted.labels(regime=snapshot.regime).inc()
        for regime, period in {(s.regime, s.period) for s in emitted}:
            for report in fresh[(regime, period)]:
                delay = (now - report.received_at).total_seconds()
                metrics.receipt_to_snapshot.labels(regime=regime).observe(max(0.0, delay))
