"""Fixtures' parts for tests on a three-node Kafka cluster: the cluster itself (started from
the same jars as the local broker, on free ports, state under the test's folder), a stack
whose services may run as several instances in one consumer group, and admin queries
about partitions and groups."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from devstack.cluster import ClusterSpec, KafkaCluster
from devstack.paths import Layout
from tests.system.stack import PORT_SETTING, SERVICES, Stack, free_port


def free_ports(count: int) -> tuple[int, ...]:
    """Ports free now, all different (held together while chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return tuple(s.getsockname()[1] for s in sockets)
    finally:
        for s in sockets:
            s.close()


def in_thread(call: Any, *args: Any) -> Any:
    """Runs a blocking devstack call (which may run its own event loop) off the test's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call, *args).result()


@contextmanager
def local_cluster(state: Path) -> Iterator[KafkaCluster]:
    ports = free_ports(6)
    spec = ClusterSpec(broker_ports=ports[:3], controller_ports=ports[3:])
    cluster = KafkaCluster(Layout.from_env(os.environ), state, spec)
    try:
        in_thread(cluster.start)
        yield cluster
    finally:
        in_thread(cluster.stop)


def instance_service(name: str) -> str:
    """`aggregation-2` → `aggregation` (service names have no hyphen)."""
    return name.rsplit("-", 1)[0]


@dataclass
class ScaledStack(Stack):
    """A stack where some services run more than once, e.g. {"aggregation": 2}: the
    instances share the service's consumer group, schema and settings, each with its own
    port and name (`aggregation`, `aggregation-2`)."""

    instances: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        for service, count in self.instances.items():
            for number in range(2, count + 1):
                self.ports[f"{service}-{number}"] = free_port()

    @property
    def names(self) -> list[str]:
        extra = [name for name in self.ports if name not in SERVICES]
        return [*SERVICES, *extra]

    def env(self, service: str) -> dict[str, str]:
        base = instance_service(service)
        env = super().env(base)
        env[PORT_SETTING[base]] = str(self.ports[service])
        env["BAOCAO_INSTANCE"] = service
        return env

    def module(self, service: str) -> str:
        return instance_service(service)

    def start_all(self) -> None:
        for name in self.names:
            self.start(name)
        for name in self.names:
            self.wait_ready(name)

    def counter(self, name: str, metric: str, **labels: str) -> float:
        """One sample of a service instance's /metrics (0 when absent)."""
        text = httpx.get(f"{self.url(name)}/metrics", timeout=5).text
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        prefix = f"{metric}{{{wanted}}} " if labels else f"{metric} "
        for line in text.splitlines():
            if line.startswith(prefix):
                return float(line.removeprefix(prefix))
        return 0.0


@dataclass(frozen=True)
class PartitionState:
    topic: str
    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


class ClusterView:
    """Admin queries on the cluster, for assertions."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap

    async def _admin(self) -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        await admin.start()
        return admin

    async def partitions(self, topics: list[str]) -> list[PartitionState]:
        admin = await self._admin()
        try:
            described = await admin.describe_topics(topics)
        finally:
            await admin.close()
        return [
            PartitionState(
                t["topic"], p["partition"], p["leader"], tuple(p["replicas"]), tuple(p["isr"])
            )
            for t in described
            for p in t["partitions"]
        ]

    async def topic_config(self, topic: str, key: str) -> str | None:
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        admin = await self._admin()
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)]
            )
        finally:
            await admin.close()
        for response in responses:
            for resource in response.to_object()["resources"]:
                for entry in resource["config_entries"]:
                    if entry["config_names"] == key:
                        return str(entry["config_value"])
        return None

    async def _describe_group(self, group: str) -> dict[str, Any]:
        admin = await self._admin()
        try:
            responses = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        described: dict[str, Any] = responses[0].to_object()["groups"][0]
        return described

    async def group(self, group: str) -> tuple[str, int]:
        """(state, number of members) of a consumer group."""
        described = await self._describe_group(group)
        return described["state"], len(described["members"])

    async def assignments(self, group: str, topic: str) -> dict[str, frozenset[int]] | None:
        """Each member of a stable consumer group (by member id, which a member keeps
        through rebalances) → its partitions of `topic`; None while the group rebalances."""
        described = await self._describe_group(group)
        if described["state"] != "Stable":
            return None
        held = {}
        for member in described["members"]:
            assignment = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
            partitions = (tp.partition for tp in assignment.partitions() if tp.topic == topic)
            held[member["member_id"]] = frozenset(partitions)
        return held

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """The offset the group last committed on each partition of `topic` it has
        committed on."""
        admin = await self._admin()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}

    async def lag(self, group: str, topic: str) -> int:
        """Records of `topic` the group has not committed yet, over every partition."""
        committed = await self.committed(group, topic)
        ends = await self.end_offsets(topic)
        return sum(end - committed.get(p, 0) for p, end in ends.items())

    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Each partition of `topic` → the offset its next record will get."""
        # Described by the cluster: a consumer that subscribes to nothing has no metadata of
        # the topic, and would find no partition at all.
        partitions = [TopicPartition(topic, p.partition) for p in await self.partitions([topic])]
        assert partitions, f"{topic} has no partitions"
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            await consumer.start()
            ends = await consumer.end_offsets(partitions)
        finally:
            await consumer.stop()
        return {tp.partition: end for tp, end in ends.items()}
