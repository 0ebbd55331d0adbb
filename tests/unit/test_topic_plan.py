"""Topic provisioning's decisions, from declared topics and described cluster state."""

from __future__ import annotations

import dataclasses
import re

import pytest

from services.topics.admin import declared_topics
from services.topics.plan import (
    DesiredTopic,
    TopicState,
    check_durability,
    describe,
    found_source_topics,
    plan,
    with_retention,
)
from shared.settings import DAY_MS, KafkaSettings, RetentionSection
from shared.source_topics import source_topic_configs, source_topic_pattern

PRODUCTION = KafkaSettings(partitions=12, replication_factor=3, min_insync_replicas=2)


def desired() -> list[DesiredTopic]:
    return with_retention(declared_topics(PRODUCTION), events_days=14, dlq_days=30)


def as_created(topic: DesiredTopic, **configs: str) -> TopicState:
    values = {**topic.configs, **configs}
    return TopicState(topic.name, topic.partitions, topic.replication_factor, values, values)


def test_production_topics_have_three_replicas_two_in_sync_and_a_compacted_aggregates() -> None:
    topics = {t.name: t for t in desired()}

    assert len(topics) == 12  # six topics and their dead-letter companions
    assert all(t.replication_factor == 3 for t in topics.values())
    assert all(t.configs["min.insync.replicas"] == "2" for t in topics.values())
    assert topics["aggregates.v1"].configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in topics["aggregates.v1"].configs
    assert topics["reports.inbound.v1"].partitions == 12
    assert topics["reports.inbound.v1"].configs["retention.ms"] == str(14 * DAY_MS)
    assert topics["reports.inbound.v1.dlq"].configs["retention.ms"] == str(30 * DAY_MS)
    assert topics["reports.inbound.v1.dlq"].partitions == PRODUCTION.dlq_partitions


def test_an_empty_cluster_gets_every_topic_created() -> None:
    decided = plan(desired(), {})

    assert [t.name for t in decided.create] == [t.name for t in desired()]
    assert not decided.reconfigure
    assert not decided.problems


def test_a_cluster_already_provisioned_is_left_alone() -> None:
    topics = desired()
    decided = plan(topics, {t.name: as_created(t) for t in topics})

    assert not decided.changes
    assert decided.in_sync == tuple(t.name for t in topics)


def test_a_drifted_setting_is_set_back_and_other_overrides_are_kept() -> None:
    topics = desired()
    actual = {t.name: as_created(t) for t in topics}
    inbound = topics[0]
    actual[inbound.name] = as_created(
        inbound, **{"retention.ms": "3600000", "max.message.bytes": "2097152"}
    )

    decided = plan(topics, actual)

    assert len(decided.reconfigure) == 1
    change = decided.reconfigure[0]
    assert change.topic == inbound.name
    assert change.changes == {"retention.ms": ("3600000", str(14 * DAY_MS))}
    assert change.configs["max.message.bytes"] == "2097152"
    assert change.configs["retention.ms"] == str(14 * DAY_MS)
    assert "configure reports.inbound.v1: retention.ms 3600000 -> 1209600000" in describe(decided)


def test_partitions_and_replication_are_reported_never_changed() -> None:
    topics = desired()
    actual = {t.name: as_created(t) for t in topics}
    received = next(t for t in topics if t.name == "reports.received.v1")
    actual[received.name] = TopicState(received.name, 6, 1, dict(received.configs))

    decided = plan(topics, actual)

    assert not decided.create
    assert len(decided.problems) == 2
    assert "6 partitions, 12 wanted" in decided.problems[0]
    assert "replication factor 1, 3 wanted" in decided.problems[1]


def test_more_partitions_than_declared_is_only_a_note() -> None:
    topics = desired()
    actual = {t.name: as_created(t) for t in topics}
    first = topics[0]
    actual[first.name] = TopicState(first.name, 24, 3, dict(first.configs))

    decided = plan(topics, actual)

    assert not decided.problems
    assert any("24 partitions" in note for note in decided.notes)


