"""Random reports against the shipped catalog: valid ones pass, one mutation is one code.

Proves, as hypothesis properties over every regime of the catalog (every version, every
reporter in force, periods from 2021 to 2030, any receipt time from the window's start to
the lock): a report whose values satisfy the data form and every rule is accepted with no
issue at all, on time exactly when received by the deadline day; and that a single
mutation of such a report (a required value dropped, an error rule broken, a value of the
wrong type, a bad period code or one of another frequency, an unknown unit, an unknown
or derived indicator sent, a value below its minimum) is rejected with exactly the
expected error code, on the field mutated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.validation.rules import Facts, RuleBook, Verdict, validate
from shared.catalog import Catalog, Frequency, IndicatorType, Regime, load_catalog
from shared.clock import TIMEZONE
from shared.contracts import Report, Severity, Status, Timeliness
from shared.expressions import Expression
from shared.periods import (
    Period,
    PeriodCodeError,
    cutoff_window,
    deadline,
    lock_date,
    parse_period,
    period_for,
    regime_for_period,
)
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit

CATALOG = load_catalog(REPO_ROOT / "catalog")
BOOK = RuleBook(CATALOG)
YEARS = (2021, 2030)
Values = dict[str, Decimal | str]
Draw = Callable[[st.SearchStrategy[Any]], Any]
PROPERTY = settings(max_examples=150, deadline=None)


# --- values that satisfy each regime's data form and rules ------------------------------


def count(draw: Draw, high: int = 5000) -> int:
    return int(draw(st.integers(0, high)))


def amount(draw: Draw) -> Decimal:
    """Billions of VND with 0 to 9 decimal places, as exact as the sender wrote them."""
    units = draw(st.integers(0, 10**12))
    return Decimal(units).scaleb(-draw(st.integers(0, 9)))


def as_integer(draw: Draw, n: int) -> Decimal:
    """An integer, sometimes written with a zero fraction (120.00 is the integer 120)."""
    return Decimal(n).quantize(Decimal(1).scaleb(-draw(st.integers(0, 3))))


def dossiers(draw: Draw) -> Values:
    early, on_time, late = count(draw), count(draw), count(draw)
    within, overdue = count(draw), count(draw)
    received = early + on_time + late + within + overdue
    online = draw(st.integers(0, received))
    direct = draw(st.integers(0, received - online))
    values: Values = {
        "RECEIVED_ONLINE": as_integer(draw, online),
        "RECEIVED_DIRECT": as_integer(draw, direct),
        "CARRIED_OVER": as_integer(draw, received - online - direct),
        "RECEIVED_TOTAL": as_integer(draw, received),
        "RESOLVED_EARLY": as_integer(draw, early),
        "RESOLVED_ON_TIME": as_integer(draw, on_time),
        "RESOLVED_LATE": as_integer(draw, late),
        "RESOLVED_TOTAL": as_integer(draw, early + on_time + late),
        "PENDING_WITHIN": as_integer(draw, within),
        "PENDING_OVERDUE": as_integer(draw, overdue),
        "PENDING_TOTAL": as_integer(draw, within + overdue),
        "PROCESSING_DAYS_TOTAL": amount(draw),
    }
    if overdue:
        values["MAX_OVERDUE_DAYS"] = Decimal(draw(st.integers(1, 400)))
    elif draw(st.booleans()):
        values["MAX_OVERDUE_DAYS"] = Decimal(0)
    return values


def economy(draw: Draw) -> Values:
    plan = amount(draw)
    values: Values = {
        "BUDGET_REVENUE": amount(draw),
        "BUDGET_EXPENDITURE": amount(draw),
        "PUBLIC_INVEST_PLAN": plan,
        "PUBLIC_INVEST_DISBURSED": min(plan, amount(draw)),
    }
    if draw(st.booleans()):
        values["NEW_ENTERPRISES"] = as_integer(draw, count(draw))
    if draw(st.booleans()):
        values["RETAIL_SALES"] = amount(draw)
    return values


def tasks(draw: Draw) -> Values:
    parts = [count(draw, 300) for _ in range(4)]
    values: Values = {
        "TASKS_ASSIGNED": as_integer(draw, sum(parts)),
        "TASKS_DONE_ON_TIME": as_integer(draw, parts[0]),
        "TASKS_DONE_LATE": as_integer(draw, parts[1]),
        "TASKS_IN_PROGRESS": as_integer(draw, parts[2]),
        "TASKS_OVERDUE": as_integer(draw, parts[3]),
    }
    if draw(st.booleans()):
        values["ASSESSMENT"] = draw(st.text(max_size=300))
    return values


VALUES: dict[str, Callable[[Draw], Values]] = {
    "KSTT-TTHC": dossiers,
    "KTXH-M": economy,
    "NVCP-S": tasks,
}


def test_every_regime_of_the_catalog_has_a_values_strategy() -> None:
    assert set(VALUES) == set(CATALOG.regime_codes)


# --- valid reports --------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    report: Report
    received_at: datetime
    regime: Regime
    period: Period


@st.composite
def valid_reports(draw: Draw, catalog: Catalog = CATALOG) -> Sent:
    code = draw(st.sampled_from(catalog.regime_codes))
    frequency = catalog.regime_versions(code)[0].frequency
    months = {"monthly": 12, "quarterly": 4, "semiannual": 2, "annual": 1}[frequency.value]
    period = period_for(frequency, draw(st.integers(*YEARS)), draw(st.integers(1, months)))
    regime = regime_for_period(catalog, code, period)
    assert regime is not None  # every catalog regime has a version in force in YEARS
    window = cutoff_window(period, regime.period_convention)
    reporters = catalog.reporters(regime, window.end)
    last_day = lock_date(
        deadline(period, regime.period_convention, regime.deadlines.unit_to_province),
        regime.lock_after_days,
    )
    day = window.start + timedelta(days=draw(st.integers(0, (last_day - window.start).days)))
    moment = draw(st.times())
    received_at = datetime.combine(day, time(moment.hour, moment.minute, moment.second), TIMEZONE)
    report = Report.model_validate(
        {
            "schema": "baocao.report.v1",
            "report_id": "r-1",
            "regime": code,
            "period": period.code,
            "unit": draw(st.sampled_from(reporters)),
            "revision": draw(st.integers(1, 50)),
            "values": VALUES[code](draw),
            "source": "property",
            "prepared_at": received_at,
        }
    )
    return Sent(report, received_at, regime, period)


def judge(sent: Sent, **changes: Any) -> Verdict:
    report = sent.report.model_copy(update=changes) if changes else sent.report
    return validate(
        Report.model_validate(report.model_dump(by_alias=True)), sent.received_at, BOOK, Facts()
    )


@PROPERTY
@given(valid_reports())
def test_a_report_that_satisfies_its_regime_is_accepted_without_any_issue(sent: Sent) -> None:
    verdict = judge(sent)
    assert verdict.status is Status.ACCEPTED, verdict.issues
    assert verdict.issues == ()
    assert verdict.regime == sent.regime
    due = deadline(
        sent.period, sent.regime.period_convention, sent.regime.deadlines.unit_to_province
    )
    on_time = sent.received_at.date() <= due
    assert verdict.timeliness is (Timeliness.ON_TIME if on_time else Timeliness.LATE)


# --- single mutations -------------------------------------------------------------------


def errors(verdict: Verdict) -> list[tuple[str, str | None]]:
    return [(i.code, i.field) for i in verdict.issues if i.severity is Severity.ERROR]


@PROPERTY
@given(valid_reports(), st.data())
def test_dropping_a_required_value_is_e111_on_that_indicator(
    sent: Sent, data: st.DataObject
) -> None:
    required = [i.code for i in sent.regime.indicators if i.required]
    dropped = data.draw(st.sampled_from(required))
    values = {k: v for k, v in sent.report.values.items() if k != dropped}
    assert errors(judge(sent, values=values)) == [("E111", f"values.{dropped}")]


def broken(regime: Regime, values: Values, rule_index: int, name_index: int) -> tuple[str, Values]:
    """`values` with one number of an error rule raised so that the rule fails."""
    rules = [r for r in regime.rules if r.severity is Severity.ERROR]
    rule = rules[rule_index % len(rules)]
    expression = Expression(rule.expr)
    names = sorted(expression.names)
    numbers = {k: v for k, v in values.items() if isinstance(v, Decimal)}
    for step in range(len(names)):
        name = names[(name_index + step) % len(names)]
        indicator = regime.indicator(name)
        assert indicator is not None
        raised = numbers[name] + sum(numbers.values()) + 1
        if indicator.type is IndicatorType.INTEGER:
            raised = raised.to_integral_value(rounding=ROUND_CEILING)
        # Raising the smaller side of `<=` keeps the rule true: then raise another name.
        if not expression.holds({**numbers, name: raised}):
            return rule.code, {**values, name: raised}
    raise AssertionError(f"no single raise breaks {rule.expr}")


@PROPERTY
@given(valid_reports(), st.integers(0, 10), st.integers(0, 10))
def test_breaking_an_error_rule_is_e120_naming_that_rule(
    sent: Sent, rule_index: int, name_index: int
) -> None:
    rule, values = broken(sent.regime, dict(sent.report.values), rule_index, name_index)
    verdict = judge(sent, values=values)
    assert errors(verdict) == [("E120", "values")]
    assert [i.rule for i in verdict.issues if i.severity is Severity.ERROR] == [rule]


@st.composite
def mistyped(draw: Draw, regime: Regime, values: Values) -> tuple[str, Values]:
    code = draw(st.sampled_from(sorted(values)))
    indicator = regime.indicator(code)
    assert indicator is not None
    value = values[code]
    wrong: Decimal | str
    if indicator.type is IndicatorType.TEXT:
        wrong = Decimal(draw(st.integers(-5, 5)))
    elif indicator.type is IndicatorType.INTEGER and draw(st.booleans()):
        wrong = Decimal(value) + Decimal("0.5")
    elif draw(st.booleans()):
        wrong = str(value)
    else:
        wrong = Decimal(10**15) + Decimal(value)  # more digits than sums keep exactly
    return code, {**values, code: wrong}


@PROPERTY
@given(valid_reports(), st.data())
def test_a_value_of_the_wrong_type_is_e112_on_that_indicator(
    sent: Sent, data: st.DataObject
) -> None:
    code, values = data.draw(mistyped(sent.regime, dict(sent.report.values)))
    assert errors(judge(sent, values=values)) == [("E112", f"values.{code}")]


def not_a_period(code: str) -> bool:
    try:
        parse_period(code)
    except PeriodCodeError:
        return True
    return False


BAD_CODES = st.sampled_from(
    ["2026-Q5", "2026-M13", "2026-M3", "26-Q1", "2026-q1", "Q1-2026", "1999", "2101-S1", "２０２６"]
) | st.text(min_size=1, max_size=16).filter(not_a_period)


@PROPERTY
@given(valid_reports(), BAD_CODES)
def test_a_bad_period_code_is_e104(sent: Sent, code: str) -> None:
    verdict = judge(sent, period=code)
    assert errors(verdict) == [("E104", "period")]
    assert verdict.regime is None


@PROPERTY
@given(valid_reports(), st.data())
def test_a_period_of_another_frequency_is_e104(sent: Sent, data: st.DataObject) -> None:
    others = [f for f in Frequency if f is not sent.period.frequency]
    other = period_for(data.draw(st.sampled_from(others)), sent.period.year, 1)
    assert errors(judge(sent, period=other.code)) == [("E104", "period")]


@PROPERTY
@given(valid_reports(), st.from_regex(r"[A-Z0-9][A-Z0-9._-]{0,20}", fullmatch=True))
def test_an_unknown_unit_is_e102(sent: Sent, unit: str) -> None:
    if CATALOG.unit(unit) is not None:
        return
    assert errors(judge(sent, unit=unit)) == [("E102", "unit")]


@PROPERTY
@given(valid_reports(), st.data())
def test_an_unknown_or_derived_indicator_or_a_value_below_its_minimum_has_its_own_code(
    sent: Sent, data: st.DataObject
) -> None:
    values = dict(sent.report.values)
    derived = [i.code for i in sent.regime.indicators if i.is_derived]
    bounded = [i.code for i in sent.regime.indicators if i.min is not None and i.code in values]
    kind = data.draw(st.sampled_from(["unknown", "derived", "below"]))
    if kind == "unknown":
        code = data.draw(st.from_regex(r"[A-Z][A-Z_]{2,20}", fullmatch=True))
        if sent.regime.indicator(code) is not None:
            return
        expected, changed = "E110", {**values, code: Decimal(1)}
    elif kind == "derived":
        code = data.draw(st.sampled_from(derived))
        expected, changed = "E114", {**values, code: Decimal(50)}
    else:
        # Below the minimum of an indicator no error rule reads, so no rule breaks too.
        errors_read = [r for r in sent.regime.rules if r.severity is Severity.ERROR]
        read = {n for r in errors_read for n in Expression(r.expr).names}
        free = [c for c in bounded if c not in read]
        if not free:
            return
        code = data.draw(st.sampled_from(free))
        indicator = sent.regime.indicator(code)
        assert indicator is not None
        assert indicator.min is not None
        expected, changed = "E113", {**values, code: indicator.min - 1}
    assert errors(judge(sent, values=changed)) == [(expected, f"values.{code}")]
