"""Every message baocao exchanges over Kafka, and every topic, declared once.

These models are the contract with local systems (reporting units' software), with the
national hub (Hệ thống thông tin báo cáo Chính phủ) and between the services. Within `v1`
changes are additive only; a breaking change is a new `.v2` topic. Field descriptions are
written for the people who build against them: they become the AsyncAPI document.

Numbers are `Decimal` end to end: JSON numbers are parsed exactly (see `shared.codec`)
and written back as JSON numbers, never through binary floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

# --- topics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicSpec:
    """A topic the system creates at start: its partitions and its cleanup policy."""

    name: str
    description: str
    compacted: bool = False
    has_dlq: bool = True

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"


INBOUND = TopicSpec(
    "reports.inbound.v1",
    "Reports sent by local systems (Report). Any key; the key carries no meaning.",
)
RECEIVED = TopicSpec(
    "reports.received.v1",
    "Reports stored by submission, stamped with received_at (ReceivedReport), "
    "keyed by regime|period, and operators' lock exceptions (LockException).",
)
OUTCOMES = TopicSpec(
    "reports.outcomes.v1",
    "Every verdict on a report (Outcome), keyed by unit: senders listen here.",
)
ACCEPTED = TopicSpec(
    "reports.accepted.v1",
    "Reports that passed validation (AcceptedReport), keyed by regime|period.",
)
AGGREGATES = TopicSpec(
    "aggregates.v1",
    "Aggregate snapshots (AggregateSnapshot), compacted, keyed by regime|period|unit; "
    "consumers keep the highest version.",
    compacted=True,
)
HUB_SYNC = TopicSpec(
    "hub.sync.v1",
    "The result of every delivery attempt to the national hub (HubSyncResult), "
    "keyed by regime|period|unit.",
)

TOPICS: tuple[TopicSpec, ...] = (INBOUND, RECEIVED, OUTCOMES, ACCEPTED, AGGREGATES, HUB_SYNC)


# Header on aggregates.v1: received_at of the newest report the snapshot counts, so the
# connector can measure receipt → hub acknowledgement without widening the payload.
NEWEST_RECEIPT_HEADER = "baocao-newest-receipt"


def regime_period_key(regime: str, period: str) -> bytes:
    """Key of received and accepted reports: one consumer owns every scope of a regime-period."""
    return f"{regime}|{period}".encode()


def scope_key(regime: str, period: str, unit: str) -> bytes:
    return f"{regime}|{period}|{unit}".encode()


class _Named(msgspec.Struct):
    report_id: str | None = None


class _Naming(msgspec.Struct):
    report_id: str | None = None  # AcceptedReport, Outcome
    report: _Named | None = None  # ReceivedReport


_naming = msgspec.json.Decoder(_Naming)


def report_id_of(message: bytes) -> str | None:
    """The report id an internal message names (at its top, or in its `report`), read
    without decoding the rest: a stage recognises a redelivered report before parsing it.
    None when it names none (a lock exception) or cannot be read (decoding it in full
    says why)."""
    try:
        named = _naming.decode(message)
    except (msgspec.DecodeError, RecursionError):
        return None
    if named.report_id is not None:
        return named.report_id
    return named.report.report_id if named.report is not None else None


# --- building blocks ----------------------------------------------------------------------

Code = Annotated[str, StringConstraints(pattern=r"^[A-Z0-9][A-Z0-9._-]{0,63}$")]
ReportId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
PeriodCode = Annotated[str, StringConstraints(min_length=1, max_length=16)]
Value = Decimal | str


class _Inbound(BaseModel):
    """What comes from outside: unknown fields are refused, nothing is coerced silently."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class _Internal(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Signature(_Inbound):
    alg: Literal["Ed25519"] = Field(description="Signature algorithm; only Ed25519.")
    key_id: str = Field(max_length=128, description="Id of the sender's registered public key.")
    value: str = Field(
        max_length=256,
        description="Base64 signature over the canonical JSON of the report without "
        "its `signature` field (sorted keys, no spaces, UTF-8).",
    )


