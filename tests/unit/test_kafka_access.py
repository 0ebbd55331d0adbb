"""Each source's Kafka topics and ACLs: the pattern submission reads takes every source's
inbound topic and nothing else, a source's principal gets only its own two topics, and they
are created with the settings topic provisioning holds them to."""

from __future__ import annotations

import pytest

from services.submission.kafka_access import (
    Operation,
    PatternType,
    ResourceType,
    group_collision,
    source_acls,
    source_topics,
)
from services.topics.plan import TopicState, found_source_topics, plan
from shared.settings import DAY_MS, KafkaSettings, RetentionSection
from shared.source_topics import inbound_pattern, sender_of, source_topic_configs

pytestmark = pytest.mark.unit

KAFKA = KafkaSettings(namespace="t1_")


@pytest.mark.parametrize(
    ("topic", "sender"),
    [
        ("t1_reports.inbound.v1.motcua-a", "motcua-a"),
        ("t1_reports.inbound.v1.a", "a"),
        ("t1_reports.inbound.v1", None),
        ("t1_reports.inbound.v1.dlq", None),
        ("t1_reports.inbound.v1.motcua-a.dlq", None),
        ("reports.inbound.v1.motcua-a", None),  # another namespace
        ("t1_reports.outcomes.v1.motcua-a", None),
        ("t1_reports.inbound.v1.Motcua", None),
        ("t1Xreports.inbound.v1.a", None),  # the namespace is escaped, not a regex
    ],
)
def test_the_sender_is_read_from_its_own_inbound_topic_only(topic: str, sender: str | None) -> None:
    assert sender_of(KAFKA, topic) == sender
    assert inbound_pattern(KAFKA).startswith("^t1_reports")


def test_a_source_may_write_its_inbound_topic_and_read_its_outcomes_only() -> None:
    acls = {
        (a.resource_type, a.resource, a.pattern, a.operation)
        for a in source_acls(KAFKA, "motcua-a", "user-a")
    }
    inbound, outcomes = "t1_reports.inbound.v1.motcua-a", "t1_reports.outcomes.v1.motcua-a"
    topic, literal = ResourceType.TOPIC, PatternType.LITERAL
    assert acls == {
        (topic, inbound, literal, Operation.WRITE),
        (topic, inbound, literal, Operation.DESCRIBE),
        (topic, outcomes, literal, Operation.READ),
        (topic, outcomes, literal, Operation.DESCRIBE),
        (ResourceType.GROUP, "t1_motcua-a.", PatternType.PREFIXED, Operation.READ),
    }
    assert {a.principal for a in source_acls(KAFKA, "motcua-a", "user-a")} == {"User:user-a"}


def test_a_sources_topics_are_created_as_topic_provisioning_holds_them() -> None:
    kafka = KafkaSettings(replication_factor=3, min_insync_replicas=2)
    retention = RetentionSection(events_days=21)

    created = source_topics(kafka, "motcua-a", 3, retention)

    assert [t.name for t in created] == [
        "reports.inbound.v1.motcua-a",
        "reports.outcomes.v1.motcua-a",
    ]
    assert all(t.topic_configs["retention.ms"] == str(21 * DAY_MS) for t in created)
    assert all(t.topic_configs["min.insync.replicas"] == "2" for t in created)
    states = [
        TopicState(t.name, t.num_partitions, t.replication_factor, t.topic_configs, t.topic_configs)
        for t in created
    ]
    wanted = found_source_topics(states, 3, source_topic_configs(kafka, retention))
    assert not plan(wanted, {s.name: s for s in states}).changes


def groups_of(source: str, kafka: KafkaSettings = KAFKA) -> str:
    (acl,) = [a for a in source_acls(kafka, source, "u") if a.resource_type is ResourceType.GROUP]
    assert acl.pattern is PatternType.PREFIXED
    return acl.resource


@pytest.mark.parametrize(
    ("source", "group", "allowed"),
    [
        ("xa-1", "t1_xa-1.outcomes", True),
        ("xa-1", "t1_xa-10.outcomes", False),  # another source whose name it begins
        ("xa-1", "t1_xa-1", False),
        ("b", "t1_baocao.submission", False),  # the system's own groups
        ("bao", "t1_baocao.validation", False),
    ],
)
def test_a_source_may_use_only_the_groups_its_own_name_and_a_dot_begin(
    source: str, group: str, allowed: bool
) -> None:
    assert group.startswith(groups_of(source)) is allowed


@pytest.mark.parametrize(
    ("kafka", "source", "collides"),
    [
        (KafkaSettings(), "baocao", True),
        (KafkaSettings(), "bao", False),
        (KafkaSettings(namespace="t1_"), "baocao", True),
        (KafkaSettings(group_namespace="replay-"), "replay-baocao", True),
        (KafkaSettings(group_namespace="replay-"), "baocao", False),
        (KafkaSettings(group_namespace="r."), "r", True),  # a dotted group namespace
    ],
)
def test_a_source_whose_groups_would_cover_the_systems_is_refused(
    kafka: KafkaSettings, source: str, collides: bool
) -> None:
    assert (group_collision(kafka, source) is not None) is collides
