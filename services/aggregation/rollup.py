"""Applying a batch of accepted reports: inbox, fold, snapshots and outbox in one transaction.

Accepted reports are keyed by regime|period, so one instance owns every scope of the
regime-periods it receives and versions rise in order; a lock per regime-period keeps that
true while a rebalance hands a partition over. In one PostgreSQL transaction per batch:
the reports not applied before are recorded in the inbox (`applied`, by report id), folded
into the contributions, and every scope whose content changed gets a new version, written
to `snapshots` and to the outbox. Kafka offsets are committed only after that transaction
(by the batch consumer), and the outbox is relayed after it, so a crash between any two
steps neither loses an update (the batch is redelivered) nor counts one twice (the inbox
and the fold ignore what is already counted).

The state of a regime-period (its contributions and latest snapshots) is kept in memory
between batches rather than read again each time. It is trusted only while the
regime-period's generation, raised in every transaction that writes it, is still the one
this instance committed: another instance that held the partition during a rebalance, a
`recompute --publish`, or a transaction that failed all leave it stale, and it is then
read again from the tables. It is installed only after the commit, so it never holds what
a rolled-back transaction computed.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    report_id_of,
    scope_key,
)
from shared.db import Connection
from shared.logging import get_logger
from shared.observability.log_context import report_fields
from shared.outbox import OutboxMessage
from shared.pacing import paced
from shared.runtime import Runtime

from . import store
from .folds import Contribution, Figures, Frame, State, Version, fold, frame_for, versions
from .store import RegimePeriod

log = get_logger(__name__)

Fresh = dict[RegimePeriod, list[AcceptedReport]]

# Contributions kept in memory across regime-periods; beyond, the least recently used
# regime-periods are dropped (and read again from the tables when they come back).
HELD_CONTRIBUTIONS = 50_000


@dataclass(frozen=True, slots=True)
class Held:
    """A regime-period's state as of the generation this instance committed."""

    generation: int
    state: State
    latest: Mapping[str, Version]


@dataclass
class Rolled:
    """What one transaction of `roll_up` did, and the state to keep once it commits."""

    fresh: Fresh
    emitted: list[AggregateSnapshot]
    held: dict[RegimePeriod, Held] = field(default_factory=dict)


class RollupStage:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._frames: dict[RegimePeriod, Frame | None] = {}
        self._held: OrderedDict[RegimePeriod, Held] = OrderedDict()
        runtime.metrics.prepare_rollup(runtime.catalog.regime_codes)

    def frame(self, key: RegimePeriod) -> Frame | None:
        if key not in self._frames:
            self._frames[key] = frame_for(self._rt.catalog, *key)
        return self._frames[key]

    async def apply(self, records: Sequence[Record]) -> None:
        reports: list[AcceptedReport] = []
        messages: list[OutboxMessage] = []
        now = self._rt.clock.now()
        async with self._rt.pool.acquire() as conn, conn.transaction():
            named = [report_id_of(record.value or b"") for record in records]
            applied = await store.applied_of(conn, {n for n in named if n is not None})
            async for record, name in paced(zip(records, named, strict=True)):
                if name is not None and name in applied:
                    continue  # counted before (a redelivery, a replay): not even decoded
                try:
                    reports.append(codec.decode_internal(AcceptedReport, record.value or b""))
                except (ValueError, ValidationError) as error:
                    dlq = self._rt.settings.kafka.dlq(ACCEPTED)
                    messages.append(outbox.dead_letter(record, dlq, "aggregate", str(error)))
            dead = len(messages)
            rolled = await self.roll_up(conn, reports, now)
            messages += [self._message(s, rolled.fresh) for s in rolled.emitted]
            await outbox.write(conn, messages)
        self._keep(rolled.held)
        if messages:
            self._rt.relay.notify()
        self._count(dead, rolled.fresh, rolled.emitted, now)

    def _keep(self, held: Mapping[RegimePeriod, Held]) -> None:
        """Install the committed states, the most recent last; forget the oldest beyond
        HELD_CONTRIBUTIONS."""
        for key, entry in held.items():
            self._held.pop(key, None)
            self._held[key] = entry
        total = sum(len(h.state) for h in self._held.values())
        while total > HELD_CONTRIBUTIONS and len(self._held) > 1:
            _, dropped = self._held.popitem(last=False)
            total -= len(dropped.state)

    async def roll_up(
        self, conn: Connection, reports: Sequence[AcceptedReport], now: datetime
    ) -> Rolled:
        """Inbox, fold and new versions, inside the caller's transaction (set-based SQL).
        The states it returns in `held` may be kept once that transaction has committed."""
        await store.lock(conn, {(r.regime, r.period) for r in reports})
        fresh_ids = await store.mark_applied(conn, reports)
        fresh: Fresh = defaultdict(list)
        for report in reports:
            if report.report_id in fresh_ids:
                fresh[(report.regime, report.period)].append(report)
        rolled = Rolled(fresh, [])
        if not fresh:
            return rolled
        current = await store.generations(conn, fresh)
        known: dict[RegimePeriod, Held] = {}
        for key in fresh:
            held = self._held.get(key)
            if held is not None and held.generation == current.get(key, 0):
                known[key] = held
        unknown = [key for key in fresh if key not in known]
        stored = await store.contributions(conn, unknown)
        stored_latest = await store.stored_snapshots(conn, unknown)
        for key in unknown:
            known[key] = Held(
                current.get(key, 0),
                MappingProxyType(stored.get(key, {})),
                stored_latest.get(key, {}),
            )
        changed: list[tuple[RegimePeriod, Contribution]] = []
        states: dict[RegimePeriod, State] = {}
        for key, batch in fresh.items():
            old = known[key].state
            new = fold(batch, old)
            moved = [c for unit, c in new.items() if old.get(unit) != c]
            if moved:
                changed += [(key, c) for c in moved]
                states[key] = new
        latest: dict[RegimePeriod, dict[str, Version]] = {}
        for key, state in states.items():
            frame = self.frame(key)
            latest[key] = dict(known[key].latest)
            if frame is None:
                # Validation accepts only periods with a regime version in force (E107).
                for report in fresh[key]:
                    log.error("no_frame_for_accepted_report", **report_fields(report))
                continue
            emitted = versions(frame, key[1], state, known[key].latest, now)
            for snapshot in emitted:
                figures = Figures(snapshot.regime_version, snapshot.values, snapshot.completeness)
                latest[key][snapshot.unit] = Version(snapshot.version, figures)
            rolled.emitted += emitted
        await store.save_contributions(conn, changed)
        await store.save_snapshots(conn, rolled.emitted)
        advanced = await store.advance_generations(conn, states)
        for key, entry in known.items():
            if key in states:
                entry = Held(advanced[key], states[key], latest[key])
            rolled.held[key] = entry
        return rolled

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
        for regime, n in Counter(s.regime for s in emitted).items():
            metrics.snapshots_emitted.labels(regime=regime).inc(n)
        for regime, period in {(s.regime, s.period) for s in emitted}:
            # One observation a report, but one label look-up a regime and period.
            latency = metrics.receipt_to_snapshot.labels(regime=regime)
            for report in fresh[(regime, period)]:
                latency.observe(max(0.0, (now - report.received_at).total_seconds()))
