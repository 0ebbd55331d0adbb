"""`shared.contracts` is the wire contract of DESIGN §3, and it survives the wire unchanged.

Proves: every message model round-trips through `codec.dumps` and `codec.decode` equal to
itself, decimals digit for digit; a Report refuses unknown fields, naive datetimes,
revision 0, a bad report_id and values that are neither numbers nor strings, while a JSON
string stays a string (validation says E112 later) and a JSON number becomes a Decimal;
topic names, the compacted flag, DLQ names and message keys are the ones DESIGN fixes.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from shared import codec
from shared.contracts import (
    ACCEPTED,
    AGGREGATES,
    HUB_SYNC,
    INBOUND,
    OUTCOMES,
    PAYLOADS,
    RECEIVED,
    TOPICS,
    AcceptedReport,
    AggregateSnapshot,
    Channel,
    Completeness,
    DeliveryOutcome,
    HubSyncResult,
    Issue,
    Outcome,
    ReceivedReport,
    Report,
    Severity,
    Signature,
    Status,
    Timeliness,
    regime_period_key,
    report_id_of,
    scope_key,
)
from tests import factories

pytestmark = pytest.mark.unit

AT = datetime.fromisoformat("2026-03-16T10:00:05+07:00")


def _issue() -> Issue:
    return Issue(
        code="E120",
        rule="R04",
        severity=Severity.WARNING,
        field="values",
        message_vi="Số hồ sơ tiếp nhận chưa bằng số đã giải quyết cộng số đang giải quyết.",
        message_en="Dossiers received differ from resolved plus in progress.",
    )


def _completeness() -> Completeness:
    return Completeness(
        expected=33,
        reported=31,
        on_time=29,
        rate=Decimal("93.94"),
        on_time_rate=Decimal("87.88"),
        missing=("TB.DH.X02", "TB.VT.X03"),
    )


EXAMPLES: dict[str, BaseModel] = {
    "report": factories.report(
        note="Ghi chú: số liệu quý I",
        signature=Signature(alg="Ed25519", key_id="motcua-1", value="c2lnbmF0dXJl"),
        values={**factories.KSTT_VALUES, "PROCESSING_DAYS_TOTAL": Decimal("1234567890123.45")},
    ),
    "report with a text value": factories.report(
        regime="NVCP-S", period="2026-S1", unit="TB.STC", values=dict(factories.NVCP_VALUES)
    ),
    "received report": factories.received(),
    "lock exception": factories.lock_exception(
        expires_at=datetime.fromisoformat("2026-04-30T17:00:00+07:00"),
        reason="Mất điện kéo dài tại xã",
        opened_at=AT,
    ),
    "outcome": Outcome(
        report_id="r-1",
        regime="KSTT-TTHC",
        period="2026-Q1",
        unit="TB.DH.N01",
        revision=1,
        status=Status.ACCEPTED,
        timeliness=Timeliness.ON_TIME,
        received_at=AT,
        deadline=date(2026, 3, 18),
        issues=(_issue(),),
    ),
    "outcome of an unreadable report": Outcome(report_id="r-2", status=Status.REJECTED),
    "accepted report": factories.accepted(
        values={**factories.KTXH_VALUES, "BUDGET_REVENUE": Decimal("1234567890123.4567891234")}
    ),
    "aggregate snapshot": AggregateSnapshot(
        regime="KSTT-TTHC",
        regime_version=1,
        period="2026-Q1",
        unit="TB",
        version=42,
        values={"RECEIVED_ONLINE": Decimal(4512), "ON_TIME_RATE": None, "ZERO": Decimal("0.00")},
        completeness=_completeness(),
        computed_at=AT,
    ),
    "hub sync result": HubSyncResult(
        regime="KSTT-TTHC",
        period="2026-Q1",
        unit="TB",
        version=42,
        outcome=DeliveryOutcome.FAILED,
        status_code=503,
        attempt=3,
        error="HTTP 503",
        attempted_at=AT,
    ),
    "issue": _issue(),
    "completeness": _completeness(),
    "signature": Signature(alg="Ed25519", key_id="k", value="dmFsdWU="),
}


def _decimal_texts(value: Any) -> Any:
    """Every Decimal as its text, so that equality also means the same digits."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _decimal_texts(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_decimal_texts(v) for v in value]
    return value


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_message_round_trips_through_the_codec_unchanged(name: str) -> None:
    message = EXAMPLES[name]
    decoded = codec.decode(type(message), codec.dumps(message))
    assert decoded == message
    assert _decimal_texts(decoded.model_dump()) == _decimal_texts(message.model_dump())


