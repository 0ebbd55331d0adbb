"""Creates the system's topics at start: an idempotent admin step every service runs.

Each topic of `shared.contracts.TOPICS` gets the configured partitions (12 by default, so
that up to 12 instances of a service can share the load) and a `.dlq` companion;
`aggregates.v1` is compacted so that a consumer starting from scratch (the hub) reads the
latest snapshot of every scope without the history.
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.contracts import TOPICS, TopicSpec
from shared.kafka_client import client_options
from shared.logging import get_logger
from shared.settings import KafkaSettings

log = get_logger(__name__)

TOPIC_ALREADY_EXISTS = 36


def topic_configs(spec: TopicSpec, kafka: KafkaSettings) -> dict[str, str]:
    configs: dict[str, str] = {}
    if spec.compacted:
        configs |= {
            "cleanup.policy": "compact",
            # Compact soon after a snapshot is superseded, but never before consumers
            # that are a few minutes behind have read it.
            "min.compaction.lag.ms": "300000",
            "segment.ms": "3600000",
        }
    if kafka.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(kafka.min_insync_replicas)
    return configs


def new_topics(kafka: KafkaSettings) -> list[NewTopic]:
    topics: list[NewTopic] = []
    for spec in TOPICS:
        topics.append(
            NewTopic(
                kafka.topic(spec),
                kafka.partitions,
                kafka.replication_factor,
                topic_configs=topic_configs(spec, kafka),
            )
        )
        if spec.has_dlq:
            dlq_configs = {}
            if kafka.min_insync_replicas is not None:
                dlq_configs["min.insync.replicas"] = str(kafka.min_insync_replicas)
            topics.append(
                NewTopic(
                    kafka.dlq(spec),
                    kafka.dlq_partitions,
                    kafka.replication_factor,
                    topic_configs=dlq_configs,
                )
            )
    return topics


async def ensure_topics(kafka: KafkaSettings, *, deadline_s: float = 60.0) -> list[str]:
    """Create every missing topic; returns the names created. Safe to run concurrently."""
    created: list[str] = []
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((KafkaError, OSError)),
        wait=wait_exponential(multiplier=0.2, max=3),
        stop=stop_after_delay(deadline_s),
        reraise=True,
    ):
        with attempt:
            admin = AIOKafkaAdminClient(**client_options(kafka))
            await admin.start()
            try:
                existing = set(await admin.list_topics())
                missing = [t for t in new_topics(kafka) if t.name not in existing]
                if missing:
                    response = await admin.create_topics(missing)
                    for name, code, *_ in response.topic_errors:
                        if code not in (0, TOPIC_ALREADY_EXISTS):
                            raise KafkaError(f"creating topic {name} failed with error {code}")
                        if code == 0:
                            created.append(name)
                await check_leaders(admin, [t.name for t in new_topics(kafka)])
            finally:
                await admin.close()
    if created:
        log.info("topics_created", topics=created)
    return created


async def check_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Raise `KafkaError` unless every partition of these topics has a leader. Consumers
    started before then log errors until it has one; a caller retries this to wait."""
    described = await admin.describe_topics(names)
    leaderless = [
        t["topic"]
        for t in described
        if t["error_code"] != 0 or any(p["leader"] < 0 for p in t["partitions"])
    ]
    if leaderless:
        raise KafkaError(f"partitions without a leader yet: {leaderless[:3]}")