class Report(_Inbound):
    """A report (báo cáo) for one regime, period and reporting unit, as a local system sends it."""

    schema_: Literal["baocao.report.v1"] = Field(
        alias="schema", description='Always "baocao.report.v1".'
    )
    report_id: ReportId = Field(
        description="The sender's idempotency key. The same id again is a duplicate: no "
        "effect, and the original verdict is repeated with status `duplicate`."
    )
    regime: Code = Field(description="Regime code (chế độ báo cáo), e.g. KSTT-TTHC.")
    period: PeriodCode = Field(
        description="Period code: 2026-M03, 2026-Q1, 2026-S1 or 2026 per the regime's frequency."
    )
    unit: Code = Field(description="Reporting unit code (đơn vị báo cáo), e.g. TB.DH.X01.")
    revision: StrictInt = Field(
        ge=1,
        le=2_000_000_000,
        description="1 for the first report; a correction sends a higher revision. The latest "
        "accepted revision is the one counted.",
    )
    values: dict[Code, Value] = Field(
        max_length=500,
        description="Indicator code → value: a JSON number for integer, decimal and percent "
        "indicators (exact decimal), a string for text indicators.",
    )
    source: str = Field(
        min_length=1, max_length=128, description="The sending local system's name."
    )
    prepared_at: AwareDatetime = Field(description="When the sender prepared the report.")
    note: str | None = Field(default=None, max_length=2000, description="Optional free text.")
    signature: Signature | None = Field(default=None, description="Optional Ed25519 signature.")


class Channel(StrEnum):
    KAFKA = "kafka"
    HTTP = "http"


class ReceivedReport(_Internal):
    """A report stored durably by submission, stamped with the server's receipt time."""

    schema_: Literal["baocao.received.v1"] = Field(
        default="baocao.received.v1", alias="schema", description='"baocao.received.v1".'
    )
    report: Report = Field(description="The report as sent.")
    received_at: AwareDatetime = Field(
        description="Submission's clock when it first ingested the report: a sender cannot "
        "back-date a report. Decides timeliness."
    )
    channel: Channel = Field(description="How the report arrived.")


class LockException(_Internal):
    """An operator's exception that lets one unit report into a locked period until it expires."""

    schema_: Literal["baocao.lock_exception.v1"] = Field(
        default="baocao.lock_exception.v1",
        alias="schema",
        description='"baocao.lock_exception.v1".',
    )
    regime: Code = Field(description="Regime code.")
    period: PeriodCode = Field(description="Period code.")
    unit: Code = Field(description="Reporting unit allowed to report after the lock.")
    expires_at: AwareDatetime = Field(description="The exception ends at this instant.")
    reason: str = Field(min_length=1, max_length=2000, description="Why it was opened.")
    opened_by: str = Field(min_length=1, max_length=128, description="Operator who opened it.")
    opened_at: AwareDatetime = Field(description="When it was opened.")


