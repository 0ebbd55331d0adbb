"""Applying a batch of accepted reports: inbox, fold, snapshots and outbox in one transaction.

Accepted reports are keyed by regime|period, so this instance owns every scope of the
regime-periods it receives: no other instance writes those snapshots, and versions rise
in order. A snapshot gets a new version only when its content changed, and is published
through the outbox: a crash anywhere neither loses an update nor counts one twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
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
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.runtime import Runtime

from . import store
from .folds import Contribution, Frame, fold, frame_for, snapshots
from .store import RegimePeriod

log = get_logger(__name__)


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
                self._rt.metrics.dlq_messages.labels(topic=ACCEPTED.name).inc()
        now = self._rt.clock.now()
        emitted: list[AggregateSnapshot] = []
        async with self._rt.pool.acquire() as conn, conn.transaction():
            fresh_ids = await store.mark_applied(conn, reports)
            grouped: dict[RegimePeriod, list[AcceptedReport]] = defaultdict(list)
            for report in reports:
                if report.report_id in fresh_ids:
                    grouped[(report.regime, report.period)].append(report)
            before = await store.contributions(conn, grouped)
            changed: list[tuple[RegimePeriod, Contribution]] = []
            states = {}
            for key, batch in grouped.items():
                old = MappingProxyType(before.get(key, {}))
                new = fold(batch, old)
                moved = [c for unit, c in new.items() if old.get(unit) != c]
                if moved:
                    changed += [(key, c) for c in moved]
                    states[key] = new
            stored = await store.stored_snapshots(conn, states)
            for key, state in states.items():
                frame = self.frame(key)
                if frame is None:
                    log.error("no_frame_for_accepted_report", regime=key[0], period=key[1])
                    continue
                for scope, figures in snapshots(state, frame).items():
                    previous = stored.get((*key, scope))
                    if previous is not None and previous.figures == figures:
                        continue
                    emitted.append(
                        AggregateSnapshot(
                            regime=key[0],
                            regime_version=figures.regime_version,
                            period=key[1],
                            unit=scope,
                            version=(previous.version if previous else 0) + 1,
                            values=dict(figures.values),
                            completeness=figures.completeness,
                            computed_at=now,
                        )
                    )
            await store.save_contributions(conn, changed)
            await store.save_snapshots(conn, emitted)
            topic = self._rt.topic(AGGREGATES)
            newest = {k: max(r.received_at for r in rs).isoformat() for k, rs in grouped.items()}
            messages += [
                OutboxMessage(
                    topic,
                    scope_key(s.regime, s.period, s.unit),
                    codec.dumps(s),
                    {NEWEST_RECEIPT_HEADER: newest[(s.regime, s.period)]},
                )
                for s in emitted
            ]
            await outbox.write(conn, messages)
        self._rt.relay.notify()
        self._count(grouped, emitted)

    def _count(
        self, grouped: dict[RegimePeriod, list[AcceptedReport]], emitted: list[AggregateSnapshot]
    ) -> None:
        metrics = self._rt.metrics
        for snapshot in emitted:
            metrics.snapshots_emitted.labels(regime=snapshot.regime).inc()
        counted = {s.regime for s in emitted}
        for (regime, _), reports in grouped.items():
            if regime not in counted:
                continue
            for report in reports:
                delay = (emitted[0].computed_at - report.received_at).total_seconds()
                metrics.receipt_to_snapshot.labels(regime=regime).observe(max(0.0, delay))
