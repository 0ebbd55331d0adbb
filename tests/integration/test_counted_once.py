"""Every stage counts what a batch did once its transaction has committed: a batch whose
transaction fails on a database error and is then retried (as the batch consumer does)
counts its dead letters, refusals, duplicates and verdicts once, not once per try.
Validation, which publishes before it commits, publishes a retried batch again unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from services.aggregation.app import MIGRATIONS as AGGREGATION
from services.aggregation.rollup import RollupStage
from services.aggregation.settings import AggregationSettings
from services.connector.delivery import Deliverer
from services.connector.hub_client import JsonHub
from services.connector.intake import SnapshotIntake
from services.connector.ledger import PostgresLedger
from services.connector.settings import ConnectorSettings
from services.submission.ingest import Ingest
from services.submission.settings import SubmissionSettings
from services.validation.settings import ValidationSettings
from services.validation.verdicts import VerdictStage
from shared import codec, outbox
from shared.batches import Record
from shared.contracts import ACCEPTED, AGGREGATES, HUB_SYNC, INBOUND, OUTCOMES, RECEIVED
from shared.db import Connection
from shared.outbox import OutboxMessage
from shared.runtime import Runtime
from shared.settings import REPO_ROOT
from tests import factories
from tests.fakes import records
from tests.harness import service_settings

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
NOT_JSON = b"\xff not json"
Process = Callable[[Sequence[Record]], Awaitable[None]]


@pytest.fixture
def first_transaction_fails(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The first outbox write, the last step of every stage's transaction, is followed by
    a statement PostgreSQL refuses: that transaction rolls back, the next ones commit."""
    write = outbox.write
    tries: list[int] = []

    async def failing_once(conn: Connection, messages: Sequence[OutboxMessage]) -> None:
        await write(conn, messages)
        tries.append(len(tries))
        if len(tries) == 1:
            await conn.execute("SELECT 1 / 0")

    monkeypatch.setattr(outbox, "write", failing_once)
    yield
    assert len(tries) == 2, "the stage did not write its outbox in each try"