class Status(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


class Timeliness(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Issue(_Internal):
    """One problem found in a report, with a stable code and a bilingual message."""

    code: str = Field(description="Stable code, E100..E150 (see the README's table).")
    rule: str | None = Field(default=None, description="Regime rule code for E120, else null.")
    severity: Severity = Field(description="`error` rejects the report; `warning` does not.")
    indicator: str | None = Field(default=None, description="Indicator concerned, if any.")
    field: str | None = Field(
        default=None, description="Path of the offending field, e.g. `values.RECEIVED_TOTAL`."
    )
    message_vi: str = Field(description="Message for the reporting unit, in Vietnamese.")
    message_en: str = Field(description="The same message in English.")


class Outcome(_Internal):
    """The verdict on one report, sent back to the reporting unit on reports.outcomes.v1."""

    schema_: Literal["baocao.outcome.v1"] = Field(
        default="baocao.outcome.v1", alias="schema", description='"baocao.outcome.v1".'
    )
    report_id: str = Field(description="The report's id as sent.")
    regime: str | None = Field(default=None, description="As sent; null if unreadable.")
    period: str | None = Field(default=None, description="As sent; null if unreadable.")
    unit: str | None = Field(default=None, description="As sent; null if unreadable.")
    revision: int | None = Field(default=None, description="As sent; null if unreadable.")
    status: Status = Field(description="accepted (maybe with warnings), rejected, or duplicate.")
    timeliness: Timeliness | None = Field(
        default=None, description="on_time or late, when the period's deadline could be found."
    )
    received_at: AwareDatetime | None = Field(default=None, description="Server receipt time.")
    deadline: date | None = Field(default=None, description="The unit_to_province deadline.")
    issues: tuple[Issue, ...] = Field(
        default=(), description="Every issue found, not only the first."
    )


class AcceptedReport(_Internal):
    """A report that passed validation, with what aggregation needs to count it."""

    schema_: Literal["baocao.accepted.v1"] = Field(
        default="baocao.accepted.v1", alias="schema", description='"baocao.accepted.v1".'
    )
    report_id: str = Field(description="The report's id.")
    regime: str = Field(description="Regime code.")
    regime_version: int = Field(description="The regime version in force for the period.")
    period: str = Field(description="Period code.")
    unit: str = Field(description="Reporting unit.")
    revision: int = Field(description="Revision; the highest accepted one is counted.")
    values: dict[str, Value] = Field(description="Indicator values as validated.")
    received_at: AwareDatetime = Field(description="Server receipt time.")
    timeliness: Timeliness = Field(description="Whether this revision arrived on time.")


class Completeness(_Internal):
    """Who has reported in a scope (mức độ đầy đủ) and who did so on time."""

    expected: int = Field(description="Reporting units expected in the scope.")
    reported: int = Field(description="Units with an accepted report.")
    on_time: int = Field(description="Units whose first accepted revision was on time.")
    rate: Decimal = Field(description="reported / expected, percent, 2 decimals.")
    on_time_rate: Decimal = Field(description="on_time / expected, percent, 2 decimals.")
    missing: tuple[str, ...] = Field(description="Expected units without an accepted report.")


class AggregateSnapshot(_Internal):
    """The roll-up of one regime and period for one scope unit (the province, a district)."""

    schema_: Literal["baocao.aggregate.v1"] = Field(
        default="baocao.aggregate.v1", alias="schema", description='"baocao.aggregate.v1".'
    )
    regime: str = Field(description="Regime code.")
    regime_version: int = Field(description="Regime version in force for the period.")
    period: str = Field(description="Period code.")
    unit: str = Field(description="Scope unit.")
    version: int = Field(ge=1, description="Rises by one on every change; keep the highest.")
    values: dict[str, Value | None] = Field(
        description="Indicator → rolled-up value. Explicit zeros; null when no value is left "
        "(no contributing report, or a derived value with a zero denominator)."
    )
    completeness: Completeness = Field(description="Completeness and timeliness of the scope.")
    computed_at: AwareDatetime = Field(description="When this version was computed.")


class DeliveryOutcome(StrEnum):
    STORED = "stored"
    UNCHANGED = "unchanged"
    STALE = "stale"
    REFUSED = "refused"
    FAILED = "failed"


class HubSyncResult(_Internal):
    """The result of one attempt to deliver a snapshot version to the national hub."""

    schema_: Literal["baocao.hub_sync.v1"] = Field(
        default="baocao.hub_sync.v1", alias="schema", description='"baocao.hub_sync.v1".'
    )
    regime: str = Field(description="Regime code.")
    period: str = Field(description="Period code.")
    unit: str = Field(description="Scope unit.")
    version: int = Field(description="Snapshot version sent.")
    outcome: DeliveryOutcome = Field(
        description="stored/unchanged/stale count as delivered; refused (422) parks the "
        "snapshot; failed will be retried."
    )
    status_code: int | None = Field(default=None, description="HTTP status, if any.")
    attempt: int = Field(ge=1, description="Attempt number for this version.")
    error: str | None = Field(default=None, description="Why it failed, if it did.")
    attempted_at: AwareDatetime = Field(description="When the attempt ended.")


PAYLOADS: dict[str, tuple[type[BaseModel], ...]] = {
    INBOUND.name: (Report,),
    RECEIVED.name: (ReceivedReport, LockException),
    OUTCOMES.name: (Outcome,),
    ACCEPTED.name: (AcceptedReport,),
    AGGREGATES.name: (AggregateSnapshot,),
    HUB_SYNC.name: (HubSyncResult,),
}
