"""Submission against real Kafka and PostgreSQL: stores, forwards, dedups, refuses clearly.

A report from Kafka is forwarded once its transaction has committed: a batch read again
forwards nothing more once the broker acknowledged it, and forwards again, byte for byte
from the database, what the broker never acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

import asyncpg
import pytest

from services.submission import store
from services.submission.app import build_app
from services.submission.ingest import Ingest
from services.submission.settings import SubmissionSettings
from shared import codec, outbox
from shared.batches import TransientError
from shared.clock import FixedClock
from shared.contracts import (
    INBOUND,
    OUTCOMES,
    RECEIVED,
    Outcome,
    ReceivedReport,
    Report,
    Status,
    regime_period_key,
)
from shared.outbox import OutboxMessage
from shared.runtime import Runtime
from shared.settings import REPO_ROOT
from tests import factories
from tests.fakes import FakeRecord, records
from tests.harness import (
    TopicReader,
    an_advisory_lock_is_awaited,
    eventually,
    produce,
    running,
    service_settings,
)

MIGRATIONS = REPO_ROOT / "services" / "submission" / "migrations"

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")


def settings(namespace: str, kafka_bootstrap: str, postgres_dsn: str) -> SubmissionSettings:
    return service_settings(SubmissionSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)


@contextlib.asynccontextmanager
async def ingesting(
    config: SubmissionSettings,
) -> AsyncIterator[tuple[Runtime, Ingest]]:
    """Submission's ingest on a started runtime, without its subscribers: a test hands it
    the batches."""
    runtime = Runtime("submission", config, MIGRATIONS)
    await runtime.start()
    try:
        yield runtime, Ingest(runtime, config.submission)
    finally:
        await runtime.stop()


async def test_a_report_sent_on_kafka_is_stored_and_forwarded_once_with_received_at(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    report = factories.report()
    async with running(build_app(config)):
        raw = codec.dumps(report)
        await produce(kafka_bootstrap, config.kafka.topic(INBOUND), [(b"any", raw), (None, raw)])
        async with TopicReader(kafka_bootstrap, config.kafka.topic(RECEIVED)) as received:
            records = await received.until(1)
    forwarded = codec.decode(ReceivedReport, records[0].value)
    assert forwarded.report == report
    assert records[0].key == b"KSTT-TTHC|2026-Q1"
    assert abs((forwarded.received_at - NOW).total_seconds()) < 60
    conn = await asyncpg.connect(postgres_dsn)
    try:
        stored = await conn.fetchval(
            f'SELECT body FROM "{namespace}submission".reports WHERE report_id = $1',
            report.report_id,
        )
    finally:
        await conn.close()
    assert stored == raw


async def test_malformed_input_gets_an_e100_outcome_and_goes_to_the_dead_letter_topic(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    good = factories.report()
    bad = (
        b'{"schema": "baocao.report.v1", "report_id": "bad-1", "unit": "TB.DH.N01", "revision": 0}'
    )
    async with running(build_app(config)):
        await produce(
            kafka_bootstrap,
            config.kafka.topic(INBOUND),
            [(None, b"\xff\xfe not json"), (None, bad), (None, codec.dumps(good))],
        )
        async with (
            TopicReader(kafka_bootstrap, config.kafka.dlq(INBOUND)) as dlq,
            TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes,
            TopicReader(kafka_bootstrap, config.kafka.topic(RECEIVED)) as received,
        ):
            dead = await dlq.until(2)
            answered = await outcomes.until(1)
            forwarded = await received.until(1)
    assert {r.value for r in dead} == {b"\xff\xfe not json", bad}
    headers = dict(dead[0].headers)
    assert {"dlq.error", "dlq.source.topic", "dlq.source.partition", "dlq.source.offset"} <= set(
        headers
    )
    outcome = codec.decode(Outcome, answered[0].value)
    assert outcome.report_id == "bad-1"
    assert outcome.status is Status.REJECTED
    assert {(i.code, i.field) for i in outcome.issues} >= {("E100", "revision"), ("E100", "regime")}
    assert codec.decode(ReceivedReport, forwarded[0].value).report == good


async def test_http_post_answers_202_then_duplicate_and_get_returns_the_verdict_once_known(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    report = factories.report()
    async with running(build_app(config)) as http:
        first = await http.post("/v1/reports", content=codec.dumps(report))
        again = await http.post("/v1/reports", content=codec.dumps(report))
        pending = await http.get(f"/v1/reports/{report.report_id}")
        verdict = Outcome(
            report_id=report.report_id,
            regime=report.regime,
            period=report.period,
            unit=report.unit,
            revision=1,
            status=Status.ACCEPTED,
        )
        await produce(
            kafka_bootstrap, config.kafka.topic(OUTCOMES), [(b"TB.DH.N01", codec.dumps(verdict))]
        )

        async def decided() -> dict[str, object] | None:
            answer = await http.get(f"/v1/reports/{report.report_id}")
            return answer.json() if answer.status_code == 200 else None

        known = await eventually(decided)
        async with TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes:
            records = await outcomes.until(2)
        unknown = await http.get("/v1/reports/never-sent")
        metrics = (await http.get("/metrics")).text
    assert first.status_code == 202
    assert first.json()["status"] == "received"
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert pending.status_code == 202
    assert known["status"] == "accepted"
    repeated = [codec.decode(Outcome, r.value) for r in records]
    assert [o.status for o in repeated] == [Status.ACCEPTED, Status.DUPLICATE]
    assert unknown.status_code == 404
    # Each report sent over HTTP is a batch of one of its own stage; reading is not.
    for line in (
        'baocao_stage_messages_received_total{stage="ingest_http"} 2.0',
        'baocao_stage_messages_processed_total{outcome="ok",stage="ingest_http"} 2.0',
        'baocao_stage_batch_duration_seconds_count{stage="ingest_http"} 2.0',
        'baocao_stage_batch_failures_total{stage="ingest_http"} 0.0',
        'baocao_reports_duplicate_total{channel="http"} 1.0',
    ):
        assert line in metrics, line


async def test_http_refuses_bad_bodies_with_codes_and_field_paths_and_keeps_them(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    limit = config.submission.max_report_bytes
    named = factories.report()
    extra = codec.dumps(named)[:-1] + b', "extra": 1}'

    async def streamed() -> AsyncIterator[bytes]:  # no content-length: cut while read
        for _ in range(3):
            yield b"y" * (limit // 2)

    async with running(build_app(config)) as http:
        not_json = await http.post("/v1/reports", content=b"{oops")
        unknown_field = await http.post("/v1/reports", content=extra)
        huge = await http.post("/v1/reports", content=b"x" * (limit + 1))
        cut = await http.post("/v1/reports", content=streamed())
        async with (
            TopicReader(kafka_bootstrap, config.kafka.dlq(INBOUND)) as dlq,
            TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes,
        ):
            dead = await dlq.until(3)
            answered = await outcomes.until(1)
        metrics = (await http.get("/metrics")).text
    assert 'baocao_reports_malformed_total{channel="http",code="E100"} 2.0' in metrics
    # Refused by its size, declared or read: still an input that was no report.
    assert 'baocao_reports_malformed_total{channel="http",code="E150"} 2.0' in metrics
    assert 'baocao_dlq_messages_total{topic="reports.inbound.v1"} 3.0' in metrics
    assert not_json.status_code == 400
    assert not_json.json()["issues"][0]["code"] == "E100"
    assert unknown_field.status_code == 422
    assert [(i["code"], i["field"]) for i in unknown_field.json()["issues"]] == [("E100", "extra")]
    assert huge.status_code == 413
    assert huge.json()["issues"][0]["code"] == "E150"
    assert cut.status_code == 413
    # The bodies read are kept as they came; the one refused by its declared size was never
    # read, and the one cut at the limit is kept up to it.
    kept = {r.value: dict(r.headers) for r in dead}
    assert set(kept) == {b"{oops", extra, b"y" * limit}
    assert all(h["dlq.source.channel"] == b"http" for h in kept.values())
    assert kept[b"y" * limit]["dlq.truncated"] == b"true"
    assert "dlq.truncated" not in kept[extra]
    assert kept[extra]["dlq.error"].startswith(b"E100")
    # The one that names its report has its verdict published, as from Kafka.
    outcome = codec.decode(Outcome, answered[0].value)
    assert outcome.report_id == named.report_id
    assert outcome.status is Status.REJECTED
    assert [(i.code, i.field) for i in outcome.issues] == [("E100", "extra")]


async def test_a_duplicate_recorded_while_its_verdict_is_being_stored_is_still_answered(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # The two subscribers race: the verdict's transaction has looked for pending duplicates
    # (none yet) and not committed, when a copy of the report arrives and finds no verdict.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    report = factories.report()
    raw = codec.dumps(report)
    inbound = config.kafka.topic(INBOUND)
    verdict = Outcome(
        report_id=report.report_id,
        regime=report.regime,
        period=report.period,
        unit=report.unit,
        revision=1,
        status=Status.ACCEPTED,
    )
    async with ingesting(config) as (runtime, ingest):
        await ingest.from_kafka(records(inbound, raw))
        async with runtime.pool.acquire() as storing:
            transaction = storing.transaction()
            await transaction.start()
            await store.save_verdicts(storing, [verdict], [codec.dumps(verdict)])
            await store.lock_pending_duplicates(storing)
            assert await store.take_pending_duplicates(storing, [report.report_id]) == []
            copy = asyncio.create_task(ingest.from_kafka(records(inbound, raw, first_offset=1)))
            # The copy waits for the verdict's lock before deciding.
            await eventually(lambda: an_advisory_lock_is_awaited(runtime.pool), timeout=30)
            await transaction.commit()
        await asyncio.wait_for(copy, 30)
        async with runtime.pool.acquire() as conn:
            pending = await conn.fetchval("SELECT count(*) FROM pending_duplicates")
            answers = await conn.fetch(
                "SELECT payload FROM outbox WHERE topic = $1", config.kafka.topic(OUTCOMES)
            )
    assert pending == 0
    assert [codec.decode(Outcome, a["payload"]).status for a in answers] == [Status.DUPLICATE]


def recording(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> list[OutboxMessage]:
    """What the runtime publishes from now on, once the broker has acknowledged it."""
    sent: list[OutboxMessage] = []
    publish = runtime.publish

    async def record(messages: Sequence[OutboxMessage]) -> None:
        await publish(messages)
        sent.extend(messages)

    monkeypatch.setattr(runtime, "publish", record)
    return sent


async def test_a_batch_read_again_stores_and_forwards_nothing_more(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As after a crash before the offset commit, or a replay under new consumer groups: the
    # same records again, reports and a copy of one of them alike.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    first, second = factories.report(), factories.report(unit="TB.HH.N01")
    batch = records(
        config.kafka.topic(INBOUND), codec.dumps(first), codec.dumps(second), codec.dumps(first)
    )
    async with ingesting(config) as (runtime, ingest):
        sent = recording(runtime, monkeypatch)
        await ingest.from_kafka(batch)
        forwarded = list(sent)
        await ingest.from_kafka(batch)
        async with runtime.pool.acquire() as conn:
            relayed = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", config.kafka.topic(RECEIVED)
            )
            stored = await conn.fetchval("SELECT count(*) FROM reports")
            pending = await conn.fetchval("SELECT count(*) FROM pending_duplicates")
    assert [m.topic for m in forwarded] == [config.kafka.topic(RECEIVED)] * 2
    assert sent == forwarded
    assert relayed == 0  # from Kafka, published directly: never through the outbox
    assert stored == 2
    # A copy is not stored, so read again it waits for its original's verdict again: a
    # copy is answered at least once, with the same verdict.
    assert pending == 2


def two_reports(config: SubmissionSettings) -> tuple[Report, Report, tuple[FakeRecord, ...]]:
    """Two new reports of different units, and the batch of records that brings them."""
    first, second = factories.report(), factories.report(unit="TB.HH.N01")
    return first, second, records(config.kafka.topic(INBOUND), *map(codec.dumps, (first, second)))


async def test_reports_whose_forwarding_was_never_acknowledged_are_forwarded_again_unchanged(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker does not acknowledge the first forwarding (or the process stops before it
    # does): the reports are stored, the offsets not committed, so the batch comes again.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    _, _, batch = two_reports(config)
    async with ingesting(config) as (runtime, ingest):
        clock = FixedClock(NOW)
        monkeypatch.setattr(runtime, "clock", clock)
        attempted: list[OutboxMessage] = []
        publish = runtime.publish

        async def unacknowledged_once(messages: Sequence[OutboxMessage]) -> None:
            if not attempted:
                attempted.extend(messages)
                raise TransientError("the broker did not acknowledge")
            await publish(messages)

        monkeypatch.setattr(runtime, "publish", unacknowledged_once)
        with pytest.raises(TransientError):
            await ingest.from_kafka(batch)
        sent = recording(runtime, monkeypatch)
        clock.advance(timedelta(minutes=5))  # a later read would stamp a later time
        await ingest.from_kafka(batch)  # read again: stored already, never forwarded
        again = list(sent)
        await ingest.from_kafka(batch)  # and once more, after the acknowledgement
        async with runtime.pool.acquire() as conn:
            stored = await conn.fetchval("SELECT count(*) FROM reports")
    assert stored == 2
    # The same bytes as the first try, received_at included, read back from the database.
    assert [(m.topic, m.key, m.payload) for m in again] == [
        (m.topic, m.key, m.payload) for m in attempted
    ]
    assert [codec.decode(ReceivedReport, m.payload).received_at for m in again] == [NOW, NOW]
    assert sent == again  # acknowledged and marked: nothing more


async def received_in_outbox(runtime: Runtime) -> list[bytes]:
    """The payloads waiting in the outbox for reports.received.v1, in the relay's order."""
    async with runtime.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE topic = $1 ORDER BY id", runtime.topic(RECEIVED)
        )
    return [r["payload"] for r in rows]


