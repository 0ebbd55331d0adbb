"""Each source's Kafka topics and ACLs: the pattern submission reads takes every source's
inbound topic and nothing else, and a source's principal gets only its own two topics."""

from __future__ import annotations

import pytest

from services.submission.kafka_access import (
    Operation,
    PatternType,
    ResourceType,
    inbound_pattern,
    sender_of,
    source_acls,
)
from shared.settings import KafkaSettings

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
        (ResourceType.GROUP, "t1_motcua-a", PatternType.PREFIXED, Operation.READ),
    }
    assert {a.principal for a in source_acls(KAFKA, "motcua-a", "user-a")} == {"User:user-a"}
