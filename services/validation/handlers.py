"""Validation's subscriber: thin, batched, acknowledged only after the database commit."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import RECEIVED
from shared.kafka_client import consumer_options
from shared.runtime import Runtime

from .verdicts import VerdictStage


def build_router(runtime: Runtime, stage: VerdictStage) -> KafkaRouter:
    router = KafkaRouter()
    judge = runtime.batch_consumer("validate", RECEIVED, stage.judge)

    # MANUAL: offsets are committed after the verdicts are committed (and published); a
    # redelivered report finds its verdict and is skipped, so none is judged twice.
    @router.subscriber(
        runtime.topic(RECEIVED),
        group_id=runtime.group(),
        batch=True,
        ack_policy=AckPolicy.MANUAL,
        title="reports.received.v1",
        description="Reports stored by submission (ReceivedReport) and lock exceptions.",
        **consumer_options(runtime.settings.kafka),
    )
    async def on_received(msg: KafkaMessage) -> None:
        await judge(msg)

    return router