def test_every_model_of_every_topic_has_a_round_trip_example() -> None:
    tested = {type(message) for message in EXAMPLES.values()}
    assert {model for models in PAYLOADS.values() for model in models} <= tested


def test_payloads_name_every_topic_once() -> None:
    assert set(PAYLOADS) == {topic.name for topic in TOPICS}


def test_a_report_is_written_with_its_schema_under_the_key_schema() -> None:
    document = json.loads(codec.dumps(factories.report()))
    assert document["schema"] == "baocao.report.v1"
    assert "schema_" not in document


def report_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(factories.report_json())
    document.update(changes)
    return document


def encoded(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("changes", "error_type", "loc"),
    [
        ({"extra": 1}, "extra_forbidden", ("extra",)),
        ({"prepared_at": "2026-03-16T10:00:00"}, "timezone_aware", ("prepared_at",)),
        ({"revision": 0}, "greater_than_equal", ("revision",)),
        ({"revision": 2_000_000_001}, "less_than_equal", ("revision",)),
        ({"report_id": "-starts-with-a-dash"}, "string_pattern_mismatch", ("report_id",)),
        ({"report_id": "has space"}, "string_pattern_mismatch", ("report_id",)),
        ({"report_id": "x" * 129}, "string_pattern_mismatch", ("report_id",)),
        ({"unit": "tb.dh.n01"}, "string_pattern_mismatch", ("unit",)),
        ({"schema": "baocao.report.v2"}, "literal_error", ("schema",)),
        ({"source": ""}, "string_too_short", ("source",)),
        ({"values": {"RECEIVED_ONLINE": True}}, "decimal_type", ("values", "RECEIVED_ONLINE")),
        ({"values": {"RECEIVED_ONLINE": None}}, "decimal_type", ("values", "RECEIVED_ONLINE")),
        ({"values": {"RECEIVED_ONLINE": [1]}}, "decimal_type", ("values", "RECEIVED_ONLINE")),
        ({"values": {"RECEIVED_ONLINE": {"a": 1}}}, "decimal_type", ("values", "RECEIVED_ONLINE")),
        ({"values": {"lower": 1}}, "string_pattern_mismatch", ("values", "lower", "[key]")),
    ],
)
def test_a_report_refuses_what_the_contract_does_not_allow(
    changes: dict[str, Any], error_type: str, loc: tuple[str, ...]
) -> None:
    with pytest.raises(ValidationError) as caught:
        codec.decode(Report, encoded(report_document(**changes)))
    found = {(e["type"], e["loc"][: len(loc)]) for e in caught.value.errors()}
    assert (error_type, loc) in found


def test_a_revision_sent_as_a_string_is_refused_not_coerced() -> None:
    with pytest.raises(ValidationError, match="revision"):
        codec.decode(Report, encoded(report_document(revision="1")))


def test_a_report_with_more_than_500_values_is_refused() -> None:
    values = {f"I{n:03d}": n for n in range(501)}
    with pytest.raises(ValidationError, match="values"):
        codec.decode(Report, encoded(report_document(values=values)))


def test_a_json_string_stays_a_string_and_a_json_number_becomes_a_decimal() -> None:
    values = b'{"AS_TEXT": "12", "AS_NUMBER": 12, "BIG": 1234567890123.4567891234, "TENTH": 0.1}'
    raw = encoded(report_document(values={})).replace(b'"values": {}', b'"values": ' + values)
    report = codec.decode(Report, raw)
    assert report.values == {
        "AS_TEXT": "12",
        "AS_NUMBER": Decimal(12),
        "BIG": Decimal("1234567890123.4567891234"),
        "TENTH": Decimal("0.1"),
    }
    assert isinstance(report.values["AS_TEXT"], str)  # E112 is validation's to say
    assert isinstance(report.values["AS_NUMBER"], Decimal)
    assert str(report.values["BIG"]) == "1234567890123.4567891234"


@pytest.mark.parametrize("model", [ReceivedReport, AcceptedReport])
def test_on_internal_topics_too_a_string_stays_a_string_and_a_number_becomes_a_decimal(
    model: type[ReceivedReport] | type[AcceptedReport],
) -> None:
    values = {"AS_TEXT": "12", "AS_NUMBER": 12, "BIG": Decimal("1234567890123.4567891234")}
    message = factories.received() if model is ReceivedReport else factories.accepted()
    document = json.loads(codec.dumps(message))
    (document["report"] if model is ReceivedReport else document)["values"] = values
    decoded = codec.decode_internal(model, codec.dumps(document))
    read = decoded.report.values if isinstance(decoded, ReceivedReport) else decoded.values
    assert read == values
    assert [type(v) for v in read.values()] == [str, Decimal, Decimal]
    assert str(read["BIG"]) == "1234567890123.4567891234"