def total(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    return sum(
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def counts_after_a_failed_try(
    runtime: Runtime, build: Callable[[Runtime], Process], batch: Sequence[Record], **counted: Any
) -> tuple[dict[str, float], dict[str, float]]:
    """The counts named in `counted` ({key: (metric, labels)}) after a first try of `batch`
    that fails on a database error, and after the retry that succeeds."""
    await runtime.start()
    try:
        process = build(runtime)

        def read() -> dict[str, float]:
            return {
                k: total(runtime.registry, name, **labels) for k, (name, labels) in counted.items()
            }

        with pytest.raises(asyncpg.DivisionByZeroError):
            await process(batch)
        failed = read()
        await process(batch)
        return failed, read()
    finally:
        await runtime.stop()


@pytest.mark.usefixtures("first_transaction_fails")
async def test_submission_counts_a_retried_batch_once(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(SubmissionSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)
    report = codec.dumps(factories.report())
    batch = records(config.kafka.topic(INBOUND), NOT_JSON, report, report)
    runtime = Runtime("submission", config, REPO_ROOT / "services" / "submission" / "migrations")
    failed, retried = await counts_after_a_failed_try(
        runtime,
        lambda rt: Ingest(rt, config.submission).from_kafka,
        batch,
        dlq=("baocao_dlq_messages_total", {"topic": INBOUND.name}),
        malformed=("baocao_reports_malformed_total", {"channel": "kafka", "code": "E100"}),
        duplicates=("baocao_reports_duplicate_total", {"channel": "kafka"}),
        received=("baocao_reports_received_total", {"channel": "kafka"}),
    )
    assert failed == {"dlq": 0, "malformed": 0, "duplicates": 0, "received": 0}
    assert retried == {"dlq": 1, "malformed": 1, "duplicates": 1, "received": 1}


async def test_validation_counts_a_retried_batch_once_and_publishes_it_again_unchanged(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation publishes a batch's messages before its transaction commits. The process
    stops right after the broker acknowledged them (the transaction rolls back): nothing is
    stored or counted, and the batch read again publishes the very same messages."""
    config = service_settings(ValidationSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)
    batch = records(config.kafka.topic(RECEIVED), NOT_JSON, codec.dumps(factories.received()))
    runtime = Runtime("validation", config, REPO_ROOT / "services" / "validation" / "migrations")
    publish = Runtime.publish
    published: list[list[tuple[str, bytes | None, bytes]]] = []

    async def publish_then_stop_once(self: Runtime, messages: Sequence[OutboxMessage]) -> None:
        await publish(self, messages)
        published.append([(m.topic, m.key, m.payload) for m in messages])
        if len(published) == 1:
            raise RuntimeError("stopped after the broker acknowledged")

    monkeypatch.setattr(Runtime, "publish", publish_then_stop_once)
    counted = {
        "dlq": ("baocao_dlq_messages_total", {"topic": RECEIVED.name}),
        "verdicts": ("baocao_report_verdicts_total", {}),
        "published": ("baocao_published_total", {}),
    }
    await runtime.start()
    try:
        stage = VerdictStage(runtime)

        async def read() -> dict[str, float]:
            found = {k: total(runtime.registry, n, **labels) for k, (n, labels) in counted.items()}
            async with runtime.pool.acquire() as conn:
                found["stored"] = await conn.fetchval("SELECT count(*) FROM verdicts")
            return found

        with pytest.raises(RuntimeError, match="stopped after"):
            await stage.judge(batch)
        assert await read() == {"dlq": 0, "verdicts": 0, "published": 0, "stored": 0}
        await stage.judge(batch)
        assert await read() == {"dlq": 1, "verdicts": 1, "published": 3, "stored": 1}
    finally:
        await runtime.stop()
    first, again = published
    assert first == again  # judged again the same way: the same bytes, keys and topics
    expected = [config.kafka.topic(ACCEPTED), config.kafka.topic(OUTCOMES)]
    assert sorted(t for t, _, _ in first) == sorted([*expected, config.kafka.dlq(RECEIVED)])


@pytest.mark.usefixtures("first_transaction_fails")
async def test_aggregation_counts_a_retried_batch_once(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(
        AggregationSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW
    )
    batch = records(config.kafka.topic(ACCEPTED), NOT_JSON, codec.dumps(factories.accepted()))
    failed, retried = await counts_after_a_failed_try(
        Runtime("aggregation", config, AGGREGATION),
        lambda rt: RollupStage(rt).apply,
        batch,
        dlq=("baocao_dlq_messages_total", {"topic": ACCEPTED.name}),
        observed=("baocao_receipt_to_snapshot_seconds_count", {}),
    )
    assert failed == {"dlq": 0, "observed": 0}
    assert retried == {"dlq": 1, "observed": 1}


@pytest.mark.usefixtures("first_transaction_fails")
async def test_the_connector_counts_a_retried_batch_once(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(ConnectorSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)

    def intake(rt: Runtime) -> Process:
        ledger = PostgresLedger(lambda: rt.pool, rt.relay.notify)
        hub = JsonHub(config.hub)  # never called: nothing here is delivered
        sync = rt.topic(HUB_SYNC)
        deliverer = Deliverer(ledger, hub, config.connector, rt.clock, rt.metrics, sync)
        return SnapshotIntake(rt, config.connector.sync_levels, deliverer).take

    runtime = Runtime("connector", config, REPO_ROOT / "services" / "connector" / "migrations")
    failed, retried = await counts_after_a_failed_try(
        runtime,
        intake,
        records(config.kafka.topic(AGGREGATES), NOT_JSON),
        dlq=("baocao_dlq_messages_total", {"topic": AGGREGATES.name}),
    )
    assert failed == {"dlq": 0}
    assert retried == {"dlq": 1}
