"""Reading and changing the cluster's topics through Kafka's admin API (all the I/O)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from shared.kafka_client import client_options
from shared.settings import KafkaSettings
from shared.source_topics import source_topic_pattern
from shared.topics import TOPIC_ALREADY_EXISTS, check_leaders, new_topics

from .plan import DesiredTopic, Plan, TopicState

# DescribeConfigs: the value was set on the topic itself (not inherited from the broker).
DYNAMIC_TOPIC_CONFIG = 1
UNKNOWN_TOPIC = 3
# How long topics just created may take to show in the cluster's metadata.
CREATED_DEADLINE_S = 60.0


def declared_topics(kafka: KafkaSettings) -> list[DesiredTopic]:
    """The system's topics as `shared.topics` declares them for every service's start."""
    return [
        DesiredTopic(t.name, t.num_partitions, t.replication_factor, dict(t.topic_configs))
        for t in new_topics(kafka)
    ]


@asynccontextmanager
async def connected(kafka: KafkaSettings, deadline_s: float) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client, retried until the cluster answers or the deadline passes (a job
    started with the cluster waits for it)."""
    admin: AIOKafkaAdminClient | None = None
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type((KafkaError, OSError)),
        wait=wait_exponential(multiplier=0.2, max=3),
        stop=stop_after_delay(deadline_s),
        reraise=True,
    ):
        with attempt:
            admin = AIOKafkaAdminClient(**client_options(kafka))
            try:
                await admin.start()
            except BaseException:
                await admin.close()
                raise
    assert admin is not None
    try:
        yield admin
    finally:
        await admin.close()


async def broker_count(admin: AIOKafkaAdminClient) -> int:
    described: dict[str, Any] = await admin.describe_cluster()
    return len(described["brokers"])


async def source_topic_names(admin: AIOKafkaAdminClient, kafka: KafkaSettings) -> list[str]:
    """Each source's topics on the cluster, found by their names."""
    pattern = re.compile(source_topic_pattern(kafka))
    return sorted(name for name in await admin.list_topics() if pattern.match(name))


async def read_state(admin: AIOKafkaAdminClient, names: Iterable[str]) -> dict[str, TopicState]:
    existing = set(await admin.list_topics())
    wanted = [name for name in names if name in existing]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    shapes: dict[str, tuple[int, int]] = {}
    for topic in described:
        if topic["error_code"] == UNKNOWN_TOPIC:
            continue
        if topic["error_code"] != 0:
            raise KafkaError(f"describing topic {topic['topic']} failed: {topic['error_code']}")
        partitions = topic["partitions"]
        # The smallest replica set is the topic's effective replication factor.
        replicas = min((len(p["replicas"]) for p in partitions), default=0)
        shapes[topic["topic"]] = (len(partitions), replicas)
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in shapes]
    states: dict[str, TopicState] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            name = resource["resource_name"]
            if resource["error_code"] != 0:
                raise KafkaError(
                    f"reading the settings of {name} failed: {resource['error_message']}"
                )
            entries = resource["config_entries"]
            configs = {e["config_names"]: e["config_value"] for e in entries}
            overrides = {
                e["config_names"]: e["config_value"]
                for e in entries
                if e["config_source"] == DYNAMIC_TOPIC_CONFIG and not e["is_sensitive"]
            }
            partitions, replicas = shapes[name]
            states[name] = TopicState(name, partitions, replicas, configs, overrides)
    return states


async def apply(admin: AIOKafkaAdminClient, plan: Plan) -> None:
    """Create the missing topics and reconfigure the others; a topic another run created
    in the meantime is fine (creation is idempotent)."""
    if plan.create:
        response = await admin.create_topics(
            [
                NewTopic(t.name, t.partitions, t.replication_factor, topic_configs=dict(t.configs))
                for t in plan.create
            ]
        )
        for name, code, *_ in response.topic_errors:
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise KafkaError(f"creating topic {name} failed with error {code}")
        await _until_created(admin, [t.name for t in plan.create])
    if plan.reconfigure:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, change.topic, configs=dict(change.configs))
            for change in plan.reconfigure
        ]
        for response in await admin.alter_configs(resources):
            for code, message, _, name in response.resources:
                if code != 0:
                    raise KafkaError(f"reconfiguring topic {name} failed ({code}): {message}")


async def _until_created(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Return once the cluster reads back every topic just created, each partition with a
    leader: a run right after this one then plans nothing, and services find them."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(KafkaError),
        wait=wait_exponential(multiplier=0.05, max=2),
        stop=stop_after_delay(CREATED_DEADLINE_S),
        reraise=True,
    ):
        with attempt:
            await check_leaders(admin, names)
            unseen = set(names) - (await read_state(admin, names)).keys()
            if unseen:
                raise KafkaError(f"created topics not read back yet: {sorted(unseen)[:3]}")
