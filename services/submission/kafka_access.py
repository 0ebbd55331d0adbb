"""Each source's own Kafka topics and the ACLs that bind its principal to them.

A Kafka consumer cannot see which principal produced a record, so the binding of a
sender to its reports comes from the broker: with sender authentication on, source `s`
writes to `reports.inbound.v1.s`, the only topic its principal may WRITE, and reads its
verdicts from `reports.outcomes.v1.s`, the only topic it may READ, with consumer groups
named `s.<anything>`: the prefix ends with the dot, which no source name holds, so source
`xa-1` cannot join `xa-10.outcomes`, and no source but one named `baocao` (reserved) would
match the system's own groups. Submission reads every `reports.inbound.v1.<source>` topic
by pattern and takes the sender from the topic's name (`shared.source_topics` names them);
what a record claims (`source`, `unit`) is then checked against that sender's registration.
The topics get the retention and `min.insync.replicas` of the system's own. The shared
`reports.inbound.v1` stays for the local run without authentication, and no source may
write it.

ACLs go through the Kafka admin protocol (CreateAcls and DeleteAcls v1, which every
broker since 2.0 serves); aiokafka has the requests but no public method for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest

from shared.kafka_client import client_options
from shared.logging import get_logger
from shared.settings import KafkaSettings, RetentionSection
from shared.source_topics import inbound_topic, outcomes_topic, source_topic_configs

log = get_logger(__name__)

TOPIC_ALREADY_EXISTS = 36


class ResourceType(IntEnum):
    TOPIC = 2
    GROUP = 3


class PatternType(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    DESCRIBE = 8


ALLOW = 3


@dataclass(frozen=True, slots=True)
class Acl:
    """One ALLOW rule: `principal` may do `operation` on the resource, from any host."""

    resource_type: ResourceType
    resource: str
    pattern: PatternType
    principal: str
    operation: Operation


def group_prefix(kafka: KafkaSettings, source: str) -> str:
    """The start of every consumer group a source may use: its name and a dot."""
    return f"{kafka.topic(source)}."


def group_collision(kafka: KafkaSettings, source: str) -> str | None:
    """Why `source`'s groups would overlap the system's own (`kafka.group`), or None."""
    own, system = group_prefix(kafka, source), kafka.group("")
    if own.startswith(system) or system.startswith(own):
        return f"source {source}'s consumer groups {own}* would overlap the system's {system}*"
    return None


def source_acls(kafka: KafkaSettings, source: str, principal: str) -> list[Acl]:
    """What a source's principal may do: write its inbound topic, read its outcomes."""
    user = f"User:{principal}"
    inbound = inbound_topic(kafka, source)
    outcomes = outcomes_topic(kafka, source)
    groups = group_prefix(kafka, source)
    return [
        Acl(ResourceType.TOPIC, inbound, PatternType.LITERAL, user, Operation.WRITE),
        Acl(ResourceType.TOPIC, inbound, PatternType.LITERAL, user, Operation.DESCRIBE),
        Acl(ResourceType.TOPIC, outcomes, PatternType.LITERAL, user, Operation.READ),
        Acl(ResourceType.TOPIC, outcomes, PatternType.LITERAL, user, Operation.DESCRIBE),
        Acl(ResourceType.GROUP, groups, PatternType.PREFIXED, user, Operation.READ),
    ]


def former_acls(kafka: KafkaSettings, source: str, principal: str) -> list[Acl]:
    """ACLs granted by earlier versions and no longer wanted: groups prefixed by the bare
    name let source `xa-1` read as `xa-10.outcomes`."""
    bare = kafka.topic(source)
    return [
        Acl(ResourceType.GROUP, bare, PatternType.PREFIXED, f"User:{principal}", Operation.READ)
    ]


def source_topics(
    kafka: KafkaSettings, source: str, partitions: int, retention: RetentionSection
) -> list[NewTopic]:
    """A source's two topics, with the settings topic provisioning holds them to."""
    configs = source_topic_configs(kafka, retention)
    return [
        NewTopic(name, partitions, kafka.replication_factor, topic_configs=configs)
        for name in (inbound_topic(kafka, source), outcomes_topic(kafka, source))
    ]


async def create_topics(admin: AIOKafkaAdminClient, topics: list[NewTopic]) -> list[str]:
    """Create the topics that do not exist yet; returns those created."""
    existing = set(await admin.list_topics())
    missing = [t for t in topics if t.name not in existing]
    if not missing:
        return []
    response = await admin.create_topics(missing)
    created = []
    for name, code, *_ in response.topic_errors:
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise KafkaError(f"creating topic {name} failed with error {code}")
        if code == 0:
            created.append(name)
    return created


async def create_acls(admin: AIOKafkaAdminClient, acls: list[Acl]) -> None:
    for acl in acls:
        request = CreateAclsRequest(
            acl.resource_type, acl.resource, acl.pattern, acl.principal, "*", acl.operation, ALLOW
        )
        response = await admin._send_request(request)
        for code, message in response.creation_responses:
            if code:
                raise KafkaError(f"creating ACL {acl} failed with error {code}: {message}")


async def delete_acls(admin: AIOKafkaAdminClient, acls: list[Acl]) -> int:
    """Remove these ALLOW rules where they exist; returns how many the broker removed."""
    removed = 0
    for acl in acls:
        request = DeleteAclsRequest(
            acl.resource_type, acl.resource, acl.pattern, acl.principal, "*", acl.operation, ALLOW
        )
        response = await admin._send_request(request)
        for code, message, matching in response.filter_responses:
            if code:
                raise KafkaError(f"deleting ACL {acl} failed with error {code}: {message}")
            removed += len(matching)
    return removed


async def provision_source(
    kafka: KafkaSettings,
    source: str,
    principal: str,
    partitions: int,
    retention: RetentionSection,
) -> tuple[list[str], list[Acl]]:
    """Create a source's two topics and its ACLs (idempotent), and remove the ACLs earlier
    versions granted in their place; needs an admin's login."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        topics = source_topics(kafka, source, partitions, retention)
        created = await create_topics(admin, topics)
        acls = source_acls(kafka, source, principal)
        await create_acls(admin, acls)
        await delete_acls(admin, former_acls(kafka, source, principal))
    finally:
        await admin.close()
    return created, acls


async def remove_source_access(kafka: KafkaSettings, source: str, principal: str) -> int:
    """Remove what `provision_source` (and earlier versions) granted `principal`; the
    topics stay, with whatever they hold. Returns how many ACLs the broker removed."""
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        acls = [*source_acls(kafka, source, principal), *former_acls(kafka, source, principal)]
        return await delete_acls(admin, acls)
    finally:
        await admin.close()


class SourceTopics:
    """Makes sure each sender's outcome topic exists before a verdict is queued for it: the
    outbox relays in order, and a message to a missing topic would hold every later one."""

    def __init__(self, kafka: KafkaSettings, partitions: int, retention: RetentionSection) -> None:
        self._kafka = kafka
        self._partitions = partitions
        self._retention = retention
        self._known: set[str] = set()

    async def ensure(self, senders: set[str]) -> None:
        missing = senders - self._known
        if not missing:
            return
        admin = AIOKafkaAdminClient(**client_options(self._kafka))
        await admin.start()
        try:
            topics = [
                topic
                for source in missing
                for topic in source_topics(self._kafka, source, self._partitions, self._retention)
            ]
            created = await create_topics(admin, topics)
        finally:
            await admin.close()
        if created:
            log.info("source_topics_created", topics=created)
        self._known |= missing
