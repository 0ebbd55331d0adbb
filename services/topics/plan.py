"""What provisioning should do: the desired topics compared with what the cluster holds.

Pure: no client, no I/O. It creates what is missing and brings topic settings to the
declared values; it never changes a topic's partition count or replication factor by
itself. More partitions would move keys (`regime|period`) to other partitions while older
records of the same key wait in the old one, breaking the one-owner-per-scope ordering the
design relies on; a new replication factor needs a partition reassignment. Both are
reported for an operator to plan.

Each source's own topics (`shared.source_topics`) are submission's to create, with the
partitions it is configured for; found on the cluster, they are held to the settings of the
system's topics like the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.settings import DAY_MS

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class DesiredTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str]


@dataclass(frozen=True)
class TopicState:
    """One topic as the cluster describes it."""

    name: str
    partitions: int
    replication_factor: int
    configs: Mapping[str, str] = field(default_factory=dict)
    """Effective values, whatever their source (topic, broker or default)."""
    overrides: Mapping[str, str] = field(default_factory=dict)
    """Values set on the topic itself: kept when the topic is reconfigured."""


@dataclass(frozen=True)
class Reconfigure:
    topic: str
    changes: Mapping[str, tuple[str | None, str]]
    """Setting → (current value, wanted value)."""
    configs: Mapping[str, str]
    """Every setting to hold on the topic afterwards (Kafka's AlterConfigs replaces them
    all): its current overrides with the wanted values on top."""


@dataclass(frozen=True)
class Plan:
    create: tuple[DesiredTopic, ...] = ()
    reconfigure: tuple[Reconfigure, ...] = ()
    in_sync: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    """What provisioning will not fix by itself: the run fails and says why."""
    notes: tuple[str, ...] = ()
    source_topics: tuple[str, ...] = ()
    """Each source's own topics found on the cluster (decided on like the others)."""

    @property
    def changes(self) -> bool:
        return bool(self.create or self.reconfigure)


def with_retention(
    topics: Iterable[DesiredTopic], events_days: int, dlq_days: int
) -> list[DesiredTopic]:
    """Adds `retention.ms` to every topic that deletes old records; compacted topics keep
    the latest record of each key for good (that is what they are for)."""
    result = []
    for topic in topics:
        configs = dict(topic.configs)
        if configs.get("cleanup.policy", "delete") == "delete":
            days = dlq_days if topic.name.endswith(DLQ_SUFFIX) else events_days
            configs.setdefault("cleanup.policy", "delete")
            configs["retention.ms"] = str(days * DAY_MS)
        result.append(DesiredTopic(topic.name, topic.partitions, topic.replication_factor, configs))
    return result


def found_source_topics(
    found: Iterable[TopicState], replication_factor: int, configs: Mapping[str, str]
) -> list[DesiredTopic]:
    """Each source's topics as found, to be held to `configs` and the cluster's replication
    factor. Their partition count is taken as it is: submission chose it, and changing it
    is not provisioning's to do for any topic. Only topics found are returned, so a source's
    topic is never created here."""
    return [
        DesiredTopic(state.name, state.partitions, replication_factor, dict(configs))
        for state in found
    ]


def check_durability(
    replication_factor: int, min_insync_replicas: int | None, brokers: int
) -> tuple[list[str], list[str]]:
    """(problems, notes) of the settings themselves, before any topic is looked at."""
    problems, notes = [], []
    if replication_factor > brokers:
        problems.append(
            f"replication factor {replication_factor} needs at least {replication_factor} "
            f"brokers; the cluster has {brokers}"
        )
    if min_insync_replicas is not None and min_insync_replicas > replication_factor:
        problems.append(
            f"min.insync.replicas {min_insync_replicas} is above the replication factor "
            f"{replication_factor}: every write with acks=all would be refused"
        )
    if replication_factor < 3:
        notes.append(
            f"replication factor {replication_factor}: losing a broker loses or blocks "
            "data; production uses 3"
        )
    if min_insync_replicas is None or min_insync_replicas < 2:
        notes.append(
            "min.insync.replicas below 2: an acknowledged write may live on one broker only"
        )
    elif min_insync_replicas == replication_factor:
        notes.append(
            f"min.insync.replicas equals the replication factor ({replication_factor}): "
            "one broker down stops every write"
        )
    return problems, notes


def plan(desired: Iterable[DesiredTopic], actual: Mapping[str, TopicState]) -> Plan:
    create: list[DesiredTopic] = []
    reconfigure: list[Reconfigure] = []
    in_sync: list[str] = []
    problems: list[str] = []
    notes: list[str] = []
    for topic in desired:
        state = actual.get(topic.name)
        if state is None:
            create.append(topic)
            continue
        if state.partitions < topic.partitions:
            problems.append(
                f"{topic.name}: {state.partitions} partitions, {topic.partitions} wanted; "
                "adding partitions moves keys, so drain the pipeline first and add them by hand"
            )
        elif state.partitions > topic.partitions:
            notes.append(
                f"{topic.name}: {state.partitions} partitions, more than the "
                f"{topic.partitions} declared (partitions are never removed)"
            )
        if state.replication_factor != topic.replication_factor:
            problems.append(
                f"{topic.name}: replication factor {state.replication_factor}, "
                f"{topic.replication_factor} wanted; reassign its partitions "
                "(kafka-reassign-partitions) to change it"
            )
        changes = {
            key: (state.configs.get(key), value)
            for key, value in topic.configs.items()
            if state.configs.get(key) != value
        }
        if changes:
            configs = {**state.overrides, **topic.configs}
            reconfigure.append(Reconfigure(topic.name, changes, configs))
        else:
            in_sync.append(topic.name)
    return Plan(tuple(create), tuple(reconfigure), tuple(in_sync), tuple(problems), tuple(notes))


def describe(plan: Plan) -> list[str]:
    """One line per decision, for the operator running the command."""
    lines = []
    if plan.source_topics:
        lines.append(f"found {len(plan.source_topics)} topic(s) of sources by name")
    for topic in plan.create:
        settings = " ".join(f"{k}={v}" for k, v in sorted(topic.configs.items()))
        lines.append(
            f"create {topic.name}: {topic.partitions} partitions x "
            f"{topic.replication_factor} replicas; {settings}"
        )
    for change in plan.reconfigure:
        shown = ", ".join(
            f"{key} {old if old is not None else '(unset)'} -> {new}"
            for key, (old, new) in sorted(change.changes.items())
        )
        lines.append(f"configure {change.topic}: {shown}")
    lines += [f"in sync {name}" for name in plan.in_sync]
    lines += [f"note: {note}" for note in plan.notes]
    lines += [f"problem: {problem}" for problem in plan.problems]
    return lines
