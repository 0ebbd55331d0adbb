"""Judging a batch of received reports and recording every verdict, exactly once.

Reports of one (regime, period) arrive on one partition in the order submission stored
them, interleaved with operators' lock exceptions for that period, so a batch is judged
in offset order against state loaded once per batch and updated as it goes (revision 2
after revision 1 in the same batch is judged against revision 1). Verdicts and the latest
accepted revisions are written in one transaction; a report id already judged is a
redelivery and is skipped.

The batch's messages (each verdict on reports.outcomes.v1, each accepted report on
reports.accepted.v1, dead letters) are published while its rows are written, before that
transaction commits, and the broker has acknowledged them all when it does: a verdict
stored is a verdict published, with no outbox. If the transaction fails or the process dies
after the publication, the verdicts roll back and the batch comes again: it is judged again
from the same state, the same records and their own `received_at`, so the same verdicts are
published again, and their consumers take them as the duplicates they are (aggregation by
report id and revision, submission by report id). Input from Kafka makes this possible: a
batch not committed is always read again. An outbox cost the database a row written and
deleted for each message, and was most of its work in this stage.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from shared import codec, outbox
from shared.batches import Record
from shared.contracts import (
    ACCEPTED,
    OUTCOMES,
    RECEIVED,
    AcceptedReport,
    LockException,
    Outcome,
    ReceivedReport,
    Status,
    Timeliness,
    regime_period_key,
    report_id_of,
)
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.pacing import paced
from shared.runtime import Runtime

from . import store
from .rules import Facts, Judged, LockWindow, RuleBook, Verdict, validate
from .store import NaturalKey

log = get_logger(__name__)


@dataclass
class _Batch:
    """What one batch decided, to be written in one transaction."""

    verdicts: list[Judged] = field(default_factory=list)
    encoded: list[bytes] = field(default_factory=list)  # each verdict's Outcome as published
    accepted: dict[NaturalKey, tuple[int, str]] = field(default_factory=dict)
    exceptions: list[LockException] = field(default_factory=list)
    messages: list[OutboxMessage] = field(default_factory=list)
    dead_letters: int = 0


def _parse(record: Record) -> ReceivedReport | LockException:
    document = codec.loads_internal(record.value or b"")
    if isinstance(document, dict) and document.get("schema") == "baocao.lock_exception.v1":
        return LockException.model_validate(document)
    return ReceivedReport.model_validate(document)


class VerdictStage:
    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._book = RuleBook(runtime.catalog)
        self._regimes = set(runtime.catalog.regime_codes)
        runtime.metrics.prepare_verdicts(runtime.catalog.regime_codes)

    async def judge(self, records: Sequence[Record]) -> None:
        batch = _Batch()
        items: list[ReceivedReport | LockException] = []
        async with self._rt.pool.acquire() as conn, conn.transaction():
            named = [report_id_of(record.value or b"") for record in records]
            seen = await store.decided(conn, {n for n in named if n is not None})
            async for record, name in paced(zip(records, named, strict=True)):
                if name is not None and name in seen:
                    continue  # judged before (a redelivery, a replay): not even decoded
                try:
                    items.append(_parse(record))
                except (ValueError, ValidationError) as error:
                    dlq = self._rt.settings.kafka.dlq(RECEIVED)
                    batch.messages.append(outbox.dead_letter(record, dlq, "validate", str(error)))
                    batch.dead_letters += 1
            keys = {_key(i) for i in items}
            latest = await store.latest_revisions(conn, keys)
            windows = await store.lock_windows(conn, keys)
            async for item in paced(items):
                if isinstance(item, LockException):
                    batch.exceptions.append(item)
                    window = LockWindow(item.opened_at, item.expires_at)
                    windows.setdefault(_key(item), []).append(window)
                elif item.report.report_id not in seen:
                    seen.add(item.report.report_id)
                    self._judge(item, latest, windows, batch)
            # The database writes while the broker acknowledges: both finish (neither is
            # cancelled mid-way on the other's failure) before the commit, or the rollback.
            saved, published = await asyncio.gather(
                store.save(
                    conn,
                    batch.verdicts,
                    batch.encoded,
                    self._rt.clock.now(),
                    batch.accepted,
                    batch.exceptions,
                ),
                self._rt.publish(batch.messages),
                return_exceptions=True,
            )
            for failure in (published, saved):  # the broker's first: a TransientError
                if isinstance(failure, BaseException):
                    raise failure
        self._count(batch)

    def _judge(
        self,
        received: ReceivedReport,
        latest: dict[NaturalKey, int],
        windows: dict[NaturalKey, list[LockWindow]],
        batch: _Batch,
    ) -> None:
        report, key = received.report, _key(received)
        facts = Facts(latest.get(key), tuple(windows.get(key, ())))
        verdict = validate(report, received.received_at, self._book, facts)
        encoded = _outcome(received, verdict)
        batch.verdicts.append(Judged(report, verdict))
        batch.encoded.append(encoded)
        batch.messages.append(
            OutboxMessage(self._rt.topic(OUTCOMES), report.unit.encode(), encoded)
        )
        if verdict.status is Status.ACCEPTED:
            assert verdict.regime is not None
            assert verdict.timeliness is not None
            latest[key] = report.revision
            batch.accepted[key] = (report.revision, report.report_id)
            # Written from the validated report and verdict: nothing to validate again.
            accepted = codec.dumps_fields(
                AcceptedReport,
                report_id=report.report_id,
                regime=report.regime,
                regime_version=verdict.regime.version,
                period=report.period,
                unit=report.unit,
                revision=report.revision,
                values=report.values,
                received_at=received.received_at,
                timeliness=verdict.timeliness,
            )
            batch.messages.append(
                OutboxMessage(
                    self._rt.topic(ACCEPTED),
                    regime_period_key(report.regime, report.period),
                    accepted,
                )
            )
        else:
            log.info(
                "report_rejected",
                report_id=report.report_id,
                regime=report.regime,
                period=report.period,
                unit=report.unit,
                codes=sorted({i.code for i in verdict.issues}),
            )

    def _count(self, batch: _Batch) -> None:
        """Counted per batch (one increment per label set, not one per report), after the
        commit: a batch retried after a failure counts once."""
        verdicts: Counter[tuple[str, str]] = Counter()
        issues: Counter[tuple[str, str, str]] = Counter()
        late: Counter[str] = Counter()
        for judged in batch.verdicts:
            verdict = judged.verdict
            regime = judged.report.regime
            regime = regime if regime in self._regimes else "unknown"
            verdicts[(regime, verdict.status.value)] += 1
            for found in verdict.issues:
                issues[(regime, found.code, found.severity.value)] += 1
            if verdict.status is Status.ACCEPTED and verdict.timeliness is Timeliness.LATE:
                late[regime] += 1
        metrics = self._rt.metrics
        for topic, n in Counter(m.topic for m in batch.messages).items():
            metrics.published.labels(topic=topic).inc(n)
        if batch.dead_letters:
            metrics.dlq_messages.labels(topic=RECEIVED.name).inc(batch.dead_letters)
        for (regime, status), n in verdicts.items():
            metrics.verdicts.labels(regime=regime, status=status).inc(n)
        for (regime, code, severity), n in issues.items():
            metrics.rejection_issues.labels(regime=regime, code=code, severity=severity).inc(n)
        for regime, n in late.items():
            metrics.late_reports.labels(regime=regime).inc(n)


def _key(item: ReceivedReport | LockException) -> NaturalKey:
    if isinstance(item, LockException):
        return (item.regime, item.period, item.unit)
    return (item.report.regime, item.report.period, item.report.unit)


def _outcome(received: ReceivedReport, verdict: Verdict) -> bytes:
    """The Outcome message, written from the validated report and verdict: no model is
    built (pydantic's `model_construct` alone cost more than the JSON)."""
    report = received.report
    return codec.dumps_fields(
        Outcome,
        report_id=report.report_id,
        regime=report.regime,
        period=report.period,
        unit=report.unit,
        revision=report.revision,
        status=verdict.status,
        timeliness=verdict.timeliness,
        received_at=received.received_at,
        deadline=verdict.deadline,
        issues=verdict.issues,
    )
