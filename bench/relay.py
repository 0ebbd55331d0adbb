"""The limit: a raw aiokafka relay that does no work, through as many topic hops as the pipeline.

`python -m bench.relay --source A --target B --group G` is one hop: it reads batches from
A as a consumer group, sends every record's key and value to B through a producer with the
services' guarantees (`acks=all`, idempotence) and commits the batch's offsets once B has
acknowledged it: the same at-least-once shape as a service, without parsing, validation,
database or outbox. Chained as processes (one per hop, as the services are), the hops
measure what Kafka and aiokafka allow on this machine for the same payloads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka_client import producer_options
from shared.settings import KafkaSettings

# Batches as large as the services take by default: the same shape, with no work.
MAX_RECORDS: int = KafkaSettings.model_fields["batch_max_records"].default
POLL_MS = 20


async def relay(bootstrap: str, source: str, target: str, group: str) -> None:
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **producer_options())
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await producer.start()
    await consumer.start()
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            futures: list[asyncio.Future[Any]] = []
            for records in batches.values():
                for record in records:
                    futures.append(await producer.send(target, record.value, key=record.key))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    asyncio.run(relay(args.bootstrap, args.source, args.target, args.group))


if __name__ == "__main__":
    main()
