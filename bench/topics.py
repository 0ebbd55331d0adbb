"""Kafka for the bench: send payloads at a rate or flat out, read topics whole, watch lag."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from bench.workload import Payload
from shared.kafka_client import producer_options, send_batched
from shared.observability.lag import partition_lag

# Sends per tick at a fixed rate: 50 reports every 50 ms at 1 000/s. The generator shares
# the cores under test, and each tick is a produce request and its acknowledgement: at
# 10 ms ticks it took about 230 µs of CPU a report (0.23 cores at 1 000/s), at 50 ms about
# 90 µs. A report waits at most one tick longer to be sent, which send -> snapshot counts.
TICK_S = 0.05
FLAT_OUT_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class Sending:
    """When the first and the last payload were handed to the producer (epoch seconds), and
    each payload (`sent_at`, in order): a report waits in reports.inbound.v1 until
    submission reads it and stamps its `received_at`, which the receipt figures leave out."""

    first: float
    last: float
    count: int
    sent_at: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class _Outgoing:
    topic: str
    key: bytes | None
    payload: bytes
    headers: Mapping[str, str]


async def send(
    bootstrap: str, topic: str, payloads: Sequence[Payload], rate: float | None
) -> Sending:
    """Send every payload, `rate` per second (None: as fast as the producer goes), each
    acknowledged by the broker (`acks=all`) before this returns. A chunk goes as one record
    batch per partition, as the services publish: aiokafka's per-message `send` took about
    50 µs of CPU a report flat out, on the cores under test."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options())
    await producer.start()
    partitioner = DefaultPartitioner()
    sent_at: list[float] = []

    async def chunk_of(chunk: Sequence[Payload]) -> None:
        sent_at.extend([time.time()] * len(chunk))
        messages = [_Outgoing(topic, p.key, p.value, {}) for p in chunk]
        await send_batched(producer, messages, partitioner)

    try:
        first = time.time()
        if rate is None:
            for start in range(0, len(payloads), FLAT_OUT_CHUNK):
                await chunk_of(payloads[start : start + FLAT_OUT_CHUNK])
        else:
            per_tick = max(1, round(rate * TICK_S))
            interval = per_tick / rate
            began = time.monotonic()
            for tick, start in enumerate(range(0, len(payloads), per_tick)):
                delay = began + tick * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await chunk_of(payloads[start : start + per_tick])
        return Sending(first, time.time(), len(payloads), tuple(sent_at))
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of `topic` up to its current end, partition by partition in order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = await _partitions(bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        by_partition: dict[int, list[Any]] = {tp.partition: [] for tp in tps}
        deadline = time.monotonic() + 300
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} could not be read to its end")
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                by_partition[tp.partition] += [r for r in records if r.offset < ends[tp]]
        return [r for p in sorted(by_partition) for r in by_partition[p]]
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = {p["partition"] for p in described["partitions"]}
    if not partitions:
        raise RuntimeError(f"topic {topic} does not exist")
    return partitions


class LagWatch:
    """Records of each (group, topic) not committed yet, from the broker's point of view."""

    def __init__(self, bootstrap: str, subscriptions: Sequence[tuple[str, str]]) -> None:
        self._bootstrap = bootstrap
        self._subscriptions = subscriptions
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self._partitions: dict[str, set[int]] = {}

    async def __aenter__(self) -> LagWatch:
        try:
            await self._admin.start()
            await self._consumer.start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()
        await self._admin.close()

    async def ends(self, topic: str) -> dict[int, int]:
        if topic not in self._partitions:
            self._partitions[topic] = await _partitions(self._bootstrap, topic)
        tps = [TopicPartition(topic, p) for p in self._partitions[topic]]
        ends = await self._consumer.end_offsets(tps)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def lag(self) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        for group, topic in self._subscriptions:
            ends = await self.ends(topic)
            offsets = await self._admin.list_consumer_group_offsets(group)
            committed = {
                tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic
            }
            found[(group, topic)] = sum(
                partition_lag(end, committed.get(p), 0) for p, end in ends.items()
            )
        return found


async def total_end(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    """The number of records ever written to each topic (sum of its end offsets)."""
    async with LagWatch(bootstrap, ()) as watch:
        return {topic: sum((await watch.ends(topic)).values()) for topic in topics}
