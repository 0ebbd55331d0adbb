"""The services' subscribers hand raw records to their stage, and a failing batch loses nothing.

Proves, on faststream's in-memory `TestKafkaBroker`: each service's router, built on a real
`Runtime` (no server is contacted), subscribes to its topic and gives its stage exactly
the bytes published. And, driving `BatchConsumer` directly with fake messages: a batch
that succeeds is committed once; a batch whose processing raised is rewound (nack), not
committed, with a growing back-off; after repeated failures of the same batch the poison
record is isolated and dead-lettered while the other records are processed; a batch that
fails for a reason outside its records (`TransientError`: the broker did not acknowledge) is
retried whole however often it fails, and never split, even mid-isolation; a commit that
fails around a rebalance does not raise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple, cast

import pytest
from aiokafka.errors import CommitFailedError
from faststream.kafka import KafkaMessage, KafkaRouter, TestKafkaBroker
from prometheus_client import CollectorRegistry

from services.aggregation.handlers import build_router as aggregation_router
from services.aggregation.rollup import RollupStage
from services.aggregation.settings import AggregationSettings
from services.connector.handlers import build_router as connector_router
from services.connector.intake import SnapshotIntake
from services.connector.settings import ConnectorSettings
from services.submission.handlers import build_router as submission_router
from services.submission.ingest import Ingest
from services.submission.settings import SubmissionSettings
from services.validation.handlers import build_router as validation_router
from services.validation.settings import ValidationSettings
from services.validation.verdicts import VerdictStage
from shared import batches
from shared.batches import ISOLATE_AFTER_FAILURES, BatchConsumer, Record, TransientError
from shared.contracts import ACCEPTED, AGGREGATES, INBOUND, OUTCOMES, RECEIVED, TopicSpec
from shared.observability.metrics import Metrics
from shared.runtime import Runtime
from shared.settings import ServiceSettings
from tests.fakes import FakeMessage, FakeRecord, RecordingStage, records
from tests.harness import service_settings

pytestmark = pytest.mark.unit

NAMESPACE = "unit_"
# Addresses nothing listens on: building a Runtime must not contact any server.
UNREACHABLE_KAFKA = "127.0.0.1:1"
UNREACHABLE_POSTGRES = "postgresql://nobody@127.0.0.1:1/none"
RAW = (b'{"schema": "baocao.report.v1", "note": "Th\xc3\xa1i B\xc3\xacnh"}', b"\xff not json")


class Wiring(NamedTuple):
    service: str
    settings: type[ServiceSettings]
    build: Callable[[Runtime, RecordingStage], KafkaRouter]
    topic: TopicSpec
    method: str


WIRINGS = {
    "submission takes inbound reports": Wiring(
        "submission",
        SubmissionSettings,
        lambda rt, stage: submission_router(rt, cast(Ingest, stage)),
        INBOUND,
        "from_kafka",
    ),
    "submission keeps verdicts": Wiring(
        "submission",
        SubmissionSettings,
        lambda rt, stage: submission_router(rt, cast(Ingest, stage)),
        OUTCOMES,
        "record_verdicts",
    ),
    "validation judges received reports": Wiring(
        "validation",
        ValidationSettings,
        lambda rt, stage: validation_router(rt, cast(VerdictStage, stage)),
        RECEIVED,
        "judge",
    ),
    "aggregation rolls up accepted reports": Wiring(
        "aggregation",
        AggregationSettings,
        lambda rt, stage: aggregation_router(rt, cast(RollupStage, stage)),
        ACCEPTED,
        "apply",
    ),
    "the connector takes snapshots": Wiring(
        "connector",
        ConnectorSettings,
        lambda rt, stage: connector_router(rt, cast(SnapshotIntake, stage)),
        AGGREGATES,
        "take",
    ),
}


def runtime_for(wiring: Wiring) -> Runtime:
    settings = service_settings(wiring.settings, NAMESPACE, UNREACHABLE_KAFKA, UNREACHABLE_POSTGRES)
    return Runtime(wiring.service, settings, Path("unused-migrations"))


async def publish_through_router(wiring: Wiring) -> tuple[RecordingStage, Runtime]:
    runtime = runtime_for(wiring)
    stage = RecordingStage()
    runtime.broker.include_router(wiring.build(runtime, stage))
    async with TestKafkaBroker(runtime.broker) as broker:
        for raw in RAW:
            await broker.publish(raw, runtime.topic(wiring.topic), key=b"KSTT-TTHC|2026-Q1")
    return stage, runtime


def as_aiokafka_delivers(msg: KafkaMessage) -> tuple[Record, ...]:
    """A batch as the real consumer gives it (a tuple); the in-memory broker gives a list."""
    raw = msg.raw_message
    return tuple(raw) if isinstance(raw, list | tuple) else (raw,)


@pytest.mark.parametrize("wiring", list(WIRINGS.values()), ids=list(WIRINGS))
def test_building_a_runtime_names_topics_and_groups_in_the_namespace(wiring: Wiring) -> None:
    runtime = runtime_for(wiring)
    assert runtime.topic(wiring.topic) == f"{NAMESPACE}{wiring.topic.name}"
    assert runtime.group() == f"{NAMESPACE}baocao.{wiring.service}"


@pytest.mark.parametrize("wiring", list(WIRINGS.values()), ids=list(WIRINGS))
async def test_a_published_record_reaches_the_stage_as_its_raw_bytes(wiring: Wiring) -> None:
    stage, _ = await publish_through_router(wiring)
    assert stage.calls == [(wiring.method, [RAW[0]]), (wiring.method, [RAW[1]])]


@pytest.mark.parametrize("wiring", list(WIRINGS.values()), ids=list(WIRINGS))
async def test_with_batches_shaped_as_aiokafka_delivers_them_the_stage_gets_the_raw_bytes(
    wiring: Wiring, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batches, "records_of", as_aiokafka_delivers)
    stage, runtime = await publish_through_router(wiring)
    # Exactly the bytes published, undecoded (even those that are not JSON), one call each.
    assert stage.calls == [(wiring.method, [RAW[0]]), (wiring.method, [RAW[1]])]
    received = runtime.registry.get_sample_value(
        "baocao_stage_messages_received_total", {"stage": runtime_stage(wiring)}
    )
    assert received == len(RAW)


def runtime_stage(wiring: Wiring) -> str:
    return {
        "from_kafka": "ingest",
        "record_verdicts": "verdicts",
        "judge": "validate",
        "apply": "aggregate",
        "take": "deliver",
    }[wiring.method]


async def test_a_record_published_elsewhere_does_not_reach_the_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batches, "records_of", as_aiokafka_delivers)
    wiring = WIRINGS["validation judges received reports"]
    runtime = runtime_for(wiring)
    stage = RecordingStage()
    runtime.broker.include_router(wiring.build(runtime, stage))
    async with TestKafkaBroker(runtime.broker) as broker:
        await broker.publish(b"{}", runtime.topic(ACCEPTED))
        await broker.publish(b"{}", RECEIVED.name)  # the topic without the namespace
    assert stage.calls == []


# --- BatchConsumer, driven directly ---------------------------------------------------------

TOPIC = "t.reports.received.v1"


class Harness:
    """A BatchConsumer over a scripted process, with what it did recorded."""

    def __init__(
        self,
        poison: Sequence[bytes] = (),
        *,
        fail_every_batch: bool = False,
        dead_letter_fails: bool = False,
        unacknowledged: Sequence[bytes] = (),
    ) -> None:
        self.poison = set(poison)
        self.unacknowledged = set(unacknowledged)  # the broker does not acknowledge these
        self.fail_every_batch = fail_every_batch
        self.dead_letter_fails = dead_letter_fails
        self.processed: list[list[bytes]] = []
        self.dead: list[tuple[FakeRecord, str]] = []
        self.registry = CollectorRegistry()
        self.consumer = BatchConsumer(
            "validate", self.process, self.dead_letter, Metrics(self.registry)
        )

    async def process(self, batch: Sequence[Record]) -> None:
        values = [record.value for record in batch]
        if self.unacknowledged & set(values):
            raise TransientError("the broker did not acknowledge")
        if self.fail_every_batch or self.poison & set(values):
            raise ValueError("cannot store this batch")
        self.processed.append(values)

    async def dead_letter(self, record: Record, error: str) -> None:
        if self.dead_letter_fails:
            raise ConnectionError("the dead-letter outbox is unreachable")
        self.dead.append((record, error))

    async def deliver(self, batch: tuple[FakeRecord, ...]) -> FakeMessage:
        message = FakeMessage(batch)
        await self.consumer(cast(KafkaMessage, message))
        return message

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, {"stage": "validate", **labels}) or 0.0


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off delays BatchConsumer asked for; nothing actually sleeps."""
    asked: list[float] = []

    async def no_sleep(seconds: float) -> None:
        asked.append(seconds)

    # Only shared.batches sees the fake: the event loop and faststream keep the real sleep.
    monkeypatch.setattr("shared.batches.asyncio", SimpleNamespace(sleep=no_sleep))
    return asked


