"""Submission's subscribers: thin, batched, acknowledged only after the database commit."""

from __future__ import annotations

from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import INBOUND, OUTCOMES
from shared.kafka_client import consumer_options
from shared.runtime import Runtime
from shared.source_topics import inbound_pattern

from .ingest import Ingest


def build_router(runtime: Runtime, ingest: Ingest, *, authenticates: bool = False) -> KafkaRouter:
    router = KafkaRouter()
    options = consumer_options(runtime.settings.kafka)
    take_reports = runtime.batch_consumer("ingest", INBOUND, ingest.from_kafka)
    keep_verdicts = runtime.batch_consumer("verdicts", OUTCOMES, ingest.record_verdicts)

    # With sender authentication on, only each source's own topic is read: its principal
    # is the only one allowed to write it, so the topic names the sender (kafka_access).
    pattern = inbound_pattern(runtime.settings.kafka) if authenticates else None
    topics = [] if pattern else [runtime.topic(INBOUND)]

    # MANUAL: offsets are committed after the raw reports and their outbox rows are
    # committed in PostgreSQL; a failed batch is rewound, so nothing sent is lost.
    @router.subscriber(
        *topics,
        pattern=pattern,
        group_id=runtime.group(),
        batch=True,
        ack_policy=AckPolicy.MANUAL,
        title="reports.inbound.v1",
        description="Reports from local systems (Report, baocao.report.v1); with sender "
        "authentication on, from each source's own reports.inbound.v1.<source>.",
        **options,
    )
    async def on_inbound(msg: KafkaMessage) -> None:
        await take_reports(msg)

    # MANUAL: a verdict is committed only once stored; redelivery rewrites the same row.
    @router.subscriber(
        runtime.topic(OUTCOMES),
        group_id=runtime.group("submission-verdicts"),
        batch=True,
        ack_policy=AckPolicy.MANUAL,
        title="reports.outcomes.v1",
        description="Verdicts, kept for GET /v1/reports/{report_id} and for duplicates.",
        **options,
    )
    async def on_outcome(msg: KafkaMessage) -> None:
        await keep_verdicts(msg)

    return router
