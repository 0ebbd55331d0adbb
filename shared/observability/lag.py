"""Consumer lag per group and partition: the partition's end offset minus the group's commit.

Measured from the broker (admin client for the committed offsets, a group-less consumer for
the end offsets), not from the subscribing consumer's own highwater, because:
- the committed offset is where a restarted consumer resumes, so the lag counts records
  processed but not yet committed: the whole backlog at risk, which is what an operator
  must see;
- it covers every partition of the topic, whether assigned to this instance or not, during
  a rebalance, and while the consumer loop is wedged (its own highwater would freeze);
- it needs nothing from faststream's internals, and costs a fixed three requests per
  sample whatever the number of partitions.
Every instance of a service reports the same figures for its groups, so dashboards and
alerts take the maximum per (group, topic, partition), never the sum.

The committed offsets are exported too: a lag above zero says records wait, and only a
commit that does not move says the group has stopped taking them (under steady traffic
the lag never reaches zero, yet the commits advance).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka_client import client_options
from shared.logging import get_logger
from shared.observability.metrics import Metrics
from shared.settings import KafkaSettings

log = get_logger(__name__)

PartitionKey = tuple[str, str, int]  # (group, topic, partition)


@dataclass(frozen=True, slots=True)
class Subscription:
    """A consumer group reading a topic."""

    group: str
    topic: str


def subscriptions_of(broker: Any) -> list[Subscription]:
    """The (group, topic) pairs of a faststream broker's subscribers, sorted."""
    found: dict[Subscription, None] = {}
    for subscriber in broker.subscribers:
        group = getattr(subscriber, "group_id", None)
        if group:
            for topic in subscriber.topic_names_for_subscribe:
                found[Subscription(group, topic)] = None
    return sorted(found, key=lambda s: (s.group, s.topic))


def partition_lag(end: int, committed: int | None, beginning: int) -> int:
    """Records the group has not committed yet. A group with no commit on the partition
    starts from the earliest offset still kept (`auto_offset_reset="earliest"`)."""
    start = committed if committed is not None and committed >= 0 else beginning
    return max(0, end - max(start, beginning))


def group_lag(
    subscription: Subscription,
    partitions: Iterable[int],
    ends: Mapping[int, int],
    beginnings: Mapping[int, int],
    committed: Mapping[int, int],
) -> dict[PartitionKey, int]:
    """Lag of one group on every partition of its topic, keyed (group, topic, partition)."""
    return {
        (subscription.group, subscription.topic, p): partition_lag(
            ends.get(p, 0), committed.get(p), beginnings.get(p, 0)
        )
        for p in partitions
    }


@dataclass(frozen=True, slots=True)
class Offsets:
    """One reading of the broker: each partition's lag, and the offsets committed where
    the group has committed (a partition without a commit yet has none)."""

    lags: dict[PartitionKey, int]
    committed: dict[PartitionKey, int]


class ConsumerLagMonitor:
    """Samples the lag of the given subscriptions into `baocao_consumer_lag_messages`."""

    def __init__(
        self, kafka: KafkaSettings, subscriptions: Sequence[Subscription], metrics: Metrics
    ) -> None:
        self._kafka = kafka
        self._subscriptions = tuple(subscriptions)
        self._metrics = metrics
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            options = client_options(self._kafka)
            admin = AIOKafkaAdminClient(**options)
            # No group: this consumer only asks for offsets, it never joins or commits.
            consumer = AIOKafkaConsumer(**options, group_id=None, enable_auto_commit=False)
            try:
                await admin.start()
                await consumer.start()
            except BaseException:
                await close_clients(admin, consumer)
                raise
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        await close_clients(admin, consumer)

    async def measure(self) -> dict[PartitionKey, int]:
        """The lag of every subscription on every partition, read from the broker now."""
        return (await self.read()).lags

    async def read(self) -> Offsets:
        """The lags and commits of every subscription, read from the broker now."""
        if not self._subscriptions:
            return Offsets({}, {})
        admin, consumer = await self._clients()
        topics = sorted({s.topic for s in self._subscriptions})
        described = await admin.describe_topics(topics)
        partitions = {
            t["topic"]: sorted(p["partition"] for p in t["partitions"])
            for t in described
            if t["error_code"] == 0
        }
        tps = [TopicPartition(t, p) for t, ps in partitions.items() for p in ps]
        # The consumer's offset look-ups wait forever for a partition without a leader.
        deadline_s = self._kafka.request_timeout_ms / 1000
        ends = await asyncio.wait_for(consumer.end_offsets(tps), deadline_s)
        beginnings = await asyncio.wait_for(consumer.beginning_offsets(tps), deadline_s)
        found = Offsets({}, {})
        for subscription in self._subscriptions:
            mine = [tp for tp in tps if tp.topic == subscription.topic]
            offsets = await admin.list_consumer_group_offsets(subscription.group, partitions=mine)
            committed = {tp.partition: meta.offset for tp, meta in offsets.items()}
            found.lags.update(
                group_lag(
                    subscription,
                    partitions.get(subscription.topic, []),
                    {tp.partition: ends[tp] for tp in mine},
                    {tp.partition: beginnings[tp] for tp in mine},
                    committed,
                )
            )
            found.committed.update(
                {
                    (subscription.group, subscription.topic, p): o
                    for p, o in committed.items()
                    if o >= 0
                }
            )
        return found

    async def sample(self) -> None:
        try:
            found = await self.read()
        except Exception:
            # A broker hiccup: start over with fresh connections at the next sample.
            await self.close()
            raise
        for gauge, values in (
            (self._metrics.consumer_lag, found.lags),
            (self._metrics.consumer_committed, found.committed),
        ):
            for (group, topic, partition), value in values.items():
                gauge.labels(group=group, topic=topic, partition=str(partition)).set(value)


async def close_clients(
    admin: AIOKafkaAdminClient | None, consumer: AIOKafkaConsumer | None
) -> None:
    # The consumer first: its stop marks it closed before its first await, so even a stop
    # cancelled half-way leaves no consumer open. The admin is closed whatever that does.
    try:
        if consumer is not None:
            await consumer.stop()
    finally:
        if admin is not None:
            await admin.close()
