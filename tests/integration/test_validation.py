"""Validation against real Kafka and PostgreSQL: verdicts, accepted reports, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError

from services.validation import store as validation_store
from services.validation.app import build_app
from services.validation.settings import ValidationSettings
from shared import codec
from shared.contracts import (
    ACCEPTED,
    OUTCOMES,
    RECEIVED,
    AcceptedReport,
    Outcome,
    Status,
    Timeliness,
    regime_period_key,
)
from shared.outbox import OutboxMessage
from shared.runtime import Runtime
from tests import factories
from tests.harness import TopicReader, produce, running, service_settings
from tests.integration.validation_stack import Headers, produce_with_headers

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
KEY = regime_period_key("KSTT-TTHC", "2026-Q1")


def settings(namespace: str, kafka_bootstrap: str, postgres_dsn: str) -> ValidationSettings:
    return service_settings(ValidationSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)


async def test_each_report_is_judged_once_and_only_accepted_ones_are_passed_on(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    good = factories.received(NOW)
    broken_values = dict(factories.KSTT_VALUES, RECEIVED_TOTAL=1)
    broken = factories.received(NOW, unit="TB.HH.N01", values=broken_values)
    stranger = factories.received(NOW, unit="TB.NOWHERE")
    messages = [(KEY, codec.dumps(m)) for m in (good, broken, stranger, good)]  # good twice
    async with running(build_app(config)):
        await produce(kafka_bootstrap, config.kafka.topic(RECEIVED), messages)
        async with (
            TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes,
            TopicReader(kafka_bootstrap, config.kafka.topic(ACCEPTED)) as accepted,
        ):
            verdicts = [codec.decode(Outcome, r.value) for r in await outcomes.until(3)]
            passed = [codec.decode(AcceptedReport, r.value) for r in await accepted.until(1)]
            await outcomes.poll()
            await accepted.poll()
            assert len(outcomes.records) == 3
            assert len(accepted.records) == 1
    by_id = {v.report_id: v for v in verdicts}
    assert by_id[good.report.report_id].status is Status.ACCEPTED
    assert by_id[good.report.report_id].timeliness is Timeliness.ON_TIME
    assert [(i.code, i.rule) for i in by_id[broken.report.report_id].issues][:1] == [
        ("E120", "R01")
    ]
    assert [i.code for i in by_id[stranger.report.report_id].issues] == ["E102"]
    assert passed[0].report_id == good.report.report_id
    assert passed[0].values == good.report.values
    assert passed[0].regime_version == 1


async def test_a_correction_must_exceed_the_latest_accepted_revision(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    first = factories.received(NOW, revision=2)
    older = factories.received(NOW, revision=1)
    same = factories.received(NOW, revision=2)
    newer = factories.received(NOW, revision=3)
    messages = [(KEY, codec.dumps(m)) for m in (first, older, same, newer)]
    async with running(build_app(config)):
        await produce(kafka_bootstrap, config.kafka.topic(RECEIVED), messages)
        async with TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes:
            verdicts = [codec.decode(Outcome, r.value) for r in await outcomes.until(4)]
    statuses = [(v.revision, v.status, [i.code for i in v.issues]) for v in verdicts]
    assert statuses == [
        (2, Status.ACCEPTED, []),
        (1, Status.REJECTED, ["E130"]),
        (2, Status.REJECTED, ["E130"]),
        (3, Status.ACCEPTED, []),
    ]


async def test_a_lock_exception_lets_one_unit_report_into_a_locked_period_until_it_expires(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    # 2026-Q1 deadline 2026-03-18, lock 30 days later: 2026-04-17 is the last day.
    after_lock = datetime.fromisoformat("2026-05-02T09:00:00+07:00")
    exception = factories.lock_exception(
        expires_at=after_lock + timedelta(hours=1), opened_at=after_lock - timedelta(hours=1)
    )
    inside = factories.received(after_lock)
    expired = factories.received(after_lock + timedelta(hours=2), unit="TB.DH.N01", revision=2)
    other = factories.received(after_lock, unit="TB.DH.N02")
    messages = [(KEY, codec.dumps(m)) for m in (exception, inside, expired, other)]
    async with running(build_app(config)):
        await produce(kafka_bootstrap, config.kafka.topic(RECEIVED), messages)
        async with TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes:
            verdicts = [codec.decode(Outcome, r.value) for r in await outcomes.until(3)]
    # One unit's outcomes share a partition, so they keep their order; units may interleave.
    seen = sorted(verdicts, key=lambda v: v.unit or "")
    assert [(v.unit, v.status, [i.code for i in v.issues]) for v in seen] == [
        ("TB.DH.N01", Status.ACCEPTED, []),
        ("TB.DH.N01", Status.REJECTED, ["E106"]),
        ("TB.DH.N02", Status.REJECTED, ["E106"]),
    ]
    assert seen[0].timeliness is Timeliness.LATE


async def test_a_batch_the_broker_did_not_acknowledge_is_judged_again_with_nothing_kept(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The verdicts are written while the broker is sending them: when the broker fails,
    # the rows written meanwhile roll back, or the batch read again would find them
    # decided and publish nothing.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    reports = [factories.received(NOW), factories.received(NOW, unit="TB.HH.N01")]
    sends: list[int] = []
    send, save = Runtime._send, validation_store.save
    saved = asyncio.Event()

    async def saving(*args: Any) -> None:
        await save(*args)
        saved.set()

    async def failing_once(runtime: Runtime, messages: Sequence[OutboxMessage]) -> None:
        sends.append(len(messages))
        if len(sends) == 1:
            await saved.wait()  # the broker fails once the verdicts' rows are written
            raise KafkaTimeoutError()
        await send(runtime, messages)

    monkeypatch.setattr(validation_store, "save", saving)
    monkeypatch.setattr(Runtime, "_send", failing_once)
    async with running(build_app(config)):
        await produce(
            kafka_bootstrap,
            config.kafka.topic(RECEIVED),
            [(KEY, codec.dumps(r)) for r in reports],
        )
        async with TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes:
            verdicts = [codec.decode(Outcome, r.value) for r in await outcomes.until(2)]
            await outcomes.poll()
            assert len(outcomes.records) == 2
    schema = config.postgres.schema_name("validation")
    conn = await asyncpg.connect(postgres_dsn)
    try:
        stored = await conn.fetchval(f'SELECT count(*) FROM "{schema}".verdicts')
    finally:
        await conn.close()
    assert sends[:2] == [4, 4]  # two verdicts and two accepted reports, twice
    assert sorted(v.report_id for v in verdicts) == sorted(r.report.report_id for r in reports)
    assert stored == 2


async def test_a_start_that_fails_half_way_releases_the_pool_and_the_consumers(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    started: list[Runtime] = []
    start = Runtime.start

    async def start_then_fail(runtime: Runtime) -> None:
        await start(runtime)
        started.append(runtime)
        raise RuntimeError("a step after the start failed")

    monkeypatch.setattr(Runtime, "start", start_then_fail)
    with pytest.raises(RuntimeError, match="after the start"):
        async with running(build_app(config)):
            pass
    (runtime,) = started
    assert runtime.pool.is_closing()
    consumers = [getattr(s, "consumer", None) for s in runtime.broker.subscribers]
    assert consumers
    assert all(c is None for c in consumers)


async def test_no_record_of_a_batch_is_lost_to_a_body_or_header_the_broker_library_cannot_read(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # faststream decodes a body whose content-type is JSON before any handler runs; a JSON
    # number beyond a binary double (1E+400) or a null header value made it raise, and the
    # batch around it was skipped, then committed by the next batch's acknowledgement.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    json_header: Headers = [("content-type", b"application/json")]
    before = factories.received(NOW, unit="TB.DH.N01")
    huge = dict(factories.KSTT_VALUES, RECEIVED_ONLINE=Decimal("1E+400"))
    odd = factories.received(NOW, unit="TB.DH.N02", values=huge)
    after = factories.received(NOW, unit="TB.HH.N01")
    null_header = factories.received(NOW, unit="TB.HH.N02")
    messages: list[tuple[bytes | None, bytes, Headers]] = [
        (KEY, codec.dumps(before), json_header),
        (KEY, codec.dumps(odd), json_header),
        (KEY, codec.dumps(after), json_header),
        (KEY, codec.dumps(null_header), [("trace", None), ("binary", b"\xff\xfe")]),
    ]
    async with running(build_app(config)):
        await produce_with_headers(kafka_bootstrap, config.kafka.topic(RECEIVED), messages)
        async with TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes:
            verdicts = [codec.decode(Outcome, r.value) for r in await outcomes.until(4, timeout=60)]
    # Outcomes are keyed by unit: their order across partitions is not the sending order.
    by_unit = {v.unit: v for v in verdicts}
    assert {unit: v.status for unit, v in by_unit.items()} == {
        "TB.DH.N01": Status.ACCEPTED,
        "TB.DH.N02": Status.REJECTED,
        "TB.HH.N01": Status.ACCEPTED,
        "TB.HH.N02": Status.ACCEPTED,
    }
    odd_issues = by_unit["TB.DH.N02"].issues
    assert [(i.code, i.field) for i in odd_issues] == [("E112", "values.RECEIVED_ONLINE")]
