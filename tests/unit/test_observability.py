"""The pure parts of observability: regime progress of the open periods, consumer lag
arithmetic, log context of a record, counters created at zero, stage outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, cast

import pytest
import structlog
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter
from prometheus_client import CollectorRegistry

from shared import codec
from shared.batches import ISOLATE_AFTER_FAILURES, BatchConsumer, Record
from shared.catalog import load_catalog
from shared.clock import FixedClock
from shared.contracts import Channel, Completeness, ReceivedReport
from shared.observability.lag import (
    Subscription,
    close_clients,
    group_lag,
    partition_lag,
    subscriptions_of,
)
from shared.observability.log_context import record_fields, report_fields
from shared.observability.metrics import Metrics, stage_work
from shared.observability.progress import (
    OpenPeriod,
    ProgressExporter,
    RegimePeriod,
    open_periods,
    progress,
)
from shared.settings import REPO_ROOT
from tests import factories
from tests.fakes import FakeMessage, FakeRecord, records

CATALOG = load_catalog(REPO_ROOT / "catalog")
TZ = "+07:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text + TZ)


# --- regime progress ----------------------------------------------------------------------


def test_on_16_march_2026_the_open_periods_and_their_deadlines_follow_the_catalog() -> None:
    found = {
        (p.regime, p.period): p.deadline_ends for p in open_periods(CATALOG, at("2026-03-16T10:00"))
    }
    # catalog/periods.md: KSTT 18th of the last month; KTXH-M 2 working days after the
    # cut-off (2026-M03 ends 14 March: 17 March; 2026-M04 ends 14 April: 16 April).
    assert found == {
        ("KSTT-TTHC", "2026-Q1"): at("2026-03-19T00:00"),
        ("KSTT-TTHC", "2026-Q2"): at("2026-06-19T00:00"),
        ("KTXH-M", "2026-M03"): at("2026-03-18T00:00"),
        ("KTXH-M", "2026-M04"): at("2026-04-17T00:00"),
        ("NVCP-S", "2026-S1"): at("2026-06-19T00:00"),
    }


def test_a_period_leaves_the_open_ones_after_its_lock_day_and_not_before() -> None:
    # KTXH-M 2026-M03: deadline 17 March, locked 15 days after: 1 April still accepts.
    on_lock_day = {(p.regime, p.period) for p in open_periods(CATALOG, at("2026-04-01T23:59"))}
    after = {(p.regime, p.period) for p in open_periods(CATALOG, at("2026-04-02T00:00"))}
    assert ("KTXH-M", "2026-M03") in on_lock_day
    assert ("KTXH-M", "2026-M03") not in after
    assert ("KSTT-TTHC", "2026-Q1") in after  # locked only after 17 April


def test_the_province_expects_the_reporters_of_the_period_hierarchy() -> None:
    periods = {(p.regime, p.period): p for p in open_periods(CATALOG, at("2026-03-16T10:00"))}
    assert periods[("KSTT-TTHC", "2026-Q1")].expected == 17


OPEN = OpenPeriod("NVCP-S", "2026-S1", at("2026-06-19T00:00"), expected=6)


def completeness(expected: int, reported: int, on_time: int) -> Completeness:
    return Completeness(
        expected=expected,
        reported=reported,
        on_time=on_time,
        rate=Decimal(0),
        on_time_rate=Decimal(0),
        missing=tuple(f"U{i}" for i in range(expected - reported)),
    )


def test_without_a_snapshot_nobody_has_reported_and_every_unit_is_missing() -> None:
    found = progress(OPEN, None, at("2026-06-18T23:00"))
    assert (found.expected, found.missing, found.completeness, found.on_time) == (6, 6, 0, 0)
    assert found.deadline_in_s == 3600


def test_progress_is_the_snapshots_completeness_as_ratios() -> None:
    found = progress(OPEN, completeness(6, 3, 2), at("2026-06-20T00:00"))
    assert (found.missing, found.completeness, found.on_time) == (3, 0.5, 2 / 6)
    assert found.deadline_in_s == -86400  # a day into the late phase


def test_a_period_expecting_nobody_is_complete_rather_than_alarming() -> None:
    found = progress(OPEN, completeness(0, 0, 0), at("2026-06-18T00:00"))
    assert (found.completeness, found.on_time, found.missing) == (1.0, 1.0, 0)


async def test_the_exporter_sets_the_gauges_of_open_periods_and_drops_locked_ones() -> None:
    registry = CollectorRegistry()
    clock = FixedClock(at("2026-03-16T10:00"))
    asked: list[list[RegimePeriod]] = []

    async def read(keys: Sequence[RegimePeriod]) -> Mapping[RegimePeriod, Completeness]:
        asked.append(list(keys))
        return {("KSTT-TTHC", "2026-Q1"): completeness(17, 5, 4)}

    exporter = ProgressExporter(Metrics(registry), CATALOG, clock, read)
    await exporter.sample()

    def gauge(name: str, regime: str, period: str) -> float | None:
        return registry.get_sample_value(name, {"regime": regime, "period": period})

    assert gauge("baocao_regime_completeness_ratio", "KSTT-TTHC", "2026-Q1") == 5 / 17
    assert gauge("baocao_regime_on_time_ratio", "KSTT-TTHC", "2026-Q1") == 4 / 17
    assert gauge("baocao_regime_missing_units", "KSTT-TTHC", "2026-Q1") == 12
    assert gauge("baocao_regime_missing_units", "KTXH-M", "2026-M03") == gauge(
        "baocao_regime_expected_units", "KTXH-M", "2026-M03"
    )
    # 16 March 10:00 to the end of the deadline day, 17 March: 38 hours.
    assert gauge("baocao_regime_deadline_seconds", "KTXH-M", "2026-M03") == 38 * 3600
    assert len(asked[0]) == 5

    clock.advance(timedelta(days=17))  # 2 April: 2026-M03 is locked
    await exporter.sample()
    assert gauge("baocao_regime_completeness_ratio", "KTXH-M", "2026-M03") is None
    assert gauge("baocao_regime_deadline_seconds", "KTXH-M", "2026-M03") is None
    assert ("KTXH-M", "2026-M03") not in asked[1]
    assert gauge("baocao_regime_completeness_ratio", "KSTT-TTHC", "2026-Q1") == 5 / 17


# --- stage work outside a batch ---------------------------------------------------------


def test_a_message_taken_outside_a_batch_counts_as_a_batch_of_one_done_or_failed() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    with stage_work(metrics, "ingest_http"):
        pass
    with pytest.raises(RuntimeError), stage_work(metrics, "ingest_http"):
        raise RuntimeError("database away")

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"stage": "ingest_http", **labels})

    assert value("baocao_stage_messages_received_total") == 2
    assert value("baocao_stage_messages_processed_total", outcome="ok") == 1
    assert value("baocao_stage_batch_failures_total") == 1
    assert value("baocao_stage_batch_duration_seconds_count") == 1


# --- consumer lag ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "committed", "beginning", "lag"),
    [
        (10, 4, 0, 6),
        (10, 10, 0, 0),
        (0, None, 0, 0),
        (10, None, 0, 10),  # no commit yet: the group starts from the earliest offset
        (10, -1, 3, 7),
        (10, 2, 5, 5),  # committed offset already deleted by retention
    ],
)
def test_lag_is_what_the_group_has_not_committed_of_what_the_partition_holds(
    end: int, committed: int | None, beginning: int, lag: int
) -> None:
    assert partition_lag(end, committed, beginning) == lag


def test_group_lag_covers_every_partition_of_the_topic_even_without_a_commit() -> None:
    sub = Subscription("g", "t")
    found = group_lag(sub, [0, 1, 2], {0: 5, 1: 3, 2: 0}, {0: 0, 1: 0, 2: 0}, {0: 2})
    assert found == {("g", "t", 0): 3, ("g", "t", 1): 3, ("g", "t", 2): 0}


def test_the_subscriptions_are_the_groups_of_the_brokers_subscribers() -> None:
    broker = KafkaBroker("127.0.0.1:1")
    router = KafkaRouter()

    @router.subscriber("ns.reports.inbound.v1", group_id="ns.baocao.submission")
    async def inbound(msg: Any) -> None: ...

    @router.subscriber("ns.reports.outcomes.v1", group_id="ns.baocao.submission-verdicts")
    async def outcomes(msg: Any) -> None: ...

    @router.subscriber("ns.elsewhere")  # no group: nothing is committed, no lag to show
    async def other(msg: Any) -> None: ...

    broker.include_router(router)
    assert subscriptions_of(broker) == [
        Subscription("ns.baocao.submission", "ns.reports.inbound.v1"),
        Subscription("ns.baocao.submission-verdicts", "ns.reports.outcomes.v1"),
    ]


# --- log context ----------------------------------------------------------------------------

REPORT = factories.report(unit="TB.HH.N01")
IDENTITY = {
    "report_id": REPORT.report_id,
    "regime": "KSTT-TTHC",
    "period": "2026-Q1",
    "unit": "TB.HH.N01",
}


@pytest.mark.parametrize(
    "payload",
    [
        codec.dumps(REPORT),
        codec.dumps(ReceivedReport(report=REPORT, received_at=factories.NOW, channel=Channel.HTTP)),
        codec.dumps(factories.accepted(report_id=REPORT.report_id, unit="TB.HH.N01")),
    ],
    ids=["report", "received", "accepted"],
)
def test_a_records_log_context_names_its_place_and_the_report_it_carries(payload: bytes) -> None:
    record = FakeRecord("t", 2, 40, payload)
    assert record_fields(record) == {"topic": "t", "partition": 2, "offset": 40, **IDENTITY}


def test_an_unreadable_record_is_still_placed_by_topic_partition_and_offset() -> None:
    record = FakeRecord("t", 0, 7, b"\xff not json")
    assert record_fields(record) == {"topic": "t", "partition": 0, "offset": 7}


def test_a_report_objects_fields_leave_out_what_it_does_not_know() -> None:
    partial = SimpleNamespace(report_id=None, regime="KSTT-TTHC", period=None, unit="TB")
    assert report_fields(partial) == {"regime": "KSTT-TTHC", "unit": "TB"}
    assert report_fields(REPORT) == IDENTITY


# --- counters at zero, stage outcomes -------------------------------------------------------


def test_counters_with_known_labels_start_at_zero_so_the_first_increment_shows() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.prepare_intake(CATALOG.regime_codes)
    metrics.prepare_verdicts(CATALOG.regime_codes)
    for regime in (*CATALOG.regime_codes, "unknown"):
        for channel in ("kafka", "http"):
            labels = {"regime": regime, "channel": channel}
            assert registry.get_sample_value("baocao_reports_received_total", labels) == 0
        for status in ("accepted", "rejected"):
            labels = {"regime": regime, "status": status}
            assert registry.get_sample_value("baocao_report_verdicts_total", labels) == 0
    # Only what is known: no regime outside the catalog, no `duplicate` verdict.
    assert (
        registry.get_sample_value(
            "baocao_report_verdicts_total", {"regime": "unknown", "status": "duplicate"}
        )
        is None
    )


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    async def instantly(seconds: float) -> None:
        return None

    monkeypatch.setattr("shared.batches.asyncio", SimpleNamespace(sleep=instantly))


async def test_a_stage_counts_its_records_ok_or_dead_lettered_and_logs_with_their_report(
    no_sleep: None,
) -> None:
    registry = CollectorRegistry()
    contexts: list[dict[str, Any]] = []
    poison = codec.dumps(REPORT)

    async def process(batch: Sequence[Record]) -> None:
        if len(batch) == 1:
            contexts.append(structlog.contextvars.get_contextvars())
        if poison in [r.value for r in batch]:
            raise ValueError("cannot store this batch")

    async def dead_letter(record: Record, error: str) -> None:
        contexts.append({"dead_lettered": record.offset})

    consumer = BatchConsumer("validate", process, dead_letter, Metrics(registry))

    def processed(outcome: str) -> float | None:
        labels = {"stage": "validate", "outcome": outcome}
        return registry.get_sample_value("baocao_stage_messages_processed_total", labels)

    assert (processed("ok"), processed("dead_lettered")) == (0, 0)
    batch = records("t", b"{}", poison, b"[]", first_offset=10)
    for _ in range(ISOLATE_AFTER_FAILURES + 1):
        await consumer(cast(KafkaMessage, FakeMessage(batch)))
    assert (processed("ok"), processed("dead_lettered")) == (2, 1)
    around_poison = contexts[1]
    assert around_poison["stage"] == "validate"
    assert {k: around_poison[k] for k in ("topic", "partition", "offset")} == {
        "topic": "t",
        "partition": 0,
        "offset": 11,
    }
    assert {k: around_poison[k] for k in IDENTITY} == IDENTITY
    assert contexts[2] == {"dead_lettered": 11}
    assert "report_id" not in structlog.contextvars.get_contextvars()  # unbound after


async def test_the_lag_clients_close_consumer_first_and_the_admin_even_when_that_fails() -> None:
    closed: list[str] = []

    class Consumer:
        async def stop(self) -> None:
            closed.append("consumer")
            raise ConnectionResetError("the broker went away")

    class Admin:
        async def close(self) -> None:
            closed.append("admin")

    with pytest.raises(ConnectionResetError):
        await close_clients(Admin(), Consumer())
    assert closed == ["consumer", "admin"]
