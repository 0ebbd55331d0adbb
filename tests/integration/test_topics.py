"""Topic provisioning against the real broker: creates, then changes nothing, then sets a
drifted setting back without touching the topic's other settings; each source's own topics
are found by name and held to the same settings. The step every service
runs at start (`shared.topics.ensure_topics`) creates each topic and its `.dlq` companion
once, with the configured partitions, `aggregates.v1` alone compacted; run again, it
creates nothing."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.submission.kafka_access import SourceTopics
from services.topics.admin import read_state
from services.topics.cli import provision
from services.topics.settings import TopicsSettings
from shared.settings import DAY_MS, KafkaSettings, RetentionSection
from shared.source_topics import inbound_topic, outcomes_topic
from shared.topics import ensure_topics
from tests.harness import eventually


async def test_provisioning_is_idempotent_and_repairs_drift(
    kafka_bootstrap: str, namespace: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, namespace=namespace, partitions=3)
    settings = TopicsSettings(kafka=kafka)
    inbound = f"{namespace}reports.inbound.v1"

    first = await provision(settings, dry_run=False)
    again = await provision(settings, dry_run=False)

    assert len(first.create) == 12
    assert not first.problems
    assert not again.changes
    assert len(again.in_sync) == 12

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        drift = {"retention.ms": "60000", "max.message.bytes": "2097152"}
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, inbound, configs=drift)]
        )

        async def drifted() -> bool:
            # A configuration change reaches the broker's metadata a moment after it is made.
            state = (await read_state(admin, [inbound]))[inbound]
            return state.configs["retention.ms"] == "60000"

        await eventually(drifted)
        dry = await provision(settings, dry_run=True)
        assert [c.topic for c in dry.reconfigure] == [inbound]

        repaired = await provision(settings, dry_run=False)

        assert [c.topic for c in repaired.reconfigure] == [inbound]
        state = (await read_state(admin, [inbound]))[inbound]
        assert state.configs["retention.ms"] == str(14 * DAY_MS)
        assert state.configs["max.message.bytes"] == "2097152"  # an operator's own setting
        assert state.partitions == 3
    finally:
        await admin.close()
    assert not (await provision(settings, dry_run=False)).changes


async def test_each_sources_topics_are_found_and_given_the_events_retention(
    kafka_bootstrap: str, namespace: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, namespace=namespace, partitions=3)
    settings = TopicsSettings(kafka=kafka)
    # Created as earlier versions of submission did: no retention of their own, so the
    # broker's default (7 days) applies, or one an operator set by hand.
    drifted: dict[str, dict[str, str]] = {
        inbound_topic(kafka, "motcua-a"): {"retention.ms": "3600000"},
        outcomes_topic(kafka, "motcua-a"): {},
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, 2, 1, topic_configs=configs) for name, configs in drifted.items()]
        )
        # Created as submission creates them now.
        await SourceTopics(kafka, 2, RetentionSection()).ensure({"motcua-b"})
        current = {inbound_topic(kafka, "motcua-b"), outcomes_topic(kafka, "motcua-b")}

        async def listed() -> bool:
            names = set(await admin.list_topics())
            return set(drifted) | current <= names

        await eventually(listed)
        first = await provision(settings, dry_run=False)

        assert not first.problems
        assert set(first.source_topics) == set(drifted) | current
        assert {c.topic for c in first.reconfigure} == set(drifted)
        assert current <= set(first.in_sync)

        async def reconfigured() -> bool:
            # A configuration change reaches the broker's metadata a moment after it is made.
            states = await read_state(admin, [*drifted, *current])
            return {s.configs["retention.ms"] for s in states.values()} == {str(14 * DAY_MS)}

        await eventually(reconfigured)
        states = await read_state(admin, [*drifted, *current])
    finally:
        await admin.close()
    assert {s.partitions for s in states.values()} == {2}  # as created, not the declared 3
    again = await provision(settings, dry_run=False)
    assert not again.changes
    assert set(again.source_topics) <= set(again.in_sync)
    assert len(again.source_topics) == 4


BASE_TOPICS = (
    "reports.inbound.v1",
    "reports.received.v1",
    "reports.outcomes.v1",
    "reports.accepted.v1",
    "aggregates.v1",
    "hub.sync.v1",
)


async def test_the_topics_a_service_ensures_at_start_are_created_once_as_configured(
    kafka_bootstrap: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=kafka_bootstrap, namespace=namespace, partitions=3, dlq_partitions=2
    )
    expected = {f"{namespace}{name}": 3 for name in BASE_TOPICS} | {
        f"{namespace}{name}.dlq": 2 for name in BASE_TOPICS
    }
    requested: list[list[str]] = []  # the names of each creation asked of the broker
    create = AIOKafkaAdminClient.create_topics

    async def recording(admin: AIOKafkaAdminClient, topics: list[NewTopic], **kw: Any) -> Any:
        requested.append([t.name for t in topics])
        return await create(admin, topics, **kw)

    monkeypatch.setattr(AIOKafkaAdminClient, "create_topics", recording)

    first = await ensure_topics(kafka)
    assert sorted(first) == sorted(expected)
    assert [sorted(names) for names in requested] == [sorted(expected)]
    again = await ensure_topics(kafka)
    assert again == []
    assert len(requested) == 1  # the second run found every topic and asked for none
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        states = await read_state(admin, expected)
    finally:
        await admin.close()
    assert {name: state.partitions for name, state in states.items()} == expected
    compacted = {n for n, s in states.items() if s.configs["cleanup.policy"] == "compact"}
    assert compacted == {f"{namespace}aggregates.v1"}
