"""Ingesting reports from both channels: store the raw report, stamp it, pass it on.

A report is acknowledged (Kafka offset committed, or HTTP 202) only after it is stored in
PostgreSQL and its forwarding to reports.received.v1 is certain: nothing accepted can be
lost. Over HTTP the forwarding message is committed with the report, to an outbox. From
Kafka it is published once the report is committed and before the offset is: a record
read again (the process stopped in between) finds its report stored, and it is forwarded
again unless its offset is at or below the partition's mark of reports forwarded
(`forwarded`, raised once the broker acknowledged a batch). A replay under new consumer
groups therefore forwards nothing again, and a report forwarded twice carries the same
`received_at` both times, read back from the database; validation keeps the first.

Validation judges a (regime, period)'s reports in the order of reports.received.v1, and an
operator's lock exception, which travels there too, must come before the reports received
after it was opened. So a Kafka batch is published directly only when the outbox holds no
message for reports.received.v1 (a lock exception, a report sent over HTTP): otherwise
its messages join the outbox behind them. A lock exception is opened under the lock that
batches check this under (`store.may_forward_directly`): a batch that checked before it
was opened committed before, with reports received before it.
`report_id` is the sender's idempotency key: a second report with the same id is a
duplicate and gets the original verdict back with status `duplicate` (at once if the
verdict is known, else when it arrives). A redelivery of the same Kafka record after a
crash is recognised by its offset and is never stored twice.

With sender authentication on, a report is taken only from a registered source, for one
of its units, signed when it must be (see `senders`). With it off, anyone may send for any
unit, but a signature a report carries is still checked, against the keys of the source
it names, and a signed regime's report must carry one. A refused report (E140-E142) is
never stored, so it cannot make a later genuine report with the same id a duplicate. Over
Kafka the sender is the source whose own topic the record came from (`kafka_access`), and
every verdict on its reports, refusals included, is also sent to its own outcome topic.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from shared import codec, outbox
from shared.batches import Record, partition_offsets
from shared.clock import TIMEZONE
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
from shared.messages import issue
from shared.observability.log_context import report_fields
from shared.observability.metrics import stage_work
from shared.outbox import OutboxMessage
from shared.pacing import paced
from shared.runtime import Runtime
from shared.source_topics import outcomes_topic, sender_of

from . import store
from .intake import Limits, Readable, Unreadable, read
from .kafka_access import SourceTopics
from .senders import Source, admit, admit_as_named
from .settings import SubmissionSection
from .store import PendingDuplicate, StoredReport

SENDER_CODES = frozenset({"E140", "E141", "E142"})
MALFORMED_CODES = frozenset({"E100", "E150"})  # the others count as senders refused (429 too)
# Reports over HTTP come one per request: a stage of their own, so that the batch duration
# and failures of the Kafka `ingest` stage keep their meaning.
HTTP_STAGE = "ingest_http"

log = get_logger(__name__)

RECEIVED_SCHEMA = ReceivedReport.model_fields["schema_"].default


@dataclass(frozen=True, slots=True)
class Ingested:
    """What happened to one report sent over HTTP."""

    report_id: str
    received_at: datetime
    duplicate: bool
    verdict: Outcome | None = None


@dataclass
class _Tally:
    """What one call counts once its transaction has committed: a batch retried after a
    failed transaction must not count its refusals, dead letters and duplicates again."""

    refused: list[tuple[str, str]] = field(default_factory=list)  # (channel, code)
    dead_letters: int = 0
    duplicates: list[str] = field(default_factory=list)  # channels


class Ingest:
    def __init__(self, runtime: Runtime, section: SubmissionSection) -> None:
        self._rt = runtime
        self._limits = Limits(
            max_bytes=section.max_report_bytes,
            max_text_chars=section.max_text_chars,
            max_number_digits=section.max_number_digits,
            max_number_exponent=section.max_number_exponent,
        )
        self.authenticates = section.sender_authentication
        self._signed_regimes = frozenset(section.signed_regimes)
        self._source_topics = SourceTopics(
            runtime.settings.kafka, section.source_partitions, runtime.settings.topics
        )
        runtime.metrics.prepare_intake(runtime.catalog.regime_codes)
        runtime.metrics.prepare_stage(HTTP_STAGE)

    # --- channels ----------------------------------------------------------------------

    async def from_kafka(self, records: Sequence[Record]) -> None:
        received_at = self._rt.clock.now()
        kafka = self._rt.settings.kafka
        senders = (
            {r.topic: sender_of(kafka, r.topic) for r in records} if self.authenticates else {}
        )
        named = {s for s in senders.values() if s is not None}
        registered: dict[str, Source] = {}
        if named:
            # Before any outbox row names a sender's topic: a missing topic would hold the relay.
            await self._source_topics.ensure(named)
            async with self._rt.pool.acquire() as conn:
                registered = await store.active_sources(conn, named)
        reports: list[tuple[StoredReport, Record]] = []
        messages: list[OutboxMessage] = []
        tally = _Tally()
        async with self._rt.pool.acquire() as conn:
            # Records read again (a crash before the offset commit, a replay) whose report
            # is stored already are not even parsed; forwarded again only if that was
            # never acknowledged.
            again = await store.stored_from(conn, [_source(r) for r in records])
            unsent = await self._unforwarded(conn, again)
        read_records: list[tuple[Record, str | None]] = []
        results: list[Readable | Unreadable] = []
        async for record in paced(records):
            if _source(record) in again:
                continue
            sender = senders.get(record.topic)
            read_records.append((record, sender))
            results.append(self._take(record.value or b"", sender, registered.get(sender or "")))
        results = await self._signed_as_named(results)
        for (record, sender), result in zip(read_records, results, strict=True):
            if isinstance(result, Unreadable):
                messages += self._refusal(result, Channel.KAFKA, record, sender, tally)
                continue
            stored_report = StoredReport(
                result.report,
                record.value or b"",
                Channel.KAFKA,
                received_at,
                _source(record),
                sender,
            )
            reports.append((stored_report, record))
        foreign = await self._foreign_ids([r for r, _ in reports])
        for report, record in [(r, rec) for r, rec in reports if r.report.report_id in foreign]:
            refusal = self._taken_id(report)
            messages += self._refusal(refusal, Channel.KAFKA, record, report.sender, tally)
        taken = [r for r, _ in reports if r.report.report_id not in foreign]
        upto = partition_offsets(records, max)
        async with self._rt.pool.acquire() as conn, conn.transaction():
            direct = await store.may_forward_directly(conn, self._rt.topic(RECEIVED))
            stored, answers = await self._store(conn, taken, tally)
            forwards = [*unsent, *(self._forward(r) for r in stored)]
            if not direct:
                # Forwarding messages wait in the outbox: these follow them, in order.
                messages += forwards
                await store.mark_forwarded(conn, upto)
            await outbox.write(conn, messages + answers)
        self._rt.relay.notify()
        self._count(stored, tally)
        if direct:
            await self._rt.publish(forwards)  # a failure: the batch comes again, unsent
            async with self._rt.pool.acquire() as conn:
                await store.mark_forwarded_lazily(conn, upto)
            if forwards:
                self._rt.metrics.published.labels(topic=forwards[0].topic).inc(len(forwards))

    async def _unforwarded(
        self, conn: Connection, again: set[tuple[str, int, int]]
    ) -> list[OutboxMessage]:
        """The forwarding messages of stored reports read again beyond their partition's
        mark: stored, but the broker's acknowledgement was never recorded."""
        if not again:
            return []
        marks = await store.forwarded_upto(conn, {(t, p) for t, p, _ in again})
        beyond = sorted(s for s in again if s[2] > marks.get((s[0], s[1]), -1))
        return [
            self._received(r.regime, r.period, r.raw, r.received_at.astimezone(TIMEZONE), r.channel)
            for r in await store.reports_from(conn, beyond)
        ]

    async def from_http(self, raw: bytes, sender: Source | None = None) -> Ingested | Unreadable:
        """Take one report sent over HTTP by `sender` (None when senders are not
        authenticated)."""
        (result,) = await self._signed_as_named(
            [self._take(raw, sender.name if sender else None, sender)]
        )
        if isinstance(result, Unreadable):
            await self.refuse_http(result, raw)
            return result
        report = StoredReport(
            result.report,
            raw,
            Channel.HTTP,
            self._rt.clock.now(),
            sender=sender.name if sender else None,
        )
        report_id = result.report.report_id
        if await self._foreign_ids([report]):
            refusal = self._taken_id(report)
            await self.refuse_http(refusal, raw)
            return refusal
        tally = _Tally()
        async with self._rt.pool.acquire() as conn, conn.transaction():
            stored, answers = await self._store(conn, [report], tally)
            await outbox.write(conn, [*(self._forward(r) for r in stored), *answers])
            verdict = (
                None if stored else (await store.verdicts_of(conn, [report_id])).get(report_id)
            )
        self._rt.relay.notify()
        self._count(stored, tally)
        return Ingested(report_id, report.received_at, duplicate=not stored, verdict=verdict)

    async def refuse_http(
        self, refusal: Unreadable, raw: bytes, *, truncated: bool = False
    ) -> None:
        """A body refused over HTTP: the sender has its answer in the response; the bytes go
        to the dead-letter topic, and the verdict on the report it names to
        reports.outcomes.v1, as they would from Kafka."""
        tally = _Tally()
        messages = self._refusal(refusal, Channel.HTTP, None, None, tally, raw, truncated)
        async with self._rt.pool.acquire() as conn, conn.transaction():
            await outbox.write(conn, messages)
        self._rt.relay.notify()
        self._count([], tally)

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
            messages = [m for p in waiting for m in self._duplicate(final[p.report_id], p.sender)]
            if self.authenticates:
                # Each Kafka sender also reads its verdicts from its own topic (ACLs).
                senders = await store.senders_of(conn, final)
                messages += [self._to_sender(final[i], s) for i, s in senders.items()]
            await outbox.write(conn, messages)
        if messages:
            self._rt.relay.notify()

    # --- steps ---------------------------------------------------------------------------

    async def _store(
        self, conn: Connection, reports: Sequence[StoredReport], tally: _Tally
    ) -> tuple[list[StoredReport], list[OutboxMessage]]:
        """Insert new reports; answer duplicates. Returns (stored, answers): the caller
        forwards what was stored."""
        firsts: dict[str, StoredReport] = {}
        for report in reports:
            firsts.setdefault(report.report.report_id, report)
        inserted = await store.insert_reports(conn, list(firsts.values()))
        stored = [r for i, r in firsts.items() if i in inserted]
        messages: list[OutboxMessage] = []

        repeats = [  # the second report with an id in this batch, or one already stored
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
            # Only a Kafka sender has an outcome topic of its own; HTTP senders GET.
            sender = dup.sender if dup.channel is Channel.KAFKA else None
            if verdict is not None and _final(verdict):
                messages += self._duplicate(verdict, sender)
            else:
                pending.append(
                    PendingDuplicate(dup.report.report_id, dup.received_at, dup.channel, sender)
                )
        await store.add_pending_duplicates(conn, pending)
        for dup in duplicates:
            tally.duplicates.append(dup.channel.value)
            log.info("duplicate_report", **report_fields(dup.report), channel=dup.channel.value)
        return stored, messages

    def _forward(self, report: StoredReport) -> OutboxMessage:
        """The ReceivedReport, with the report embedded as the sender wrote it: it was just
        read and validated, and its own bytes are "the report as sent" (not written again)."""
        r = report.report
        return self._received(r.regime, r.period, report.raw, report.received_at, report.channel)

    def _received(
        self, regime: str, period: str, raw: bytes, received_at: datetime, channel: Channel
    ) -> OutboxMessage:
        message = {
            "schema": RECEIVED_SCHEMA,
            "report": orjson.Fragment(raw),
            "received_at": received_at,
            "channel": channel.value,
        }
        return OutboxMessage(
            self._rt.topic(RECEIVED), regime_period_key(regime, period), codec.dumps(message)
        )

    def _take(self, raw: bytes, sender: str | None, source: Source | None) -> Readable | Unreadable:
        """The report in `raw`, if it is one and (senders authenticated) `sender` may send it."""
        result = read(raw, self._limits)
        if not self.authenticates:
            return result
        if source is None:
            # A topic of a source since revoked, or a request that passed no check: refuse.
            refusal = (issue("E140.source", field=None, sender=sender or "-"),)
            if isinstance(result, Readable):
                return Unreadable.refused(result.report, refusal)
            return dataclasses.replace(result, issues=refusal)
        if isinstance(result, Unreadable):
            return result
        issues = admit(source, result.report, result.document, self._signed_regimes)
        return Unreadable.refused(result.report, issues) if issues else result

    async def _signed_as_named(
        self, results: list[Readable | Unreadable]
    ) -> list[Readable | Unreadable]:
        """Sender authentication off: the signatures of `results`, checked against the
        sources they name (see `senders.admit_as_named`). Only the reports a signature
        concerns cost a look-up: the local run's stream of unsigned reports costs none."""
        if self.authenticates:
            return results
        concerned = {
            r.report.source
            for r in results
            if isinstance(r, Readable)
            and (r.report.signature is not None or r.report.regime in self._signed_regimes)
        }
        if not concerned:
            return results
        async with self._rt.pool.acquire() as conn:
            named = await store.active_sources(conn, concerned)
        checked: list[Readable | Unreadable] = []
        for result in results:
            if isinstance(result, Readable):
                report = result.report
                issues = admit_as_named(
                    named.get(report.source), report, result.document, self._signed_regimes
                )
                if issues:
                    checked.append(Unreadable.refused(report, issues))
                    continue
            checked.append(result)
        return checked

    async def _foreign_ids(self, reports: Sequence[StoredReport]) -> set[str]:
        """Ids already used by another sender. Dedup is by report_id alone, so without this
        a source that took another's next id first would have that source's report taken
        as a duplicate, uncounted, and answered with the first one's verdict."""
        if not self.authenticates or not reports:
            return set()
        async with self._rt.pool.acquire() as conn:
            owners = await store.owners_of(conn, {r.report.report_id for r in reports})
        return {
            r.report.report_id
            for r in reports
            if owners.get(r.report.report_id, r.sender) != r.sender
        }

    @staticmethod
    def _taken_id(report: StoredReport) -> Unreadable:
        found = issue("E141.report_id", field="report_id", report_id=report.report.report_id)
        return Unreadable.refused(report.report, (found,))

    def _duplicate(self, verdict: Outcome, sender: str | None) -> list[OutboxMessage]:
        repeated = verdict.model_copy(update={"status": Status.DUPLICATE})
        messages = [self._outcome(repeated)]
        if sender is not None:
            messages.append(self._to_sender(repeated, sender))
        return messages

    def _outcome(self, outcome: Outcome) -> OutboxMessage:
        key = (outcome.unit or outcome.report_id).encode()
        return OutboxMessage(self._rt.topic(OUTCOMES), key, codec.dumps(outcome))

    def _to_sender(self, outcome: Outcome, sender: str) -> OutboxMessage:
        key = (outcome.unit or outcome.report_id).encode()
        topic = outcomes_topic(self._rt.settings.kafka, sender)
        return OutboxMessage(topic, key, codec.dumps(outcome))

    def _refusal(
        self,
        unreadable: Unreadable,
        channel: Channel,
        record: Record | None,
        sender: str | None,
        tally: _Tally,
        body: bytes = b"",
        truncated: bool = False,
    ) -> list[OutboxMessage]:
        """E100/E150, E140-E142: the verdict to the sender (if it named a report id) and the
        raw bytes (the record's, or over HTTP the `body`) to the dead-letter topic. A refused
        sender's verdict goes only to the sender's own topic: on the shared topic, keyed by a
        unit it may not report for, it would reach that unit. An HTTP sender has no topic of
        its own: with senders authenticated, its answer is the response alone."""
        code = unreadable.code
        tally.refused.append((channel.value, code))
        log.info(
            "report_refused" if code in SENDER_CODES else "report_unreadable",
            **report_fields(unreadable),
            channel=channel.value,
            code=code,
            sender=sender,
            issues=[i.message_en for i in unreadable.issues[:5]],
        )
        summary = "; ".join(f"{i.code} {i.message_en}" for i in unreadable.issues[:20])
        dlq = self._rt.settings.kafka.dlq(INBOUND)
        messages = [
            outbox.dead_letter(record, dlq, "submission", summary)
            if record is not None
            else outbox.dead_letter_http(body, dlq, "submission", summary, truncated=truncated)
        ]
        tally.dead_letters += 1
        outcome = unreadable.outcome()
        if outcome is not None:
            if sender is not None:
                messages.append(self._to_sender(outcome, sender))
            elif not self.authenticates:
                messages.append(self._outcome(outcome))
        return messages

    def count_rate_limited(self) -> None:
        self.count_refused("429")

    def count_refused(self, code: str) -> None:
        """A request over HTTP refused before its report is read: for its sender (E140,
        429) or its size (E150)."""
        self._count([], _Tally(refused=[(Channel.HTTP.value, code)]))

    def http_stage(self) -> AbstractContextManager[None]:
        """The stage metrics of one report sent over HTTP, around `from_http`."""
        return stage_work(self._rt.metrics, HTTP_STAGE)

    def _count(self, stored: Sequence[StoredReport], tally: _Tally) -> None:
        """Counted per batch (one increment per label set, not one per report), after the
        commit."""
        metrics = self._rt.metrics
        known = set(self._rt.catalog.regime_codes)
        counts = Counter(
            (r.report.regime if r.report.regime in known else "unknown", r.channel.value)
            for r in stored
        )
        for (regime, channel), n in counts.items():
            metrics.reports_received.labels(regime=regime, channel=channel).inc(n)
        for (channel, code), n in Counter(tally.refused).items():
            refused = (
                metrics.reports_malformed if code in MALFORMED_CODES else metrics.senders_refused
            )
            refused.labels(channel=channel, code=code).inc(n)
        if tally.dead_letters:
            metrics.dlq_messages.labels(topic=INBOUND.name).inc(tally.dead_letters)
        for channel, n in Counter(tally.duplicates).items():
            metrics.duplicates.labels(channel=channel).inc(n)


def _final(verdict: Outcome | None) -> bool:
    """A verdict a duplicate can be answered with (not a contract refusal of another copy)."""
    return verdict is not None and not store.is_contract_only(verdict)


def _source(record: Record) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)