BATCH = records(TOPIC, b"a", b"b", b"poison", b"d", first_offset=100)


async def test_a_batch_that_succeeds_is_processed_whole_and_committed_once(
    sleeps: list[float],
) -> None:
    harness = Harness()
    message = await harness.deliver(BATCH)
    assert harness.processed == [[b"a", b"b", b"poison", b"d"]]
    assert (message.acks, message.nacks) == (1, 0)
    assert harness.metric("baocao_stage_messages_received_total") == 4
    assert sleeps == []


async def test_an_empty_batch_is_neither_processed_nor_committed(sleeps: list[float]) -> None:
    harness = Harness()
    message = await harness.deliver(())
    assert harness.processed == []
    assert (message.acks, message.nacks) == (0, 0)


async def test_a_batch_whose_processing_raised_is_rewound_not_committed(
    sleeps: list[float],
) -> None:
    harness = Harness(poison=[b"poison"])
    message = await harness.deliver(BATCH)
    assert (message.acks, message.nacks) == (0, 1)
    assert harness.processed == []
    assert harness.dead == []
    assert harness.metric("baocao_stage_batch_failures_total") == 1
    assert len(sleeps) == 1


async def test_a_new_failing_batch_starts_the_back_off_from_its_first_step(
    sleeps: list[float],
) -> None:
    harness = Harness(fail_every_batch=True)
    for first_offset in range(5):  # a different batch each time: never isolated
        await harness.deliver(records(TOPIC, b"x", first_offset=first_offset * 10))
    assert sleeps == [0.2] * 5
    assert harness.dead == []


