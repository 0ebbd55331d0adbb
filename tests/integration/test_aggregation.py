"""Aggregation against real Kafka and PostgreSQL: snapshots with rising versions, exactly once."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from services.aggregation.app import build_app
from services.aggregation.recompute import recompute
from services.aggregation.settings import AggregationSettings
from shared import codec
from shared.contracts import ACCEPTED, AGGREGATES, AggregateSnapshot, regime_period_key
from tests import factories
from tests.harness import TopicReader, produce, running, service_settings

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
KEY = regime_period_key("KSTT-TTHC", "2026-Q1")


def settings(namespace: str, kafka_bootstrap: str, postgres_dsn: str) -> AggregationSettings:
    return service_settings(AggregationSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)


async def test_snapshots_count_the_latest_revision_of_each_unit_once(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    a1 = factories.accepted(unit="TB.DH.N01", revision=1)
    b1 = factories.accepted(unit="TB.HH.N01", revision=1)
    corrected = dict(factories.KSTT_VALUES, RECEIVED_ONLINE=Decimal(130), RECEIVED_TOTAL=165)
    a2 = factories.accepted(unit="TB.DH.N01", revision=2, values=corrected)
    topic = config.kafka.topic(ACCEPTED)
    async with running(build_app(config)):
        await produce(kafka_bootstrap, topic, [(KEY, codec.dumps(a1))])
        async with TopicReader(kafka_bootstrap, config.kafka.topic(AGGREGATES)) as aggregates:
            await aggregates.until(1)
            # a duplicate of a1 and an older revision after a2 change nothing
            messages = [(KEY, codec.dumps(m)) for m in (b1, a1, a2, a1)]
            await produce(kafka_bootstrap, topic, messages)

            async def latest() -> AggregateSnapshot | None:
                snapshots = [
                    codec.decode(AggregateSnapshot, r.value) for r in await aggregates.poll()
                ]
                last = snapshots[-1]
                return (
                    last
                    if last.completeness.reported == 2 and last.values["RECEIVED_ONLINE"] == 250
                    else None
                )

            from tests.harness import eventually

            final = await eventually(latest)
        status = await recompute(config, "KSTT-TTHC", "2026-Q1")
    assert final.unit == "TB"
    assert final.values["RECEIVED_ONLINE"] == Decimal(250)
    assert final.values["RECEIVED_TOTAL"] == Decimal(155 + 165)
    assert final.values["ONLINE_RATE"] == Decimal("80.65")  # 250 / 310
    assert final.completeness.expected == 17
    assert final.completeness.missing[:2] == ("TB.DH.N02", "TB.HH.N02")
    versions = [codec.decode(AggregateSnapshot, r.value).version for r in aggregates.records]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) <= 3  # a1; b1 (+ a2, maybe in the same batch); never for a duplicate
    assert status == 0
