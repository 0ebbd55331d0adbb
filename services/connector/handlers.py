"""The connector's subscriber: thin, batched, acknowledged only after the database commit."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import AGGREGATES
from shared.kafka_client import consumer_options
from shared.runtime import Runtime

from .intake import SnapshotIntake


def build_router(runtime: Runtime, intake: SnapshotIntake) -> KafkaRouter:
    router = KafkaRouter()
    take = runtime.batch_consumer("deliver", AGGREGATES, intake.take)

    # MANUAL: a snapshot version is committed only once the delivery state holds it; the
    # state keeps the highest version, so a redelivery changes nothing.
    @router.subscriber(
        runtime.topic(AGGREGATES),
        group_id=runtime.group(),
        batch=True,
        ack_policy=AckPolicy.MANUAL,
        title="aggregates.v1",
        description="Aggregate snapshots (AggregateSnapshot) to deliver to the national hub.",
        **consumer_options(runtime.settings.kafka),
    )
    async def on_snapshot(msg: KafkaMessage) -> None:
        await take(msg)

    return router
