"""Aggregation's subscriber: thin, batched, acknowledged only after the database commit."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import ACCEPTED
from shared.kafka_client import consumer_options
from shared.runtime import Runtime

from .rollup import RollupStage


def build_router(runtime: Runtime, stage: RollupStage) -> KafkaRouter:
    router = KafkaRouter()
    roll_up = runtime.batch_consumer("aggregate", ACCEPTED, stage.apply)

    # MANUAL: offsets are committed after the inbox, the new state and the outbox are
    # committed together; a redelivered report is found in the inbox and has no effect.
    @router.subscriber(
        runtime.topic(ACCEPTED),
        group_id=runtime.group(),
        batch=True,
        ack_policy=AckPolicy.MANUAL,
        title="reports.accepted.v1",
        description="Accepted reports (AcceptedReport), rolled up into snapshots.",
        **consumer_options(runtime.settings.kafka),
    )
    async def on_accepted(msg: KafkaMessage) -> None:
        await roll_up(msg)

    return router