@pytest.mark.parametrize(
    ("replicas", "min_isr", "brokers", "problem", "note"),
    [
        (3, 2, 3, None, None),
        (3, 2, 1, "needs at least 3 brokers", None),
        (3, 4, 5, "above the replication factor", None),
        (3, 3, 3, None, "one broker down stops every write"),
        (1, None, 1, None, "production uses 3"),
        (3, 1, 3, None, "may live on one broker only"),
    ],
)
def test_durability_settings_are_checked_against_the_cluster(
    replicas: int, min_isr: int | None, brokers: int, problem: str | None, note: str | None
) -> None:
    problems, notes = check_durability(replicas, min_isr, brokers)

    assert [p for p in problems if problem and problem in p] == problems
    assert bool(problems) == (problem is not None)
    if note is None:
        assert notes == []
    else:
        assert any(note in n for n in notes)


@pytest.mark.parametrize(
    ("topic", "found"),
    [
        ("t1_reports.inbound.v1.motcua-a", True),
        ("t1_reports.outcomes.v1.motcua-a", True),
        ("t1_reports.outcomes.v1.a", True),
        ("t1_reports.inbound.v1", False),  # the system's own
        ("t1_reports.outcomes.v1.dlq", False),  # its dead letters
        ("t1_reports.received.v1.motcua-a", False),  # no source has its own copy of it
        ("t1_reports.outcomes.v1.motcua-a.dlq", False),
        ("reports.outcomes.v1.motcua-a", False),  # another namespace
        ("t1Xreports.outcomes.v1.a", False),  # the namespace is escaped, not a regex
    ],
)
def test_each_sources_topics_are_found_by_name_and_nothing_else(topic: str, found: bool) -> None:
    assert bool(re.match(source_topic_pattern(KafkaSettings(namespace="t1_")), topic)) is found


BROKER_DEFAULTS = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}


def source_topic(
    name: str, overrides: dict[str, str], partitions: int = 3, replicas: int = 3
) -> TopicState:
    """A topic as the cluster describes it: the broker's defaults under its own values."""
    return TopicState(name, partitions, replicas, BROKER_DEFAULTS | overrides, overrides)


def test_sources_topics_found_get_the_event_retention_and_min_isr_of_the_others() -> None:
    configs = source_topic_configs(PRODUCTION, RetentionSection(events_days=14))
    # As `sources create` made them before: min ISR only, the broker's 7 days of retention.
    inbound = source_topic("reports.inbound.v1.motcua-a", {"min.insync.replicas": "2"})
    outcomes = source_topic("reports.outcomes.v1.motcua-a", {"retention.ms": "3600000"})
    actual = {t.name: as_created(t) for t in desired()} | {
        inbound.name: inbound,
        outcomes.name: outcomes,
    }

    found = found_source_topics([inbound, outcomes], PRODUCTION.replication_factor, configs)
    decided = plan([*desired(), *found], actual)

    assert not decided.create
    assert not decided.problems
    changed = {c.topic: c for c in decided.reconfigure}
    assert set(changed) == {inbound.name, outcomes.name}
    assert changed[inbound.name].changes == {"retention.ms": (str(7 * DAY_MS), str(14 * DAY_MS))}
    assert changed[outcomes.name].changes == {
        "retention.ms": ("3600000", str(14 * DAY_MS)),
        "min.insync.replicas": (None, "2"),
    }
    assert changed[outcomes.name].configs == {
        "cleanup.policy": "delete",
        "retention.ms": str(14 * DAY_MS),
        "min.insync.replicas": "2",
    }
    assert not plan(found, {t.name: as_created(t) for t in found}).changes


def test_a_sources_topic_keeps_its_partitions_and_its_replication_is_only_reported() -> None:
    configs = source_topic_configs(PRODUCTION, RetentionSection())
    few = source_topic("reports.inbound.v1.a", configs, partitions=1, replicas=1)

    decided = plan(found_source_topics([few], 3, configs), {few.name: few})

    assert not decided.changes
    assert decided.problems == (
        "reports.inbound.v1.a: replication factor 1, 3 wanted; reassign its partitions "
        "(kafka-reassign-partitions) to change it",
    )


def test_the_sources_topics_found_are_counted_in_the_output() -> None:
    decided = plan([], {})
    shown = dataclasses.replace(decided, source_topics=("reports.inbound.v1.a",))

    assert describe(shown)[0] == "found 1 topic(s) of sources by name"
    assert not any("sources" in line for line in describe(decided))
