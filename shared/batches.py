"""Consuming a Kafka batch so that nothing is lost and no partition gets stuck.

Subscribers read batches with `AckPolicy.MANUAL`: the offsets are committed only after the
batch's effects are committed in PostgreSQL. A batch that fails is rewound (`nack` seeks
every partition of the batch back) and redelivered after a back-off. A batch that keeps
failing is split: each record is retried alone and the one that still fails is sent to the
dead-letter topic, so one poison record cannot block its partition. A failure outside the
records (`TransientError`: the broker did not acknowledge what the batch published) is retried
as it is and never split: no record is dead-lettered for the broker's sake.

Every log line written while a batch is processed carries its `stage`; while one record is
retried alone, the line also carries the record's topic, partition and offset and the
report it holds (`report_id`, `regime`, `period`, `unit`), whoever writes it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from aiokafka.errors import CommitFailedError, KafkaError
from faststream.kafka.message import KafkaMessage
from structlog.contextvars import bound_contextvars

from shared.logging import get_logger
from shared.observability.log_context import record_fields
from shared.observability.metrics import Metrics

log = get_logger(__name__)

# aiokafka ships no type information: a record is typed loosely on purpose.
Record: TypeAlias = Any
Process = Callable[[Sequence[Record]], Awaitable[None]]
DeadLetter = Callable[[Record, str], Awaitable[None]]

ISOLATE_AFTER_FAILURES = 3


class TransientError(Exception):
    """A batch failed as a whole for a reason outside its records (the broker did not
    acknowledge in time): retried as it is, never split to find a poison record."""


async def tolerant_parser(raw: Any, parse: Callable[[Any], Awaitable[Any]]) -> Any:
    """faststream's parser, given records whose header values it can read.

    It decodes every header value as UTF-8 before any handler runs; a null value (Kafka
    allows it) or stray bytes from a sender would raise there, and the whole batch would
    be skipped and later committed by the next batch's acknowledgement: lost. Values are
    decoded leniently instead; the services read only the records, never these headers.

    Of a batch, only the first record's headers are decoded (faststream reads its reply
    and correlation fields there): a dict of every record's headers, built for each batch,
    is work no handler uses. The message still holds every record and every body.
    """
    if isinstance(raw, tuple | list):
        records = tuple(raw)
        if not records:
            return await parse(records)
        message = await parse((_readable_headers(records[0]),))
        message.raw_message = records
        message.body = [record.value or b"" for record in records]
        return message
    return await parse(_readable_headers(raw))


def _readable_headers(record: Record) -> Record:
    headers = record.headers
    if all(isinstance(v, bytes) and v.isascii() for _, v in headers):
        return record
    readable = [(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in headers]
    return dataclasses.replace(record, headers=readable)


async def raw_bodies(msg: Any) -> Any:
    """No decoding: handlers read `record.value` themselves, through `shared.codec`.

    faststream would parse a body whose content-type is JSON with a binary-float parser,
    which raises on a valid JSON number beyond a double (1E+400), with the same loss of the
    batch as above.
    """
    return msg.body


def records_of(msg: KafkaMessage) -> tuple[Record, ...]:
    raw = msg.raw_message
    # aiokafka's consumer gives a batch as a tuple; faststream's test broker as a list.
    return tuple(raw) if isinstance(raw, tuple | list) else (raw,)


class BatchConsumer:
    """Runs one stage's processing over batches, with commit, rewind and poison isolation."""

    def __init__(
        self, stage: str, process: Process, dead_letter: DeadLetter, metrics: Metrics
    ) -> None:
        self.stage = stage
        self._process = process
        self._dead_letter = dead_letter
        self._metrics = metrics
        self._failed_starts: dict[tuple[str, int], int] = {}
        self._failures = 0
        metrics.prepare_stage(stage)

    async def __call__(self, msg: KafkaMessage) -> None:
        records = records_of(msg)
        if not records:
            return
        with bound_contextvars(stage=self.stage):
            await self._consume(msg, records)

    async def _consume(self, msg: KafkaMessage, records: tuple[Record, ...]) -> None:
        self._metrics.stage_received.labels(stage=self.stage).inc(len(records))
        started = time.perf_counter()
        starts = partition_offsets(records)
        # A rewound batch comes back from the same offsets, maybe with more records after.
        again = bool(self._failed_starts) and self._failed_starts.items() <= starts.items()
        dead = 0
        try:
            if again and self._failures >= ISOLATE_AFTER_FAILURES:
                dead = await self._isolate(records)
            else:
                await self._process(records)
        except Exception as error:
            transient = isinstance(error, TransientError)
            self._failures = self._failures + 1 if again and not transient else 1
            self._failed_starts = {} if transient else starts
            self._metrics.stage_failures.labels(stage=self.stage).inc()
            log.exception(
                "batch_failed",
                records=len(records),
                failures=self._failures,
                error=repr(error),
            )
            # Back off before the redelivery so a database outage is not a busy loop.
            await asyncio.sleep(min(5.0, 0.2 * 2 ** (self._failures - 1)))
            await msg.nack()
            return
        self._failed_starts, self._failures = {}, 0
        self._metrics.stage_duration.labels(stage=self.stage).observe(time.perf_counter() - started)
        self._metrics.stage_processed.labels(stage=self.stage, outcome="ok").inc(
            len(records) - dead
        )
        await commit(msg, self.stage)

    async def _isolate(self, records: Sequence[Record]) -> int:
        """Process each record alone; returns how many were dead-lettered."""
        dead = 0
        for record in records:
            with bound_contextvars(**record_fields(record)):
                try:
                    await self._process([record])
                except TransientError:
                    raise  # not this record's fault: the whole batch comes again
                except Exception as error:
                    log.exception("record_dead_lettered")
                    await self._dead_letter(record, f"{type(error).__name__}: {error}")
                    self._metrics.stage_processed.labels(
                        stage=self.stage, outcome="dead_lettered"
                    ).inc()
                    dead += 1
        return dead


def partition_offsets(
    records: Sequence[Record], pick: Callable[[int, int], int] = min
) -> dict[tuple[str, int], int]:
    """The first offset (`pick=min`) or the last (`pick=max`) of each partition in a batch."""
    found: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        found[key] = pick(found.get(key, record.offset), record.offset)
    return found


async def commit(msg: KafkaMessage, stage: str) -> None:
    """Commit the batch's offsets; a rebalance in between only means a harmless redelivery."""
    try:
        await msg.ack()
    except (CommitFailedError, KafkaError) as error:
        log.warning("commit_failed", stage=stage, error=str(error))
