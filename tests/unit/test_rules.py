"""`services.validation.rules.validate` gives every issue of a report, with code and field.

Proves, on the shipped catalog: passing and failing rows per code E101..E130 (the failing
row names the code AND the field path), lock exceptions that let a unit through only
between their opening and their expiry, numbers refused when they carry more digits than
sums keep exactly, the regime rules (an error rejects, a warning accepts and is listed, a
rule with a missing indicator or no computable value is skipped, arithmetic is exact),
that a report with several problems lists all of them in DESIGN §4 order, messages that
say what, where and why in both languages, timeliness on either side of the deadline in
Vietnam's time zone, and the deadline and regime version a verdict carries. The unit
hierarchy is the one of the period window's last day, not of the day received (a district
filing after districts ended, communes of the merger); E105 and E106 turn on Vietnam's day,
which starts at 17:00 UTC. On regimes built for the purpose: `min` and `max` bounds,
inclusive to the last place, for integer, percent and decimal indicators; and judging many
reports compiles each regime version's rules once, when the rule book is built. E100 and
E150 (the contract) are submission's, tabled in test_intake.py.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import evalidate
import pytest

from services.validation.rules import Facts, LockWindow, RuleBook, Verdict, validate
from shared import expressions
from shared.catalog import Catalog, Regime, load_catalog
from shared.contracts import Severity, Status, Timeliness
from tests import factories

pytestmark = pytest.mark.unit

BOOK = RuleBook(load_catalog(Path(__file__).parents[2] / "catalog"))
NO_FACTS = Facts()
Q1_2026 = "2026-03-16T10:00:00+07:00"  # inside KSTT-TTHC 2026-Q1, before its deadline


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def kstt(**changes: Any) -> dict[str, Any]:
    """KSTT-TTHC values that pass every rule, with changes (None removes an indicator)."""
    values: dict[str, Any] = dict(factories.KSTT_VALUES)
    for code, value in changes.items():
        if value is None:
            values.pop(code, None)
        else:
            values[code] = value
    return values


def nvcp(**changes: Any) -> dict[str, Any]:
    return {**factories.NVCP_VALUES, **changes}


KTXH = dict(factories.KTXH_VALUES)
NVCP_S1 = {"regime": "NVCP-S", "period": "2026-S1", "unit": "TB.STC"}
NVCP_AT = "2026-06-10T09:00:00+07:00"


class Row(NamedTuple):
    code: str
    overrides: dict[str, Any]
    received_at: str = Q1_2026
    facts: Facts = NO_FACTS
    issue: tuple[str, str] | None = None  # (code, field) expected; None: no issue of `code`
    status: Status | None = None


def judge(overrides: dict[str, Any], received_at: str, facts: Facts = NO_FACTS) -> Verdict:
    return validate(factories.report(**overrides), at(received_at), BOOK, facts)


def excepted(opened: str, expires: str) -> Facts:
    """An operator's lock exception for the report's unit, open from `opened` to `expires`."""
    return Facts(lock_exceptions=(LockWindow(at(opened), at(expires)),))


ROWS: dict[str, Any] = {
    # E101 unknown regime
    "E101 a known regime": Row("E101", {}, status=Status.ACCEPTED),
    "E101 an unknown regime": Row(
        "E101", {"regime": "KSTT-XYZ"}, issue=("E101", "regime"), status=Status.REJECTED
    ),
    # E102 unknown unit
    "E102 a known unit": Row("E102", {"unit": "TB.TTPVHCC"}, status=Status.ACCEPTED),
    "E102 an unknown unit": Row(
        "E102", {"unit": "TB.NOWHERE"}, issue=("E102", "unit"), status=Status.REJECTED
    ),
    # E103 not a reporter of this regime for this period
    "E103 a commune reporting KSTT-TTHC": Row("E103", {}, status=Status.ACCEPTED),
    "E103 a department reporting KSTT-TTHC": Row(
        "E103", {"unit": "TB.VP"}, issue=("E103", "unit"), status=Status.REJECTED
    ),
    "E103 a commune reporting KTXH-M before the merger": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M06", "unit": "TB.DH.X01", "values": KTXH},
        "2025-06-16T09:00:00+07:00",
        issue=("E103", "unit"),
        status=Status.REJECTED,
    ),
    "E103 a district reporting KTXH-M 2025-M06": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M06", "unit": "TB.DH", "values": KTXH},
        "2025-06-16T09:00:00+07:00",
        status=Status.ACCEPTED,
    ),
    "E103 a district reporting KTXH-M 2025-M07": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M07", "unit": "TB.DH", "values": KTXH},
        "2025-07-15T09:00:00+07:00",
        issue=("E103", "unit"),
        status=Status.REJECTED,
    ),
    # The hierarchy is the one of the window's last day (2025-06-14 for 2025-M06, 2025-07-14
    # for 2025-M07), not of the day received: districts ended on 2025-06-30.
    "E103 a district filing KTXH-M 2025-M06 late, after districts ended": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M06", "unit": "TB.DH", "values": KTXH},
        "2025-07-01T09:00:00+07:00",
        status=Status.ACCEPTED,
    ),
    "E103 a district filing KTXH-M 2025-M06 on the lock's last day": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M06", "unit": "TB.DH", "values": KTXH},
        "2025-07-02T23:59:59+07:00",
        status=Status.ACCEPTED,
    ),
    "E103 a commune of the merger filing KTXH-M 2025-M06 once it exists": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M06", "unit": "TB.DH.N01", "values": KTXH},
        "2025-07-01T09:00:00+07:00",
        issue=("E103", "unit"),
        status=Status.REJECTED,
    ),
    "E103 a commune of the merger filing KTXH-M 2025-M07 before it exists": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M07", "unit": "TB.DH.N01", "values": KTXH},
        "2025-06-20T09:00:00+07:00",
        status=Status.ACCEPTED,
    ),
    "E103 a commune of 2025 filing KTXH-M 2025-M07 while it still exists": Row(
        "E103",
        {"regime": "KTXH-M", "period": "2025-M07", "unit": "TB.DH.X01", "values": KTXH},
        "2025-06-20T09:00:00+07:00",
        issue=("E103", "unit"),
        status=Status.REJECTED,
    ),
    "E103 a commune of 2025 reporting KSTT-TTHC 2025-Q1": Row(
        "E103",
        {"period": "2025-Q1", "unit": "TB.DH.X01"},
        "2025-03-16T09:00:00+07:00",
        status=Status.ACCEPTED,
    ),
    "E103 a commune of 2025 reporting KSTT-TTHC 2026-Q1": Row(
        "E103", {"unit": "TB.DH.X01"}, issue=("E103", "unit"), status=Status.REJECTED
    ),
    # E104 bad period code, or not the regime's frequency
    "E104 a quarter for a quarterly regime": Row("E104", {"period": "2026-Q1"}),
    "E104 a quarter that does not exist": Row(
        "E104", {"period": "2026-Q5"}, issue=("E104", "period"), status=Status.REJECTED
    ),
    "E104 a lower-case code": Row("E104", {"period": "2026-q1"}, issue=("E104", "period")),
    "E104 a year outside 2000..2100": Row(
        "E104", {"period": "1999-Q1"}, issue=("E104", "period"), status=Status.REJECTED
    ),
    "E104 a bad code with an unknown regime": Row(
        "E104", {"regime": "NOPE", "period": "Q1-2026"}, issue=("E104", "period")
    ),
    "E104 any good code with an unknown regime": Row(
        "E104", {"regime": "NOPE", "period": "2026-M03"}, status=Status.REJECTED
    ),
    "E104 a month for a quarterly regime": Row(
        "E104", {"period": "2026-M03"}, issue=("E104", "period"), status=Status.REJECTED
    ),
    "E104 a quarter for a monthly regime": Row(
        "E104",
        {"regime": "KTXH-M", "period": "2025-Q3", "unit": "TB.DH.N01", "values": KTXH},
        "2025-08-01T09:00:00+07:00",
        issue=("E104", "period"),
    ),
    # E105 period not open yet: 2026-Q1's window starts on 2025-12-15
    "E105 on the first day of the window": Row(
        "E105", {}, "2025-12-15T00:00:00+07:00", status=Status.ACCEPTED
    ),
    "E105 the day before the window": Row(
        "E105", {}, "2025-12-14T23:59:59+07:00", issue=("E105", "period"), status=Status.REJECTED
    ),
    # The same instants in UTC: the day is Vietnam's, which starts at 17:00 UTC.
    "E105 the window's first day starts at 17:00 UTC": Row(
        "E105", {}, "2025-12-14T17:00:00+00:00", status=Status.ACCEPTED
    ),
    "E105 a second before 17:00 UTC on the day before": Row(
        "E105", {}, "2025-12-14T16:59:59+00:00", issue=("E105", "period"), status=Status.REJECTED
    ),
    # E106 period locked: deadline 2026-03-18 + 30 days = 2026-04-17, the last day accepted
    "E106 on the last day before the lock": Row(
        "E106", {}, "2026-04-17T23:59:59+07:00", status=Status.ACCEPTED
    ),
    "E106 the day after": Row(
        "E106", {}, "2026-04-18T00:00:00+07:00", issue=("E106", "period"), status=Status.REJECTED
    ),
    "E106 the lock's last second, in UTC": Row(
        "E106", {}, "2026-04-17T16:59:59+00:00", status=Status.ACCEPTED
    ),
    "E106 locked from 17:00 UTC on the last day": Row(
        "E106", {}, "2026-04-17T17:00:00+00:00", issue=("E106", "period"), status=Status.REJECTED
    ),
    "E106 inside a lock exception": Row(
        "E106",
        {},
        "2026-04-20T10:00:00+07:00",
        excepted("2026-04-20T09:00:00+07:00", "2026-04-30T00:00:00+07:00"),
        status=Status.ACCEPTED,
    ),
    "E106 once the lock exception expired": Row(
        "E106",
        {},
        "2026-04-20T10:00:00+07:00",
        excepted("2026-04-20T09:00:00+07:00", "2026-04-20T10:00:00+07:00"),
        issue=("E106", "period"),
        status=Status.REJECTED,
    ),
    "E106 received before the lock exception was opened": Row(
        "E106",
        {},
        "2026-04-20T08:59:59+07:00",
        excepted("2026-04-20T09:00:00+07:00", "2026-04-30T00:00:00+07:00"),
        issue=("E106", "period"),
        status=Status.REJECTED,
    ),
    "E106 one exception of several covers the report": Row(
        "E106",
        {},
        "2026-05-03T10:00:00+07:00",
        Facts(
            lock_exceptions=(
                LockWindow(at("2026-04-20T09:00:00+07:00"), at("2026-04-21T09:00:00+07:00")),
                LockWindow(at("2026-05-03T09:00:00+07:00"), at("2026-05-04T09:00:00+07:00")),
            )
        ),
        status=Status.ACCEPTED,
    ),
    "E106 a period not open yet is not also locked": Row(
        "E106", {"period": "2026-Q3"}, status=Status.REJECTED
    ),
    # E107 no regime version in force: KTXH-M v1 starts on 2020-12-15
    "E107 the first period of KTXH-M v1": Row(
        "E107",
        {"regime": "KTXH-M", "period": "2021-M01", "unit": "TB.DH", "values": KTXH},
        "2021-01-10T09:00:00+07:00",
        status=Status.ACCEPTED,
    ),
    "E107 a period before KTXH-M v1": Row(
        "E107",
        {"regime": "KTXH-M", "period": "2020-M11", "unit": "TB.DH", "values": KTXH},
        "2020-11-16T09:00:00+07:00",
        issue=("E107", "period"),
        status=Status.REJECTED,
    ),
    # E110 unknown indicator
    "E110 only the regime's indicators": Row("E110", {}),
    "E110 an indicator of another regime": Row(
        "E110",
        {"values": kstt(BUDGET_REVENUE=Decimal(1))},
        issue=("E110", "values.BUDGET_REVENUE"),
        status=Status.REJECTED,
    ),
    # E111 required indicator missing
    "E111 an optional indicator left out": Row(
        "E111", {"values": kstt(MAX_OVERDUE_DAYS=None)}, status=Status.ACCEPTED
    ),
    "E111 a required indicator left out": Row(
        "E111",
        {"values": kstt(RECEIVED_ONLINE=None)},
        issue=("E111", "values.RECEIVED_ONLINE"),
        status=Status.REJECTED,
    ),
    # E112 wrong type
    "E112 an integer written 120.0": Row(
        "E112", {"values": kstt(RECEIVED_ONLINE=Decimal("120.0"))}, status=Status.ACCEPTED
    ),
    "E112 a decimal with a fraction": Row(
        "E112", {"values": kstt(PROCESSING_DAYS_TOTAL=Decimal("480.25"))}
    ),
    "E112 an integer with a fraction": Row(
        "E112",
        {"values": kstt(RECEIVED_ONLINE=Decimal("120.5"))},
        issue=("E112", "values.RECEIVED_ONLINE"),
        status=Status.REJECTED,
    ),
    "E112 text for a number": Row(
        "E112",
        {"values": kstt(RECEIVED_ONLINE="120")},
        issue=("E112", "values.RECEIVED_ONLINE"),
        status=Status.REJECTED,
    ),
    "E112 text for a text indicator": Row(
        "E112", {**NVCP_S1, "values": nvcp()}, NVCP_AT, status=Status.ACCEPTED
    ),
    "E112 a number for a text indicator": Row(
        "E112",
        {**NVCP_S1, "values": nvcp(ASSESSMENT=Decimal(5))},
        NVCP_AT,
        issue=("E112", "values.ASSESSMENT"),
        status=Status.REJECTED,
    ),
    "E112 fifteen integer digits": Row(
        "E112",
        {"values": kstt(PROCESSING_DAYS_TOTAL=Decimal("999999999999999.999999999"))},
        status=Status.ACCEPTED,
    ),
    "E112 trailing zeros beyond nine places": Row(
        "E112", {"values": kstt(PROCESSING_DAYS_TOTAL=Decimal("480.500000000000"))}
    ),
    "E112 sixteen integer digits": Row(
        "E112",
        {"values": kstt(PROCESSING_DAYS_TOTAL=Decimal("1000000000000000"))},
        issue=("E112", "values.PROCESSING_DAYS_TOTAL"),
        status=Status.REJECTED,
    ),
    "E112 an integer of sixteen digits": Row(
        "E112",
        {"values": kstt(RECEIVED_ONLINE=Decimal("1000000000000000"))},
        issue=("E112", "values.RECEIVED_ONLINE"),
        status=Status.REJECTED,
    ),
    "E112 an integer of fifteen digits written with places": Row(
        "E112", {"values": kstt(CARRIED_OVER=Decimal("999999999999999.000000000000"))}
    ),
    "E112 a zero written with twenty places": Row(
        "E112", {"values": kstt(PROCESSING_DAYS_TOTAL=Decimal("0E-20"))}
    ),
    "E112 ten decimal places": Row(
        "E112",
        {"values": kstt(PROCESSING_DAYS_TOTAL=Decimal("480.0000000001"))},
        issue=("E112", "values.PROCESSING_DAYS_TOTAL"),
        status=Status.REJECTED,
    ),
    "E112 an exponent no sum could carry": Row(
        "E112",
        {"values": kstt(RECEIVED_ONLINE=Decimal("9E+999999"))},
        issue=("E112", "values.RECEIVED_ONLINE"),
        status=Status.REJECTED,
    ),
    # E113 out of bounds
    "E113 at the minimum": Row("E113", {"values": kstt(MAX_OVERDUE_DAYS=Decimal(0))}),
    "E113 below the minimum": Row(
        "E113",
        {"values": kstt(MAX_OVERDUE_DAYS=Decimal(-1))},
        issue=("E113", "values.MAX_OVERDUE_DAYS"),
        status=Status.REJECTED,
    ),
    "E113 text at its maximum length": Row(
        "E113", {**NVCP_S1, "values": nvcp(ASSESSMENT="x" * 20000)}, NVCP_AT
    ),
    "E113 text over its maximum length": Row(
        "E113",
        {**NVCP_S1, "values": nvcp(ASSESSMENT="x" * 20001)},
        NVCP_AT,
        issue=("E113", "values.ASSESSMENT"),
        status=Status.REJECTED,
    ),
    # E114 derived indicator sent
    "E114 no derived indicator": Row("E114", {}),
    "E114 a derived indicator sent": Row(
        "E114",
        {"values": kstt(ON_TIME_RATE=Decimal("91.67"))},
        issue=("E114", "values.ON_TIME_RATE"),
        status=Status.REJECTED,
    ),
    "E114 a derived indicator sent as text": Row(
        "E114",
        {"values": kstt(ONLINE_RATE="80%")},
        issue=("E114", "values.ONLINE_RATE"),
        status=Status.REJECTED,
    ),
    # E120 regime rules
    "E120 every rule holds": Row("E120", {}, status=Status.ACCEPTED),
    "E120 an error rule fails": Row(
        "E120",
        {"values": kstt(CARRIED_OVER=Decimal(6))},
        issue=("E120", "values"),
        status=Status.REJECTED,
    ),
    "E120 a warning rule fails": Row(
        "E120",
        {"values": kstt(CARRIED_OVER=Decimal(6), RECEIVED_TOTAL=Decimal(156))},
        issue=("E120", "values"),
        status=Status.ACCEPTED,
    ),
    "E120 a rule with a missing indicator is skipped": Row(
        "E120", {"values": kstt(MAX_OVERDUE_DAYS=None)}, status=Status.ACCEPTED
    ),
    "E120 KTXH-M disbursed over plan": Row(
        "E120",
        {
            "regime": "KTXH-M",
            "period": "2025-M07",
            "values": {**KTXH, "PUBLIC_INVEST_DISBURSED": Decimal("400.001")},
        },
        "2025-07-15T09:00:00+07:00",
        issue=("E120", "values"),
        status=Status.REJECTED,
    ),
    # E130 stale revision
    "E130 a first report": Row("E130", {"revision": 1}, status=Status.ACCEPTED),
    "E130 a correction above the latest": Row(
        "E130", {"revision": 2}, facts=Facts(latest_accepted_revision=1), status=Status.ACCEPTED
    ),
    "E130 the same revision again": Row(
        "E130",
        {"revision": 1},
        facts=Facts(latest_accepted_revision=1),
        issue=("E130", "revision"),
        status=Status.REJECTED,
    ),
    "E130 a revision below the latest": Row(
        "E130",
        {"revision": 2},
        facts=Facts(latest_accepted_revision=3),
        issue=("E130", "revision"),
        status=Status.REJECTED,
    ),
}


@pytest.mark.parametrize("row", list(ROWS.values()), ids=list(ROWS))
def test_each_code_is_raised_on_its_field_exactly_when_it_should(row: Row) -> None:
    verdict = judge(row.overrides, row.received_at, row.facts)
    found = [(i.code, i.field) for i in verdict.issues if i.code == row.code]
    assert found == ([row.issue] if row.issue else [])
    if row.status is not None:
        assert verdict.status is row.status


def test_every_code_of_the_table_has_a_passing_and_a_failing_row() -> None:
    rows = [r if isinstance(r, Row) else r.values[0] for r in ROWS.values()]
    codes = {r.code for r in rows}
    assert codes == {
        "E101", "E102", "E103", "E104", "E105", "E106", "E107",
        "E110", "E111", "E112", "E113", "E114", "E120", "E130",
    }  # fmt: skip
    for code in codes:
        assert {r.issue is None for r in rows if r.code == code} == {True, False}, code


def test_an_error_rule_names_the_rule_quotes_the_catalog_and_shows_the_figures() -> None:
    verdict = judge({"values": kstt(CARRIED_OVER=Decimal(6))}, Q1_2026)
    (issue,) = verdict.issues
    assert (issue.code, issue.rule, issue.severity) == ("E120", "R01", Severity.ERROR)
    assert issue.message_en == (
        "Rule R01 fails: Dossiers received in total must equal online plus in-person/postal"
        " plus carried over. Figures sent: RECEIVED_TOTAL = 155, RECEIVED_ONLINE = 120,"
        " RECEIVED_DIRECT = 30, CARRIED_OVER = 6."
    )
    assert issue.message_vi == (
        "Quy tắc R01 không thỏa mãn: Tổng số hồ sơ tiếp nhận phải bằng số tiếp nhận trực tuyến"
        " cộng trực tiếp, bưu chính cộng số từ kỳ trước chuyển qua. Số liệu đã gửi:"
        " RECEIVED_TOTAL = 155, RECEIVED_ONLINE = 120, RECEIVED_DIRECT = 30, CARRIED_OVER = 6."
    )


def test_a_warning_rule_accepts_the_report_and_lists_the_warning() -> None:
    verdict = judge({"values": kstt(CARRIED_OVER=Decimal(6), RECEIVED_TOTAL=Decimal(156))}, Q1_2026)
    assert verdict.status is Status.ACCEPTED
    assert [(i.code, i.rule, i.severity) for i in verdict.issues] == [
        ("E120", "R04", Severity.WARNING)
    ]


def test_a_rule_over_an_invalid_value_is_skipped_not_evaluated() -> None:
    # RECEIVED_ONLINE is text: E112 says so, and R01 (which reads it) does not also fire.
    verdict = judge({"values": kstt(RECEIVED_ONLINE="một trăm")}, Q1_2026)
    assert [i.code for i in verdict.issues] == ["E112"]


def test_a_report_with_several_problems_lists_every_one_in_design_order() -> None:
    values = kstt(
        RECEIVED_DIRECT=None,  # E111
        RECEIVED_ONLINE=Decimal("1.5"),  # E112
        MAX_OVERDUE_DAYS=Decimal(-4),  # E113, and R05 (warning) fails on it
        ON_TIME_RATE=Decimal(90),  # E114
        NOT_AN_INDICATOR=Decimal(1),  # E110
        RESOLVED_TOTAL=Decimal(121),  # E120 R02 (error) and R04 (warning)
    )
    verdict = judge(
        {"values": values, "revision": 1},
        "2026-04-18T08:00:00+07:00",  # E106: locked
        Facts(latest_accepted_revision=1),  # E130
    )
    assert verdict.status is Status.REJECTED
    assert [(i.code, i.field, i.rule) for i in verdict.issues] == [
        ("E106", "period", None),
        ("E110", "values.NOT_AN_INDICATOR", None),
        ("E111", "values.RECEIVED_DIRECT", None),
        ("E112", "values.RECEIVED_ONLINE", None),
        ("E113", "values.MAX_OVERDUE_DAYS", None),
        ("E114", "values.ON_TIME_RATE", None),
        ("E120", "values", "R02"),
        ("E120", "values", "R04"),
        ("E120", "values", "R05"),
        ("E130", "revision", None),
    ]


def test_reference_problems_are_all_listed_together() -> None:
    verdict = judge({"regime": "NOPE", "unit": "TB.NOWHERE"}, Q1_2026)
    assert [(i.code, i.field) for i in verdict.issues] == [("E101", "regime"), ("E102", "unit")]


def test_every_issue_has_both_messages_and_the_indicator_it_concerns() -> None:
    verdict = judge(
        {"values": kstt(RECEIVED_ONLINE=None, ON_TIME_RATE=Decimal(1), X=Decimal(1))}, Q1_2026
    )
    for issue in verdict.issues:
        assert issue.message_vi.strip()
        assert issue.message_en.strip()
        assert issue.indicator == issue.field.removeprefix("values.")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("received_at", "timeliness"),
    [
        ("2026-03-16T10:00:00+07:00", Timeliness.ON_TIME),
        ("2026-03-18T00:00:00+07:00", Timeliness.ON_TIME),
        ("2026-03-18T23:59:59+07:00", Timeliness.ON_TIME),
        ("2026-03-19T00:00:00+07:00", Timeliness.LATE),
        ("2026-04-17T12:00:00+07:00", Timeliness.LATE),
        # The same instants written in UTC: Vietnam's calendar day decides.
        ("2026-03-18T16:59:59+00:00", Timeliness.ON_TIME),
        ("2026-03-18T17:00:00+00:00", Timeliness.LATE),
    ],
)
def test_timeliness_turns_late_after_the_deadline_day_in_vietnam(
    received_at: str, timeliness: Timeliness
) -> None:
    verdict = judge({}, received_at)
    assert verdict.status is Status.ACCEPTED
    assert verdict.timeliness is timeliness


@pytest.mark.parametrize(
    ("overrides", "received_at", "deadline", "version"),
    [
        ({}, Q1_2026, date(2026, 3, 18), 1),
        ({"period": "2025-Q1", "unit": "TB.DH"}, "2025-03-10T09:00:00+07:00", date(2025, 3, 18), 1),
        (
            {"regime": "KTXH-M", "period": "2025-M06", "unit": "TB.DH", "values": KTXH},
            "2025-06-16T09:00:00+07:00",
            date(2025, 6, 17),  # 2 working days after Saturday 14 June
            1,
        ),
        (
            {"regime": "KTXH-M", "period": "2025-M07", "values": KTXH},
            "2025-07-15T09:00:00+07:00",
            date(2025, 7, 16),  # 2 working days after Monday 14 July
            2,
        ),
        (
            {"regime": "KTXH-M", "period": "2026-M02", "values": KTXH},
            "2026-02-10T09:00:00+07:00",
            date(2026, 2, 24),  # Tết: 16-20 February are holidays
            2,
        ),
        ({**NVCP_S1, "values": nvcp()}, NVCP_AT, date(2026, 6, 18), 1),
    ],
)
def test_a_verdict_carries_the_deadline_and_the_regime_version_in_force(
    overrides: dict[str, Any], received_at: str, deadline: date, version: int
) -> None:
    verdict = judge(overrides, received_at)
    assert verdict.status is Status.ACCEPTED
    assert verdict.deadline == deadline
    assert verdict.regime is not None
    assert (verdict.regime.code, verdict.regime.version) == (
        overrides.get("regime", "KSTT-TTHC"),
        version,
    )


def test_the_hierarchy_of_the_windows_last_day_decides_whoever_files_late() -> None:
    m06 = {"regime": "KTXH-M", "period": "2025-M06", "values": KTXH}
    district = judge({**m06, "unit": "TB.DH"}, "2025-07-01T09:00:00+07:00")
    assert (district.status, district.timeliness) == (Status.ACCEPTED, Timeliness.LATE)
    (refused,) = judge({**m06, "unit": "TB.DH.N01"}, "2025-07-01T09:00:00+07:00").issues
    assert refused.message_en == (
        "Unit TB.DH.N01 does not exist on 2025-06-14, the last day of period 2025-M06's"
        " cut-off window, so it does not report for that period."
    )


@pytest.mark.parametrize(
    "overrides",
    [{"regime": "NOPE"}, {"period": "2026-M03"}, {"period": "garbage"}],
)
def test_without_a_regime_version_there_is_no_deadline_and_no_timeliness(
    overrides: dict[str, Any],
) -> None:
    verdict = judge(overrides, Q1_2026)
    assert verdict.regime is None
    assert verdict.deadline is None
    assert verdict.timeliness is None


UNFILLED = re.compile(r"\{[a-z_]+\}")  # a template placeholder left in a message


def test_every_issue_of_the_table_reads_well_in_both_languages() -> None:
    seen: set[str] = set()
    for row in ROWS.values():
        for found in judge(row.overrides, row.received_at, row.facts).issues:
            seen.add(found.code)
            assert found.message_vi.strip(), found
            assert found.message_en.strip(), found
            assert found.message_vi != found.message_en, found
            assert not UNFILLED.search(found.message_vi + found.message_en), found
    assert seen >= {"E101", "E102", "E103", "E104", "E105", "E106", "E107"}


def test_a_long_offending_value_is_quoted_cut_short() -> None:
    verdict = judge({"values": kstt(RECEIVED_ONLINE="x" * 5000)}, Q1_2026)
    (issue,) = verdict.issues
    assert issue.code == "E112"
    assert len(issue.message_en) < 200
    assert len(issue.message_vi) < 200


@pytest.mark.parametrize(
    ("overrides", "vi", "en"),
    [
        (
            {"unit": "TB.VP"},
            "Đơn vị TB.VP (sở, ban, ngành) không thuộc đối tượng thực hiện chế độ KSTT-TTHC kỳ"
            " 2026-Q1; đối tượng báo cáo là: cấp xã, cấp huyện, trung tâm phục vụ hành chính"
            " công.",
            "Unit TB.VP (department) does not report regime KSTT-TTHC for period 2026-Q1; its"
            " reporters are: commune, district, public-service centre.",
        ),
        (
            {"period": "2026-M03"},
            "Kỳ 2026-M03 không phù hợp tần suất báo cáo hằng quý của chế độ KSTT-TTHC; mã kỳ"
            " phải có dạng như 2026-Q1.",
            "Period 2026-M03 does not fit regime KSTT-TTHC, which is reported quarterly; use a"
            " period code like 2026-Q1.",
        ),
        (
            {"values": kstt(RECEIVED_ONLINE=Decimal("120.5"))},
            "Chỉ tiêu RECEIVED_ONLINE phải là số nguyên, nhưng giá trị gửi là số 120.5 có phần"
            " thập phân.",
            "Indicator RECEIVED_ONLINE must be an integer, but the value sent is the number"
            " 120.5, which has a fraction.",
        ),
    ],
)
def test_a_message_says_what_where_and_why_in_both_languages(
    overrides: dict[str, Any], vi: str, en: str
) -> None:
    (issue,) = judge(overrides, Q1_2026).issues
    assert (issue.message_vi, issue.message_en) == (vi, en)


def test_a_locked_period_names_the_deadline_the_lock_and_the_day_received() -> None:
    (issue,) = judge({}, "2026-04-18T08:00:00+07:00").issues
    assert issue.message_en == (
        "Period 2026-Q1 is locked: the deadline was 2026-03-18 and late reports were accepted"
        " until the end of 2026-04-17; this report was received on 2026-04-18. Ask the"
        " province to open an exception."
    )


# --- a regime built for the purpose: rules that cannot be computed ---------------------

ODD_REGIME: dict[str, Any] = {
    "code": "ODD",
    "version": 1,
    "name_vi": "Thử",
    "name_en": "Test",
    "legal_basis": "test",
    "frequency": "quarterly",
    "period_convention": "nd09",
    "deadlines": {
        "unit_to_province": {"day_of_last_month": 18},
        "province_to_hub": {"day_of_last_month": 25},
    },
    "lock_after_days": 30,
    "reporters": ["commune"],
    "effective_from": "2020-12-15",
    "indicators": [
        {"code": c, "name_vi": c, "name_en": c, "unit": "x", "type": "decimal",
         "aggregation": "sum"}
        for c in ("A", "B")
    ],
    "rules": [
        {"code": "SHARE", "expr": "A / B <= 1", "severity": "error", "message_vi": "vi",
         "message_en": "en"},
        {"code": "EXACT", "expr": "A * A * A * A + 1 > A * A * A * A", "severity": "error",
         "message_vi": "vi", "message_en": "en"},
    ],
}  # fmt: skip


def book_with(*documents: dict[str, Any]) -> RuleBook:
    """The shipped catalog with regimes built for the purpose added."""
    catalog = BOOK.catalog
    regimes = tuple(Regime.model_validate(d) for d in documents)
    return RuleBook(
        Catalog(
            province=catalog.province, units=catalog.units, regimes=(*catalog.regimes, *regimes)
        )
    )


def odd_book() -> RuleBook:
    return book_with(ODD_REGIME)


@pytest.mark.parametrize(
    ("a", "b", "failed"),
    [
        ("5", "10", []),
        ("11", "10", ["SHARE"]),
        ("5", "0", []),  # A / 0 has no value: the rule is skipped, as with a missing indicator
        # A⁴ has 96 digits: rounded to 28, adding 1 would change nothing and EXACT would fail.
        ("999999999999999.999999999", "1", ["SHARE"]),
    ],
)
def test_a_rule_that_cannot_be_computed_is_skipped_and_large_products_stay_exact(
    a: str, b: str, failed: list[str]
) -> None:
    report = factories.report(regime="ODD", values={"A": Decimal(a), "B": Decimal(b)})
    verdict = validate(report, at(Q1_2026), odd_book(), NO_FACTS)
    assert [i.rule for i in verdict.issues] == failed


# --- a regime built for the purpose: bounds on both sides ------------------------------


def _bounded(code: str, kind: str, low: Any, high: Any) -> dict[str, Any]:
    return {"code": code, "name_vi": code, "name_en": code, "unit": "x", "type": kind,
            "min": low, "max": high, "aggregation": "sum"}  # fmt: skip


# The shipped catalog sets no `max`. Bounds as a catalog's YAML gives them: integers, and
# numbers with a fraction that YAML reads as binary floats (99.99 is not exactly 99.99).
BOUNDED_REGIME: dict[str, Any] = {
    **ODD_REGIME,
    "code": "BOUNDED",
    "indicators": [
        _bounded("COUNT", "integer", 0, 100),
        _bounded("RATE", "percent", 0, 99.99),
        _bounded("SHARE", "decimal", -1.5, 2.25),
    ],
    "rules": [],
}
BOUNDED_BOOK = book_with(BOUNDED_REGIME)


@pytest.mark.parametrize(
    ("code", "value", "refused"),
    [
        ("COUNT", "0", None),
        ("COUNT", "100", None),
        ("COUNT", "100.000", None),  # an integer written with places: 100
        ("COUNT", "-1", "COUNT = -1 is below the minimum 0"),
        ("COUNT", "101", "COUNT = 101 is above the maximum 100"),
        ("RATE", "0", None),
        ("RATE", "99.99", None),
        ("RATE", "99.990000000", None),
        ("RATE", "99.990000001", "RATE = 99.990000001 is above the maximum 99.99"),
        ("RATE", "100", "RATE = 100 is above the maximum 99.99"),
        ("RATE", "-0.000000001", "RATE = -0.000000001 is below the minimum 0"),
        ("SHARE", "-1.5", None),
        ("SHARE", "2.25", None),
        ("SHARE", "-1.500000001", "SHARE = -1.500000001 is below the minimum -1.5"),
        ("SHARE", "2.250000001", "SHARE = 2.250000001 is above the maximum 2.25"),
        ("SHARE", "1E+1", "SHARE = 10 is above the maximum 2.25"),  # shown as most write it
    ],
)
def test_a_number_is_within_its_bounds_inclusive_to_the_last_place(
    code: str, value: str, refused: str | None
) -> None:
    report = factories.report(regime="BOUNDED", values={code: Decimal(value)})
    verdict = validate(report, at(Q1_2026), BOUNDED_BOOK, NO_FACTS)
    if refused is None:
        assert verdict.issues == ()
        assert verdict.status is Status.ACCEPTED
        return
    (issue,) = verdict.issues
    assert (issue.code, issue.field, issue.indicator) == ("E113", f"values.{code}", code)
    assert verdict.status is Status.REJECTED
    assert issue.message_en == f"Indicator {refused}."


# --- rules are compiled once per regime version ------------------------------------------


def test_judging_many_reports_compiles_each_regime_versions_rules_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every expression (shared.expressions) is compiled by evalidate's `Expr`.
    compiled: list[str] = []
    compile_expr = evalidate.Expr

    def counting(source: str, **options: Any) -> Any:
        compiled.append(source)
        return compile_expr(source, **options)

    monkeypatch.setattr(expressions, "Expr", counting)
    book = RuleBook(BOOK.catalog)
    each_version = Counter(r.expr for regime in BOOK.catalog.regimes for r in regime.rules)
    assert len(compiled) == sum(each_version.values())
    assert len(each_version) < sum(each_version.values())  # KTXH-M's versions share R01
    kinds: list[tuple[dict[str, Any], str]] = [
        ({}, Q1_2026),
        ({"values": kstt(CARRIED_OVER=Decimal(6))}, Q1_2026),  # breaks R01
        ({"regime": "KTXH-M", "period": "2025-M06", "unit": "TB.DH", "values": KTXH},
         "2025-06-16T09:00:00+07:00"),
        ({"regime": "KTXH-M", "period": "2025-M07", "values": KTXH},
         "2025-07-15T09:00:00+07:00"),
        ({**NVCP_S1, "values": nvcp()}, NVCP_AT),
    ]  # fmt: skip
    rejected = 0
    for _ in range(40):
        for overrides, received_at in kinds:
            verdict = validate(factories.report(**overrides), at(received_at), book, NO_FACTS)
            rejected += verdict.status is Status.REJECTED
    assert rejected == 40  # the rules were evaluated, the broken one every time
    assert len(compiled) == sum(each_version.values())