async def test_the_back_off_doubles_while_the_same_batch_fails_and_is_capped(
    sleeps: list[float],
) -> None:
    # The dead-letter topic is unreachable too: even isolation fails, and the batch is
    # rewound rather than its records lost.
    harness = Harness(poison=[b"poison"], dead_letter_fails=True)
    for _ in range(8):
        message = await harness.deliver(BATCH)
        assert (message.acks, message.nacks) == (0, 1)
    assert sleeps == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


async def test_a_batch_that_keeps_failing_is_split_and_only_the_poison_is_dead_lettered(
    sleeps: list[float],
) -> None:
    harness = Harness(poison=[b"poison"])
    for _ in range(ISOLATE_AFTER_FAILURES):
        message = await harness.deliver(BATCH)
        assert (message.acks, message.nacks) == (0, 1)
    assert harness.dead == []
    message = await harness.deliver(BATCH)
    assert harness.processed == [[b"a"], [b"b"], [b"d"]]
    ((record, error),) = harness.dead
    assert (record.topic, record.partition, record.offset) == (TOPIC, 0, 102)
    assert record.value == b"poison"
    assert error == "ValueError: cannot store this batch"
    assert (message.acks, message.nacks) == (1, 0)
    assert harness.metric("baocao_stage_messages_processed_total", outcome="dead_lettered") == 1
    assert harness.metric("baocao_stage_batch_failures_total") == ISOLATE_AFTER_FAILURES


async def test_a_batch_is_not_split_before_it_failed_the_set_number_of_times(
    sleeps: list[float],
) -> None:
    harness = Harness(poison=[b"poison"])
    for _ in range(ISOLATE_AFTER_FAILURES - 1):
        await harness.deliver(BATCH)
    # A different batch fails in between: the count starts again.
    await harness.deliver(records(TOPIC, b"poison", first_offset=500))
    for _ in range(ISOLATE_AFTER_FAILURES - 1):
        message = await harness.deliver(BATCH)
    assert harness.dead == []
    assert message.nacks == 1


async def test_after_isolation_the_next_batch_is_processed_whole_again(
    sleeps: list[float],
) -> None:
    harness = Harness(poison=[b"poison"])
    for _ in range(ISOLATE_AFTER_FAILURES + 1):
        await harness.deliver(BATCH)
    message = await harness.deliver(records(TOPIC, b"e", b"f", first_offset=104))
    assert harness.processed[-1] == [b"e", b"f"]
    assert message.acks == 1


async def test_a_batch_the_broker_did_not_acknowledge_is_retried_whole_and_never_split(
    sleeps: list[float],
) -> None:
    harness = Harness(unacknowledged=[b"d"])
    for _ in range(ISOLATE_AFTER_FAILURES * 3):
        message = await harness.deliver(BATCH)
        assert (message.acks, message.nacks) == (0, 1)
    assert harness.processed == []
    assert harness.dead == []
    assert sleeps == [0.2] * (ISOLATE_AFTER_FAILURES * 3)
    harness.unacknowledged.clear()  # the broker is back
    message = await harness.deliver(BATCH)
    assert harness.processed == [[b"a", b"b", b"poison", b"d"]]
    assert message.acks == 1


async def test_isolation_stops_at_a_record_the_broker_did_not_acknowledge(
    sleeps: list[float],
) -> None:
    harness = Harness(poison=[b"poison"])
    for _ in range(ISOLATE_AFTER_FAILURES):
        await harness.deliver(BATCH)
    harness.unacknowledged.add(b"d")  # the broker goes away while the batch is split
    message = await harness.deliver(BATCH)  # a, b, poison dead-lettered, then d
    assert harness.processed == [[b"a"], [b"b"]]
    assert [record.value for record, _ in harness.dead] == [b"poison"]
    assert (message.acks, message.nacks) == (0, 1)  # d is not dead-lettered: all comes again


async def test_a_commit_that_fails_around_a_rebalance_does_not_raise(sleeps: list[float]) -> None:
    harness = Harness()
    message = FakeMessage(BATCH, ack_error=CommitFailedError("rebalanced"))
    await harness.consumer(cast(KafkaMessage, message))
    assert message.acks == 1
    assert harness.processed == [[b"a", b"b", b"poison", b"d"]]


def test_a_single_record_message_is_a_batch_of_one() -> None:
    record = FakeRecord(TOPIC, 0, 7, b"x")
    assert batches.records_of(cast(KafkaMessage, FakeMessage(record))) == (record,)
    assert batches.records_of(cast(KafkaMessage, FakeMessage(BATCH))) == BATCH
