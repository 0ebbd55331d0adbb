"""Ingesting reports from both channels: store the raw report, stamp it, pass it on.

A report is acknowledged (Kafka offset committed, or HTTP 202) only after it is stored in
PostgreSQL together with the outbox message that forwards it, in one transaction: nothing
accepted can be lost. `report_id` is the sender's idempotency key: a second report with
the same id is a duplicate and gets the original verdict back with status `duplicate`
(at once if the verdict is known, else when it arrives). A redelivery of the same Kafka
record after a crash is recognised by its offset and has no effect at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from shared import codec, outbox
from shared.batches import Record
from shared.contracts import (
    INBOUND,
    OUTCOMES,
    RECEIVED,
    Channel,
    Outcome,
    ReceivedReport,
    Status,
    regime_period_key,
)
from shared.db import Connection
from shared.logging import get_logger
from shared.observability.log_context import report_fields
from shared.outbox import OutboxMessage
from shared.runtime import Runtime

from . import store
from .intake import Unreadable, read_report
from .store import PendingDuplicate, StoredReport

log = get_logger(__name__)

RECEIVED_SCHEMA = ReceivedReport.model_fields["schema_"].default


@dataclass(frozen=True, slots=True)
class Ingested:
    """What happened to one report sent over HTTP."""

    report_id: str
    received_at: datetime
    duplicate: bool
    verdict: Outcome | None = None


class Ingest:
    def __init__(self, runtime: Runtime, max_bytes: int) -> None:
        self._rt = runtime
        self._max_bytes = max_bytes
        runtime.metrics.prepare_intake(runtime.catalog.regime_codes)

    # --- channels ----------------------------------------------------------------------

    async def from_kafka(self, records: Sequence[Record]) -> None:
        received_at = self._rt.clock.now()
        reports: list[StoredReport] = []
        messages: list[OutboxMessage] = []
        async with self._rt.pool.acquire() as conn, conn.transaction():
            # Records read again (a crash before the offset commit, a replay) whose report
            # is stored already have no effect at all: not even parsed.
            again = await store.stored_from(conn, [_source(r) for r in records])
            for record in records:
                source = _source(record)
                if source in again:
                    continue
                raw = record.value or b""
                result = read_report(raw, self._max_bytes)
                if isinstance(result, Unreadable):
                    messages += self._refusal(result, Channel.KAFKA, record)
                    continue
                reports.append(StoredReport(result, raw, Channel.KAFKA, received_at, source))
            stored, answers = await self._store(conn, reports)
            await outbox.write(conn, messages + answers)
        self._rt.relay.notify()
        self._count(stored, len(records) - len(again) - len(reports))

    async def from_http(self, raw: bytes) -> Ingested | Unreadable:
        result = read_report(raw, self._max_bytes)
        if isinstance(result, Unreadable):
            self._refusal(result, Channel.HTTP, None)
            return result
        report = StoredReport(result, raw, Channel.HTTP, self._rt.clock.now())
        async with self._rt.pool.acquire() as conn, conn.transaction():
            stored, answers = await self._store(conn, [report])
            await outbox.write(conn, answers)
            verdict = (
                None
                if stored
                else (await store.verdicts_of(conn, [result.report_id])).get(result.report_id)
            )
        self._rt.relay.notify()
        self._count(stored, 0)
        return Ingested(result.report_id, report.received_at, duplicate=not stored, verdict=verdict)

    async def record_verdicts(self, records: Sequence[Record]) -> None:
        """Keep the verdicts published on reports.outcomes.v1; answer waiting duplicates."""
        verdicts: dict[str, Outcome] = {}
        encoded: dict[str, bytes] = {}
        for record in records:
            outcome = codec.decode_internal(Outcome, record.value or b"")
            if outcome.status is not Status.DUPLICATE:
                verdicts[outcome.report_id] = outcome
                encoded[outcome.report_id] = record.value
        final = {i: o for i, o in verdicts.items() if not store.is_contract_only(o)}
        async with self._rt.pool.acquire() as conn, conn.transaction():
            await store.save_verdicts(conn, list(verdicts.values()), list(encoded.values()))
            await store.lock_pending_duplicates(conn)
            waiting = await store.take_pending_duplicates(conn, final)
            await outbox.write(conn, [self._duplicate(final[p.report_id]) for p in waiting])
        if waiting:
            self._rt.relay.notify()

    # --- steps ---------------------------------------------------------------------------

    async def _store(
        self, conn: Connection, reports: Sequence[StoredReport]
    ) -> tuple[list[StoredReport], list[OutboxMessage]]:
        """Insert new reports and forward them; answer duplicates. Returns (stored, messages)."""
        firsts: dict[str, StoredReport] = {}
        for report in reports:
            firsts.setdefault(report.report.report_id, report)
        inserted = await store.insert_reports(conn, list(firsts.values()))
        stored = [r for i, r in firsts.items() if i in inserted]
        messages = [self._forward(r) for r in stored]

        repeats = [
            r
            for r in reports
            if not (r.report.report_id in inserted and firsts[r.report.report_id] is r)
        ]
        if not repeats:
            return stored, messages
        ids = {r.report.report_id for r in repeats}
        sources = await store.sources_of(conn, ids)
        duplicates = [
            r for r in repeats if r.source is None or sources.get(r.report.report_id) != r.source
        ]
        if not duplicates:
            return stored, messages  # only redeliveries of records already stored
        verdicts = await store.verdicts_of(conn, {d.report.report_id for d in duplicates})
        unanswered = {
            d.report.report_id for d in duplicates if not _final(verdicts.get(d.report.report_id))
        }
        if unanswered:
            # A verdict committed after the read above would look for a pending duplicate
            # that this transaction has not committed yet, and leave it unanswered for good:
            # under the lock the verdict path takes, read again before waiting for it.
            await store.lock_pending_duplicates(conn)
            verdicts |= await store.verdicts_of(conn, unanswered)
        pending: list[PendingDuplicate] = []
        for dup in duplicates:
            verdict = verdicts.get(dup.report.report_id)
            if verdict is not None and _final(verdict):
                messages.append(self._duplicate(verdict))
            else:
                pending.append(PendingDuplicate(dup.report.report_id, dup.received_at, dup.channel))
        await store.add_pending_duplicates(conn, pending)
        for dup in duplicates:
            self._rt.metrics.duplicates.labels(channel=dup.channel.value).inc()
            log.info("duplicate_report", **report_fields(dup.report), channel=dup.channel.value)
        return stored, messages

    def _forward(self, report: StoredReport) -> OutboxMessage:
        """The ReceivedReport, with the report embedded as the sender wrote it: it was just
        read and validated, and its own bytes are "the report as sent" (not written again)."""
        r = report.report
        message = {
            "schema": RECEIVED_SCHEMA,
            "report": orjson.Fragment(report.raw),
            "received_at": report.received_at,
            "channel": report.channel.value,
        }
        return OutboxMessage(
            self._rt.topic(RECEIVED), regime_period_key(r.regime, r.period), codec.dumps(message)
        )

    def _duplicate(self, verdict: Outcome) -> OutboxMessage:
        repeated = verdict.model_copy(update={"status": Status.DUPLICATE})
        return self._outcome(repeated)

    def _outcome(self, outcome: Outcome) -> OutboxMessage:
        key = (outcome.unit or outcome.report_id).encode()
        return OutboxMessage(self._rt.topic(OUTCOMES), key, codec.dumps(outcome))

    def _refusal(
        self, unreadable: Unreadable, channel: Channel, record: Record | None
    ) -> list[OutboxMessage]:
        """E100/E150: the verdict to the sender (if it named a report id) and the raw bytes
        to the dead-letter topic. Over HTTP the sender gets the answer in the response."""
        self._rt.metrics.reports_malformed.labels(channel=channel.value, code=unreadable.code).inc()
        log.info(
            "report_unreadable",
            **report_fields(unreadable),
            channel=channel.value,
            code=unreadable.code,
            issues=[i.message_en for i in unreadable.issues[:5]],
        )
        if record is None:
            return []
        summary = "; ".join(f"{i.code} {i.message_en}" for i in unreadable.issues[:20])
        messages = [
            outbox.dead_letter(record, self._rt.settings.kafka.dlq(INBOUND), "submission", summary)
        ]
        self._rt.metrics.dlq_messages.labels(topic=INBOUND.name).inc()
        outcome = unreadable.outcome()
        if outcome is not None:
            messages.append(self._outcome(outcome))
        return messages

    def _count(self, stored: Sequence[StoredReport], _unreadable: int) -> None:
        """Counted per batch: one increment per label set, not one per report."""
        known = set(self._rt.catalog.regime_codes)
        counts = Counter(
            (r.report.regime if r.report.regime in known else "unknown", r.channel.value)
            for r in stored
        )
        for (regime, channel), n in counts.items():
            self._rt.metrics.reports_received.labels(regime=regime, channel=channel).inc(n)


def _final(verdict: Outcome | None) -> bool:
    """A verdict a duplicate can be answered with (not a contract refusal of another copy)."""
    return verdict is not None and not store.is_contract_only(verdict)


def _source(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)
