"""Sampled gauges against the real Kafka broker and PostgreSQL: consumer lag from the
broker's offsets, the outbox backlog from its table, the regime progress that aggregation
exports from the snapshots it stored."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.aggregation.app import build_app
from services.aggregation.settings import AggregationSettings
from shared import codec, outbox
from shared.contracts import ACCEPTED, RECEIVED, Timeliness, regime_period_key
from shared.db import create_pool, migrate
from shared.observability.lag import ConsumerLagMonitor, Subscription
from shared.observability.metrics import Metrics
from shared.outbox import OutboxMessage, OutboxRelay
from shared.settings import KafkaSettings, PostgresSettings
from shared.topics import ensure_topics
from tests import factories
from tests.harness import eventually, produce, running, service_settings

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    # No auto-commit: stopping would commit the position it fetched to, not `offsets`.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def committed(registry: CollectorRegistry, group: str, topic: str) -> dict[str, float]:
    """The committed offsets exported for a group's partitions, keyed by partition."""
    found = {}
    for partition in ("0", "1", "2"):
        labels = {"group": group, "topic": topic, "partition": partition}
        value = registry.get_sample_value("baocao_consumer_committed_offset", labels)
        if value is not None:
            found[partition] = value
    return found


async def test_consumer_lag_is_the_end_offset_minus_the_groups_commit_per_partition(
    namespace: str, kafka_bootstrap: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, namespace=namespace, partitions=3)
    await ensure_topics(kafka)
    topic, group = kafka.topic(RECEIVED), kafka.group("validation")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in ((0, 5), (1, 3)):
            for _ in range(count):
                await producer.send_and_wait(topic, b"{}", partition=partition)
    finally:
        await producer.stop()
    await commit(kafka_bootstrap, group, {TopicPartition(topic, 0): 2})

    registry = CollectorRegistry()
    monitor = ConsumerLagMonitor(kafka, [Subscription(group, topic)], Metrics(registry))
    try:
        await monitor.sample()
        # Partition 1 has no commit: the group would start from its first record.
        assert await monitor.measure() == {
            (group, topic, 0): 3,
            (group, topic, 1): 3,
            (group, topic, 2): 0,
        }
        labels = {"group": group, "topic": topic, "partition": "0"}
        assert registry.get_sample_value("baocao_consumer_lag_messages", labels) == 3
        # The commits are exported where there is one: their moving is the group's progress.
        assert committed(registry, group, topic) == {"0": 2}
        await commit(
            kafka_bootstrap, group, {TopicPartition(topic, 0): 5, TopicPartition(topic, 1): 3}
        )
        await monitor.sample()
        assert registry.get_sample_value("baocao_consumer_lag_messages", labels) == 0
        assert set((await monitor.measure()).values()) == {0}
        assert committed(registry, group, topic) == {"0": 5, "1": 3}
    finally:
        await monitor.close()


@pytest.fixture
async def outbox_pool(namespace: str, postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Any]:
    postgres = PostgresSettings(dsn=postgres_dsn)  # type: ignore[arg-type]
    pool = await create_pool(postgres, f"{namespace}outbox")
    try:
        await migrate(pool, tmp_path)  # the shared migrations only: the outbox table
        yield pool
    finally:
        await pool.close()


async def test_the_outbox_backlog_counts_what_waits_and_how_old_the_oldest_is(
    outbox_pool: Any,
) -> None:
    async with outbox_pool.acquire() as conn:
        assert await outbox.backlog(conn) == (0, 0.0)
        messages = [OutboxMessage("t", None, b"%d" % i) for i in range(3)]
        await outbox.write(conn, messages)
        await conn.execute("UPDATE outbox SET created_at = now() - interval '90 seconds'")
        waiting, oldest = await outbox.backlog(conn)
    assert waiting == 3
    assert 90 <= oldest < 150

    published: list[bytes] = []

    async def publish(messages: Sequence[OutboxMessage]) -> None:
        published.extend(m.payload for m in messages)

    relay = OutboxRelay(outbox_pool, publish, Metrics(CollectorRegistry()))
    assert await relay.relay_once() == 3
    async with outbox_pool.acquire() as conn:
        assert await outbox.backlog(conn) == (0, 0.0)
    assert published == [b"0", b"1", b"2"]


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


async def test_aggregation_exports_the_progress_of_open_periods_and_its_lag(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(
        AggregationSettings,
        namespace,
        kafka_bootstrap,
        postgres_dsn,
        now=NOW,
        metrics_interval_s=0.2,
    )
    key = regime_period_key("KSTT-TTHC", "2026-Q1")
    reports = [
        factories.accepted(unit="TB.DH.N01"),
        factories.accepted(unit="TB.HH.N01", timeliness=Timeliness.LATE),
        factories.accepted(unit="TB.TTPVHCC"),
    ]
    async with running(build_app(config)) as http:
        await produce(
            kafka_bootstrap, config.kafka.topic(ACCEPTED), [(key, codec.dumps(r)) for r in reports]
        )

        async def exported() -> str | None:
            text = (await http.get("/metrics")).text
            missing = samples(text, "baocao_regime_missing_units")
            q1 = (("period", "2026-Q1"), ("regime", "KSTT-TTHC"))
            lag = samples(text, "baocao_consumer_lag_messages")
            caught_up = lag and set(lag.values()) == {0}
            # The backlog is sampled on a timer: it reads 0 once the relay has sent everything.
            relayed = samples(text, "baocao_outbox_backlog").get(()) == 0
            return text if missing.get(q1) == 17 - 3 and caught_up and relayed else None

        text = await eventually(exported, timeout=60)
    q1 = (("period", "2026-Q1"), ("regime", "KSTT-TTHC"))
    assert samples(text, "baocao_regime_completeness_ratio")[q1] == pytest.approx(3 / 17)
    assert samples(text, "baocao_regime_on_time_ratio")[q1] == pytest.approx(2 / 17)
    assert samples(text, "baocao_regime_expected_units")[q1] == 17
    missing = samples(text, "baocao_regime_missing_units")
    assert {dict(k)["regime"] for k in missing} == {"KSTT-TTHC", "KTXH-M", "NVCP-S"}
    q2 = (("period", "2026-Q2"), ("regime", "KSTT-TTHC"))
    assert missing[q2] == samples(text, "baocao_regime_expected_units")[q2]  # no report yet
    lag = samples(text, "baocao_consumer_lag_messages")
    assert {dict(k)["group"] for k in lag} == {config.kafka.group("aggregation")}
    assert {dict(k)["partition"] for k in lag} == {"0", "1", "2"}
    assert samples(text, "baocao_outbox_backlog")[()] == 0
