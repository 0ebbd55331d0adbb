"""Builders of valid contract objects, with overrides: tests say only what matters to them."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared import codec
from shared.contracts import (
    AcceptedReport,
    Channel,
    LockException,
    ReceivedReport,
    Report,
    Timeliness,
)

_ids = itertools.count(1)

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")

KSTT_VALUES: dict[str, Decimal | str] = {
    "RECEIVED_ONLINE": Decimal(120),
    "RECEIVED_DIRECT": Decimal(30),
    "CARRIED_OVER": Decimal(5),
    "RECEIVED_TOTAL": Decimal(155),
    "RESOLVED_EARLY": Decimal(50),
    "RESOLVED_ON_TIME": Decimal(60),
    "RESOLVED_LATE": Decimal(10),
    "RESOLVED_TOTAL": Decimal(120),
    "PENDING_WITHIN": Decimal(30),
    "PENDING_OVERDUE": Decimal(5),
    "PENDING_TOTAL": Decimal(35),
    "PROCESSING_DAYS_TOTAL": Decimal("480.5"),
    "MAX_OVERDUE_DAYS": Decimal(4),
}


def kstt_values(online: int) -> dict[str, Decimal | str]:
    """KSTT_VALUES with `online` dossiers received online, and the totals the regime's
    rules tie to it (received = online + direct + carried over; pending = received -
    resolved; pending = within + overdue) changed to match."""
    received_total = online + 30 + 5
    pending = received_total - 120
    return dict(
        KSTT_VALUES,
        RECEIVED_ONLINE=Decimal(online),
        RECEIVED_TOTAL=Decimal(received_total),
        RESOLVED_TOTAL=Decimal(120),
        PENDING_WITHIN=Decimal(pending - 5),
        PENDING_TOTAL=Decimal(pending),
    )


KTXH_VALUES: dict[str, Decimal | str] = {
    "BUDGET_REVENUE": Decimal("152.35"),
    "BUDGET_EXPENDITURE": Decimal("98.10"),
    "PUBLIC_INVEST_PLAN": Decimal("400"),
    "PUBLIC_INVEST_DISBURSED": Decimal("123.456"),
    "NEW_ENTERPRISES": Decimal(12),
    "RETAIL_SALES": Decimal("310.5"),
}

NVCP_VALUES: dict[str, Decimal | str] = {
    "TASKS_ASSIGNED": Decimal(20),
    "TASKS_DONE_ON_TIME": Decimal(12),
    "TASKS_DONE_LATE": Decimal(2),
    "TASKS_IN_PROGRESS": Decimal(5),
    "TASKS_OVERDUE": Decimal(1),
    "ASSESSMENT": "Hoàn thành cơ bản các nhiệm vụ; còn vướng mắc về vốn.",
}


def report(**overrides: Any) -> Report:
    """A valid KSTT-TTHC 2026-Q1 report for commune TB.DH.N01, unless overridden."""
    fields: dict[str, Any] = {
        "schema": "baocao.report.v1",
        "report_id": f"test-{next(_ids)}-{uuid.uuid4().hex[:8]}",
        "regime": "KSTT-TTHC",
        "period": "2026-Q1",
        "unit": "TB.DH.N01",
        "revision": 1,
        "values": dict(KSTT_VALUES),
        "source": "motcua-test",
        "prepared_at": NOW,
    }
    fields.update(overrides)
    return Report.model_validate(fields)


def report_json(**overrides: Any) -> bytes:
    return codec.dumps(report(**overrides))


def received(at: datetime = NOW, **overrides: Any) -> ReceivedReport:
    return ReceivedReport(report=report(**overrides), received_at=at, channel=Channel.KAFKA)


def lock_exception(**overrides: Any) -> LockException:
    """An operator's exception for TB.DH.N01 in KSTT-TTHC 2026-Q1, opened at NOW for a day,
    unless overridden."""
    fields: dict[str, Any] = {
        "regime": "KSTT-TTHC",
        "period": "2026-Q1",
        "unit": "TB.DH.N01",
        "expires_at": NOW + timedelta(days=1),
        "reason": "Đơn vị bị mất điện kéo dài",
        "opened_by": "operator-1",
        "opened_at": NOW,
    }
    fields.update(overrides)
    return LockException.model_validate(fields)


def accepted(**overrides: Any) -> AcceptedReport:
    fields: dict[str, Any] = {
        "report_id": f"acc-{next(_ids)}",
        "regime": "KSTT-TTHC",
        "regime_version": 1,
        "period": "2026-Q1",
        "unit": "TB.DH.N01",
        "revision": 1,
        "values": dict(KSTT_VALUES),
        "received_at": NOW,
        "timeliness": Timeliness.ON_TIME,
    }
    fields.update(overrides)
    return AcceptedReport.model_validate(fields)


def accepted_from(report: Report, regime_version: int = 1) -> AcceptedReport:
    """The AcceptedReport validation publishes for `report`, received on time at NOW."""
    return AcceptedReport(
        report_id=report.report_id,
        regime=report.regime,
        regime_version=regime_version,
        period=report.period,
        unit=report.unit,
        revision=report.revision,
        values=report.values,
        received_at=NOW,
        timeliness=Timeliness.ON_TIME,
    )