def test_a_report_is_immutable() -> None:
    report = factories.report()
    with pytest.raises(ValidationError):
        report.revision = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("model", "document"),
    [
        (
            ReceivedReport,
            {
                "report": json.loads(factories.report_json()),
                "received_at": "2026-03-16T10:00:05",
                "channel": "kafka",
            },
        ),
        (
            AcceptedReport,
            {
                **json.loads(codec.dumps(factories.accepted())),
                "received_at": "2026-03-16T10:00:05",
            },
        ),
    ],
)
def test_internal_messages_refuse_naive_datetimes(
    model: type[BaseModel], document: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        codec.decode(model, json.dumps(document))


def test_a_received_report_names_its_channel() -> None:
    assert factories.received().channel is Channel.KAFKA
    assert {c.value for c in Channel} == {"kafka", "http"}


@pytest.mark.parametrize(
    ("topic", "name", "compacted"),
    [
        (INBOUND, "reports.inbound.v1", False),
        (RECEIVED, "reports.received.v1", False),
        (OUTCOMES, "reports.outcomes.v1", False),
        (ACCEPTED, "reports.accepted.v1", False),
        (AGGREGATES, "aggregates.v1", True),
        (HUB_SYNC, "hub.sync.v1", False),
    ],
)
def test_topic_names_and_cleanup_are_those_of_design_section_3(
    topic: Any, name: str, compacted: bool
) -> None:
    assert topic.name == name
    assert topic.compacted is compacted
    assert topic.dlq == f"{name}.dlq"


def test_the_topic_table_lists_each_topic_once_in_flow_order() -> None:
    assert [t.name for t in TOPICS] == [
        "reports.inbound.v1",
        "reports.received.v1",
        "reports.outcomes.v1",
        "reports.accepted.v1",
        "aggregates.v1",
        "hub.sync.v1",
    ]


def test_received_and_accepted_reports_are_keyed_by_regime_and_period() -> None:
    assert regime_period_key("KSTT-TTHC", "2026-Q1") == b"KSTT-TTHC|2026-Q1"


def test_aggregate_snapshots_are_keyed_by_regime_period_and_scope_unit() -> None:
    assert scope_key("KSTT-TTHC", "2026-Q1", "TB") == b"KSTT-TTHC|2026-Q1|TB"


def test_keys_are_utf8_bytes() -> None:
    assert scope_key("R", "2026", "Đ") == "R|2026|Đ".encode()


@pytest.mark.parametrize(
    ("outcome", "value"),
    [
        (DeliveryOutcome.STORED, "stored"),
        (DeliveryOutcome.UNCHANGED, "unchanged"),
        (DeliveryOutcome.STALE, "stale"),
        (DeliveryOutcome.REFUSED, "refused"),
        (DeliveryOutcome.FAILED, "failed"),
    ],
)
def test_delivery_outcomes_have_their_wire_names(outcome: DeliveryOutcome, value: str) -> None:
    assert outcome.value == value


def test_a_snapshot_version_starts_at_one() -> None:
    snapshot = EXAMPLES["aggregate snapshot"]
    document = json.loads(codec.dumps(snapshot))
    document["version"] = 0
    with pytest.raises(ValidationError, match="version"):
        codec.decode(AggregateSnapshot, json.dumps(document))


def test_a_snapshot_writes_a_missing_value_as_null_and_a_zero_as_a_number() -> None:
    document = json.loads(codec.dumps(EXAMPLES["aggregate snapshot"]))
    assert document["values"]["ON_TIME_RATE"] is None
    assert document["values"]["ZERO"] == 0
    assert b'"ZERO":0.00' in codec.dumps(EXAMPLES["aggregate snapshot"])


def test_the_report_id_is_read_from_every_message_that_names_one() -> None:
    received = factories.received(report_id="r-received")
    accepted = factories.accepted(report_id="r-accepted")
    assert report_id_of(codec.dumps(received)) == "r-received"
    assert report_id_of(codec.dumps(accepted)) == "r-accepted"
    assert report_id_of(codec.dumps(EXAMPLES["outcome"])) == "r-1"
    assert report_id_of(codec.dumps(EXAMPLES["lock exception"])) is None


@pytest.mark.parametrize(
    "message",
    [b"", b"not json", b"[]", b'{"report_id": 7}', b'{"report": "r-1"}', b"[" * 100_000],
)
def test_a_message_whose_report_id_cannot_be_read_names_none(message: bytes) -> None:
    assert report_id_of(message) is None