def an_exception_message(runtime: Runtime) -> OutboxMessage:
    exception = factories.lock_exception()
    key = regime_period_key(exception.regime, exception.period)
    return OutboxMessage(runtime.topic(RECEIVED), key, codec.dumps(exception))


async def test_a_batch_from_kafka_queues_behind_forwarding_messages_waiting_in_the_outbox(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A lock exception committed and not yet relayed: reports published directly would
    # reach validation before it.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    first, second, batch = two_reports(config)
    async with ingesting(config) as (runtime, ingest):
        exception = an_exception_message(runtime)
        async with runtime.pool.acquire() as conn:
            await outbox.write(conn, [exception])
        sent = recording(runtime, monkeypatch)
        await ingest.from_kafka(batch)
        queued = await received_in_outbox(runtime)
        await ingest.from_kafka(batch)  # read again: in the outbox already, nothing more
        again = await received_in_outbox(runtime)
    assert sent == []
    forwarded = [codec.decode(ReceivedReport, p).report for p in queued[1:]]
    assert queued[0] == exception.payload
    assert forwarded == [first, second]
    assert again == queued


async def test_a_batch_from_kafka_waits_for_a_lock_exception_being_opened_then_queues_behind_it(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    report = factories.report()
    batch = records(config.kafka.topic(INBOUND), codec.dumps(report))
    async with ingesting(config) as (runtime, ingest):
        exception = an_exception_message(runtime)
        sent = recording(runtime, monkeypatch)
        async with runtime.pool.acquire() as conn:
            async with conn.transaction():
                await store.hold_forwarding(conn)
                ingesting_batch = asyncio.create_task(ingest.from_kafka(batch))
                await eventually(lambda: an_advisory_lock_is_awaited(runtime.pool))
                assert not ingesting_batch.done()
                await outbox.write(conn, [exception])
            await ingesting_batch
        queued = await received_in_outbox(runtime)
    assert sent == []
    assert queued[0] == exception.payload
    assert [codec.decode(ReceivedReport, p).report for p in queued[1:]] == [report]


async def test_a_lock_exception_is_opened_only_once_no_batch_from_kafka_is_deciding(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # Opened while a batch that found nothing waiting has yet to commit and publish, the
    # exception could reach validation ahead of reports received before it: not harmful,
    # but only because it is opened (and stamped) after that batch commits.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    request = {
        "regime": "KSTT-TTHC",
        "period": "2026-Q1",
        "unit": "TB.DH.N01",
        "expires_at": (NOW + timedelta(days=1)).isoformat(),
        "reason": "Đơn vị bị mất điện kéo dài",
        "opened_by": "operator-1",
    }
    schema = config.postgres.schema_name("submission")
    async with (
        running(build_app(config)) as http,
        asyncpg.create_pool(
            postgres_dsn, min_size=2, max_size=2, server_settings={"search_path": schema}
        ) as pool,
        pool.acquire() as batch,
    ):
        async with batch.transaction():
            assert await store.may_forward_directly(batch, config.kafka.topic(RECEIVED))
            opening = asyncio.create_task(http.post("/v1/admin/lock-exceptions", json=request))
            await eventually(lambda: an_advisory_lock_is_awaited(pool))
            assert not opening.done()
        opened = await opening
    assert opened.status_code == 201, opened.text


async def test_a_batch_from_kafka_with_nothing_waiting_is_published_directly(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    report = factories.report()
    batch = records(config.kafka.topic(INBOUND), codec.dumps(report))
    async with ingesting(config) as (runtime, ingest):
        sent = recording(runtime, monkeypatch)
        await ingest.from_kafka(batch)
        queued = await received_in_outbox(runtime)
    assert queued == []
    assert [codec.decode(ReceivedReport, m.payload).report for m in sent] == [report]


async def test_a_batch_partly_read_before_stores_only_the_records_not_stored_yet(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # A crash after offsets 0-1 of partition 0 were stored: the next batch starts at 1
    # again, goes on to 2, and holds partition 1's first record (offset 1 there is new).
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    topic = config.kafka.topic(INBOUND)
    a, b, c = (factories.report(unit=u) for u in ("TB.DH.X01", "TB.HH.N01", "TB.VT.X01"))
    d = factories.report(unit="TB.DH.N01")
    stored_before = records(topic, codec.dumps(a), codec.dumps(b))
    again_and_new = (
        *records(topic, codec.dumps(b), codec.dumps(c), first_offset=1),
        *records(topic, codec.dumps(d), partition=1, first_offset=1),
    )
    async with ingesting(config) as (runtime, ingest):
        await ingest.from_kafka(stored_before)
        await ingest.from_kafka(again_and_new)
        async with runtime.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT report_id, source_partition, source_offset FROM reports"
                " ORDER BY source_partition, source_offset"
            )
            pending = await conn.fetchval("SELECT count(*) FROM pending_duplicates")
    assert [(r["report_id"], r["source_partition"], r["source_offset"]) for r in rows] == [
        (a.report_id, 0, 0),
        (b.report_id, 0, 1),
        (c.report_id, 0, 2),
        (d.report_id, 1, 1),
    ]
    assert pending == 0  # b read again is recognised by its offset, not taken as a copy
