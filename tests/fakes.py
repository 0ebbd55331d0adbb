"""Fakes with real behaviour, for unit tests: Kafka records and messages, a recording stage.

They stand in for what aiokafka and faststream hand to a subscriber, so that the code under
test (`shared.batches`, the services' routers) runs unchanged and without a broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FakeRecord:
    """The fields of an aiokafka `ConsumerRecord` that the services read."""

    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def records(
    topic: str, *values: bytes, partition: int = 0, first_offset: int = 0
) -> tuple[FakeRecord, ...]:
    """Consecutive records of one partition, as one batch of `getmany` returns them."""
    return tuple(
        FakeRecord(topic, partition, first_offset + index, value)
        for index, value in enumerate(values)
    )


@dataclass
class FakeMessage:
    """A faststream batch message: `raw_message` is the tuple of records; acks are counted.

    `ack_error`, when set, is raised by `ack()` (a commit that fails around a rebalance).
    """

    raw_message: Any
    acks: int = 0
    nacks: int = 0
    ack_error: BaseException | None = None

    async def ack(self) -> None:
        self.acks += 1
        if self.ack_error is not None:
            raise self.ack_error

    async def nack(self) -> None:
        self.nacks += 1


@dataclass
class RecordingStage:
    """Every service stage at once: each entry point records the raw values it was given.

    The method names are those the services' routers call: submission's `from_kafka` and
    `record_verdicts`, validation's `judge`, aggregation's `apply`, the connector's `take`.
    """

    calls: list[tuple[str, list[bytes]]] = field(default_factory=list)

    def _record(self, method: str, batch: Sequence[Any]) -> None:
        self.calls.append((method, [record.value for record in batch]))

    async def from_kafka(self, batch: Sequence[Any]) -> None:
        self._record("from_kafka", batch)

    async def record_verdicts(self, batch: Sequence[Any]) -> None:
        self._record("record_verdicts", batch)

    async def judge(self, batch: Sequence[Any]) -> None:
        self._record("judge", batch)

    async def apply(self, batch: Sequence[Any]) -> None:
        self._record("apply", batch)

    async def take(self, batch: Sequence[Any]) -> None:
        self._record("take", batch)
