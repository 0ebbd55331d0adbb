"""Connection options shared by every Kafka client the services build.

Every client (the broker's, the outbox producer, admin and lag clients) takes the same
deadline per request, `request_timeout_ms`: aiokafka's own default (40 s) would otherwise
hold an admin call or a lag sample longer than the settings say.

Producers are idempotent with `acks=all` (aiokafka defaults to `acks=1`, which loses a
message when the leader fails before replicating it).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Mapping
from typing import Any, Literal, Protocol, TypedDict

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shared.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def producer_options() -> dict[str, Any]:
    # Record batches of up to 256 KiB (aiokafka's default is 16 KiB): a stage relays
    # hundreds of messages at once, and each batch is one unit of work for the broker.
    return {"acks": "all", "enable_idempotence": True, "linger_ms": 2, "max_batch_size": 262144}


class ConsumerOptions(TypedDict):
    auto_offset_reset: Literal["earliest"]
    max_records: int
    batch_timeout_ms: int
    max_poll_interval_ms: int
    session_timeout_ms: int
    fetch_min_bytes: int
    fetch_max_wait_ms: int


def consumer_options(kafka: KafkaSettings) -> ConsumerOptions:
    """A new consumer group starts from the beginning: nothing published is skipped."""
    return {
        "auto_offset_reset": "earliest",
        "max_records": kafka.batch_max_records,
        "batch_timeout_ms": kafka.batch_timeout_ms,
        "max_poll_interval_ms": kafka.max_poll_interval_ms,
        "session_timeout_ms": kafka.session_timeout_ms,
        "fetch_min_bytes": kafka.fetch_min_bytes,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
    }


class Outgoing(Protocol):
    """A message ready to send: its bytes, where they go, and any headers."""

    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def headers(self) -> Mapping[str, str]: ...


async def send_batched(
    producer: AIOKafkaProducer,
    messages: Iterable[Outgoing],
    partitioner: DefaultPartitioner,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> None:
    """Send `messages` as one record batch per partition (more when one fills), and return
    once the broker has acknowledged them all; `headers` go on every record.

    aiokafka's per-message `send` costs several times what the messages' own bytes do.
    Partitions are chosen as the producer's default partitioner does (murmur2 of the key),
    so a key's messages stay on one partition, in the order given.
    """
    partitions: dict[str, list[int]] = {}
    chosen: dict[tuple[str, bytes], int] = {}  # murmur2 is pure Python: once per key
    open_batches: dict[tuple[str, int], Any] = {}
    sent: list[asyncio.Future[Any]] = []
    for message in messages:
        topic, key = message.topic, message.key
        if topic not in partitions:
            partitions[topic] = sorted(await producer.partitions_for(topic))
        if key is None:
            partition = partitioner(None, partitions[topic], partitions[topic])
        elif (topic, key) in chosen:
            partition = chosen[(topic, key)]
        else:
            partition = partitioner(key, partitions[topic], partitions[topic])
            chosen[(topic, key)] = partition
        record_headers = [*headers, *((k, v.encode()) for k, v in message.headers.items())]
        batch = open_batches.get((topic, partition))
        if batch is None or (
            batch.append(timestamp=None, key=key, value=message.payload, headers=record_headers)
            is None
        ):
            if batch is not None:  # full: send it, start the next one
                sent.append(await producer.send_batch(batch, topic, partition=partition))
            batch = open_batches[(topic, partition)] = producer.create_batch()
            batch.append(timestamp=None, key=key, value=message.payload, headers=record_headers)
    for (topic, partition), batch in open_batches.items():
        sent.append(await producer.send_batch(batch, topic, partition=partition))
    await asyncio.gather(*sent)
