"""Validation of a report against its regime (chế độ báo cáo): every issue, in DESIGN §4 order.

Pure: a report, its receipt time, the catalog and what the store knows of earlier
revisions and lock exceptions in; a `Verdict` out. `CHECKS` is the table of small check
functions, run in order: references (regime, unit, period, version, reporter) → period
open/locked → indicators (unknown, required, type, bounds, derived sent) → regime rules →
revision. Each check needs some resolved facts (the regime version in force, the period);
when a fact could not be resolved, the checks that need it do not run, and the check that
failed to resolve it has already said why. Adding a rule = one function, one entry in
`CHECKS`, rows in its parametrized test.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Context as DecimalContext
from decimal import Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext
from types import MappingProxyType
from typing import Final, NamedTuple

from shared.catalog import Catalog, Indicator, IndicatorType, Regime, Rule, Unit
from shared.contracts import Issue, Report, Severity, Status, Timeliness
from shared.expressions import Expression
from shared.messages import (
    TYPE_NAMES,
    bad_period_code,
    issue,
    not_a_reporter,
    wrong_frequency,
)
from shared.periods import (
    DateWindow,
    Period,
    PeriodCodeError,
    cutoff_window,
    deadline,
    local_date,
    lock_date,
    parse_period,
    timeliness_of,
)

# Accepted figures are summed up the unit hierarchy in decimal arithmetic of 28 significant
# digits (Python's default context). 15 digits before the point and 9 after (24 digits in
# all) leave room for sums of up to 10 000 reports without a single rounding, so no
# provincial total is ever off; a number with more digits is refused (E112), never rounded.
MAX_INTEGER_DIGITS: Final = 15
MAX_DECIMAL_PLACES: Final = 9
_INTEGER_LIMIT: Final = Decimal(10) ** MAX_INTEGER_DIGITS  # the least magnitude refused
_NEGATIVE_LIMIT: Final = -_INTEGER_LIMIT
# Rules read numbers within those limits, so at this precision their sums and products are
# exact; a rule that still cannot be computed (a division by zero) is skipped, as a rule
# with a missing indicator is (catalog/README.md).
_RULE_ARITHMETIC: Final = DecimalContext(
    prec=100, traps=[InvalidOperation, DivisionByZero, Overflow]
)
# How much of an offending value a message quotes.
_SHOWN_CHARS: Final = 40


@dataclass(frozen=True, slots=True)
class LockWindow:
    """An operator's exception to a period's lock for one unit, from its opening to its expiry."""

    opened_at: datetime
    expires_at: datetime

    def covers(self, at: datetime) -> bool:
        return self.opened_at <= at < self.expires_at


# Facts, Verdict and Judged, like Context below, are built once per report: immutable
# named tuples, at a third of the cost of frozen dataclasses.


class Facts(NamedTuple):
    """What the validation store knows about the report's (regime, period, unit)."""

    latest_accepted_revision: int | None = None
    lock_exceptions: tuple[LockWindow, ...] = ()


class Verdict(NamedTuple):
    status: Status
    issues: tuple[Issue, ...]
    regime: Regime | None
    deadline: date | None
    timeliness: Timeliness | None


class Judged(NamedTuple):
    """A report with the verdict on it."""

    report: Report
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A regime rule with its expression parsed once, and the indicators it reads in order."""

    rule: Rule
    expression: Expression
    reads: tuple[str, ...]


def _compile(rule: Rule) -> CompiledRule:
    expression = Expression(rule.expr)
    words = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", rule.expr)
    reads = tuple(dict.fromkeys(w for w in words if w in expression.names))
    return CompiledRule(rule, expression, reads)


@dataclass(frozen=True, slots=True)
class Form:
    """A regime version's data form as the checks read it, built once: indicators by code
    (all of them, and the reported ones, which are not derived), the required ones in form
    order, the rules compiled. The code sets let the checks settle most reports with one
    set comparison instead of a look-up per value."""

    indicators: Mapping[str, Indicator]
    reported: Mapping[str, Indicator]
    required: tuple[Indicator, ...]
    rules: tuple[CompiledRule, ...]
    required_codes: frozenset[str]
    derived_codes: frozenset[str]
    bounded_codes: frozenset[str]  # indicators with a min, a max or a max_length


def _form(regime: Regime) -> Form:
    indicators = regime.indicators
    return Form(
        indicators=MappingProxyType({i.code: i for i in indicators}),
        reported=MappingProxyType({i.code: i for i in indicators if i.derived is None}),
        required=tuple(i for i in indicators if i.required),
        rules=tuple(_compile(rule) for rule in regime.rules),
        required_codes=frozenset(i.code for i in indicators if i.required),
        derived_codes=frozenset(i.code for i in indicators if i.derived is not None),
        bounded_codes=frozenset(
            i.code
            for i in indicators
            if i.min is not None or i.max is not None or i.max_length is not None
        ),
    )


@dataclass(frozen=True, slots=True)
class Calendar:
    """What a regime code and a period code resolve to, whoever reports."""

    versions: tuple[Regime, ...]
    period: Period | None
    fitting: tuple[Regime, ...]  # the regime's versions whose frequency the period code has
    regime: Regime | None
    window: DateWindow | None
    deadline: date | None
    form: Form | None


class RuleBook:
    """Every regime version's data form and rule expressions, compiled once at start."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.regime_list = ", ".join(catalog.regime_codes)
        self._forms = {(regime.code, regime.version): _form(regime) for regime in catalog.regimes}

        # A (regime, period) code pair resolves the same way for every report that names
        # it; the codes come from senders, so only so many are kept.
        self.calendar = functools.lru_cache(maxsize=4096)(self._calendar)

    def form(self, regime: Regime) -> Form:
        return self._forms[(regime.code, regime.version)]

    def _calendar(self, regime_code: str, period_code: str) -> Calendar:
        versions = self.catalog.regime_versions(regime_code)
        try:
            period: Period | None = parse_period(period_code)
        except PeriodCodeError:
            period = None
        fitting = tuple(v for v in versions if v.frequency is period.frequency) if period else ()
        regime = None
        if period is not None:
            # periods.md: the version in force on the last day of the period's cut-off
            # window, the window taken in that version's own convention.
            for version in fitting:
                if version.in_force_on(cutoff_window(period, version.period_convention).end):
                    regime = version
                    break
        window = None
        if period is not None and fitting:
            window = cutoff_window(period, (regime or fitting[-1]).period_convention)
        due = None
        if regime is not None and period is not None:
            due = deadline(period, regime.period_convention, regime.deadlines.unit_to_province)
        form = self.form(regime) if regime is not None else None
        return Calendar(versions, period, fitting, regime, window, due, form)

    def rules(self, regime: Regime) -> tuple[CompiledRule, ...]:
        return self.form(regime).rules


class Context(NamedTuple):
    """A report and the facts resolved from it, each once (`resolve`).

    Immutable as a tuple, and built once per report in half the time of a frozen dataclass
    of these 15 fields, which sets each one through `object.__setattr__`."""

    report: Report
    received_at: datetime
    book: RuleBook
    facts: Facts
    versions: tuple[Regime, ...]
    period: Period | None
    fitting: tuple[Regime, ...]  # the regime's versions whose frequency the period code has
    regime: Regime | None
    window: DateWindow | None
    unit: Unit | None
    deadline: date | None
    received_on: date
    form: Form | None
    # Each value sent for a reported (not derived) indicator of the form, with why it is
    # not of the indicator's type (None when it is).
    typed: Mapping[str, tuple[Indicator, Issue | None]]
    numbers: Mapping[str, Decimal]  # values that are valid numbers: what rules may read

    @property
    def catalog(self) -> Catalog:
        return self.book.catalog


def resolve(report: Report, received_at: datetime, book: RuleBook, facts: Facts) -> Context:
    """Every fact the checks read, worked out once per report (the checks all run)."""
    found = book.calendar(report.regime, report.period)
    form = found.form
    typed: dict[str, tuple[Indicator, Issue | None]] = {}
    numbers: dict[str, Decimal] = {}
    if form is not None:
        reported = form.reported
        for code, value in report.values.items():
            indicator = reported.get(code)
            if indicator is None:
                continue
            problem = _type_issue(indicator, code, value)
            typed[code] = (indicator, problem)
            if problem is None and isinstance(value, Decimal):
                numbers[code] = value
    return Context(
        report=report,
        received_at=received_at,
        book=book,
        facts=facts,
        versions=found.versions,
        period=found.period,
        fitting=found.fitting,
        regime=found.regime,
        window=found.window,
        unit=book.catalog.unit(report.unit),
        deadline=found.deadline,
        received_on=local_date(received_at),
        form=form,
        typed=typed,
        numbers=numbers,
    )


Check = Callable[[Context], Iterator[Issue]]


def _shown(value: Decimal | str) -> str:
    """A value as a message quotes it: numbers as sent, long ones cut."""
    text = str(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


# --- references -------------------------------------------------------------------------


def known_regime(ctx: Context) -> Iterator[Issue]:
    """A report belongs to one of the regimes the province publishes (catalog/regimes)."""
    if not ctx.versions:
        yield issue("E101", field="regime", regime=ctx.report.regime, known=ctx.book.regime_list)


def known_unit(ctx: Context) -> Iterator[Issue]:
    """A report comes from one of the province's reporting units (catalog/units.yaml)."""
    if ctx.unit is None:
        yield issue("E102", field="unit", unit=ctx.report.unit)


def period_code(ctx: Context) -> Iterator[Issue]:
    """Decree 09/2019/NĐ-CP art. 12: periods are months, quarters, half-years or years, and a
    code that does not fit the regime's frequency is an error (periods.md)."""
    if ctx.period is None:
        yield bad_period_code(_shown(ctx.report.period))
    elif ctx.versions and not ctx.fitting:
        frequency = ctx.versions[-1].frequency.value
        yield wrong_frequency(ctx.report.period, ctx.report.regime, frequency)


def version_in_force(ctx: Context) -> Iterator[Issue]:
    """periods.md: the version whose effective dates contain the window's last day applies."""
    if ctx.fitting and ctx.regime is None and ctx.window is not None:
        yield issue(
            "E107",
            field="period",
            regime=ctx.report.regime,
            period=ctx.report.period,
            day=ctx.window.end,
        )


def reporter(ctx: Context) -> Iterator[Issue]:
    """The regime names the unit types that report; the hierarchy is the one in force on the
    last day of the period's cut-off window (catalog/README.md, periods.md)."""
    if ctx.regime is None or ctx.unit is None or ctx.window is None:
        return
    day = ctx.window.end
    if not ctx.unit.valid_on(day):
        yield issue(
            "E103.not_in_force", field="unit", unit=ctx.unit.code, day=day, period=ctx.report.period
        )
    elif ctx.unit.type not in ctx.regime.reporters:
        yield not_a_reporter(
            ctx.unit.code, ctx.unit.type, ctx.regime.code, ctx.report.period, ctx.regime.reporters
        )


# --- period -----------------------------------------------------------------------------


def _not_open(ctx: Context) -> bool:
    return ctx.window is not None and ctx.received_on < ctx.window.start


def period_open(ctx: Context) -> Iterator[Issue]:
    """periods.md: a report for a period whose cut-off window has not started is refused."""
    if ctx.regime is not None and ctx.window is not None and _not_open(ctx):
        yield issue(
            "E105",
            field="period",
            period=ctx.report.period,
            start=ctx.window.start,
            received_on=ctx.received_on,
        )


def period_not_locked(ctx: Context) -> Iterator[Issue]:
    """periods.md: late reports are accepted until `lock_after_days` days after the
    `unit_to_province` deadline, then refused, unless the report falls inside an exception
    an operator opened for this unit and period."""
    if ctx.deadline is None or ctx.regime is None or _not_open(ctx):
        return
    last_day = lock_date(ctx.deadline, ctx.regime.lock_after_days)
    if ctx.received_on <= last_day:
        return
    if any(window.covers(ctx.received_at) for window in ctx.facts.lock_exceptions):
        return
    yield issue(
        "E106",
        field="period",
        period=ctx.report.period,
        deadline=ctx.deadline,
        lock_date=last_day,
        received_on=ctx.received_on,
    )


# --- indicators -------------------------------------------------------------------------


def indicators_known(ctx: Context) -> Iterator[Issue]:
    """Only the indicators of the regime version's data form may be sent."""
    if ctx.regime is None or ctx.form is None:
        return
    indicators = ctx.form.indicators
    for code in ctx.report.values:
        if code not in indicators:
            yield issue(
                "E110",
                field=f"values.{code}",
                indicator=code,
                regime=ctx.regime.code,
                version=ctx.regime.version,
            )


def required_present(ctx: Context) -> Iterator[Issue]:
    """Indicators marked `required` in the data form must be sent."""
    if ctx.form is None or ctx.form.required_codes <= ctx.report.values.keys():
        return
    for indicator in ctx.form.required:
        if indicator.code not in ctx.report.values:
            yield issue(
                "E111",
                field=f"values.{indicator.code}",
                indicator=indicator.code,
                name_vi=indicator.name_vi,
                name_en=indicator.name_en,
            )


def _type_issue(indicator: Indicator, code: str, value: Decimal | str) -> Issue | None:
    """Why `value` is not of the indicator's type, or None. Numbers are exact decimals that
    the system can sum without rounding; integers have no fraction; text is a string."""
    if indicator.type is IndicatorType.TEXT:
        if isinstance(value, str):
            return None
        return issue("E112.number", field=f"values.{code}", indicator=code, value=_shown(value))
    if isinstance(value, str):
        vi, en = TYPE_NAMES[indicator.type.value]
        return issue(
            "E112.text",
            field=f"values.{code}",
            indicator=code,
            value=_shown(value),
            expected_vi=vi,
            expected_en=en,
        )
    if indicator.type is IndicatorType.INTEGER:
        if value != value.to_integral_value():
            return issue(
                "E112.fraction", field=f"values.{code}", indicator=code, value=_shown(value)
            )
        if _NEGATIVE_LIMIT < value < _INTEGER_LIMIT:
            return None  # a whole number has no decimal places to count: most values
    if not _within_precision(value):
        return issue(
            "E112.precision",
            field=f"values.{code}",
            indicator=code,
            value=_shown(value),
            integer_digits=MAX_INTEGER_DIGITS,
            decimal_places=MAX_DECIMAL_PLACES,
        )
    return None


def _within_precision(value: Decimal) -> bool:
    """At most MAX_INTEGER_DIGITS before the point and MAX_DECIMAL_PLACES after it; trailing
    zeros are not digits to keep (120.000 is 120). No decimal context is involved: the
    context would round a long number before it could be measured."""
    if value.is_zero():
        return True
    if not _NEGATIVE_LIMIT < value < _INTEGER_LIMIT:  # exact comparisons, no rounding
        return False
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: the contract refuses NaN and Infinity
    if exponent >= -MAX_DECIMAL_PLACES:
        return True  # the last digit written is within the places kept, zero or not
    zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return exponent + zeros >= -MAX_DECIMAL_PLACES


def types_match(ctx: Context) -> Iterator[Issue]:
    """catalog/README.md: integer, decimal and percent indicators take JSON numbers, text
    indicators strings."""
    for _, found in ctx.typed.values():
        if found is not None:
            yield found


def within_bounds(ctx: Context) -> Iterator[Issue]:
    """The data form's `min`, `max` (numbers) and `max_length` (text)."""
    if ctx.form is None or ctx.form.bounded_codes.isdisjoint(ctx.typed):
        return
    values = ctx.report.values
    for code, (indicator, problem) in ctx.typed.items():
        if problem is not None:
            continue
        value = values[code]
        if isinstance(value, str):
            if indicator.max_length is not None and len(value) > indicator.max_length:
                yield issue(
                    "E113.length",
                    field=f"values.{code}",
                    indicator=code,
                    length=len(value),
                    bound=indicator.max_length,
                )
            continue
        # Fixed-point, as sent by most systems: -0.000000001, not -1E-9. Values that passed
        # the type check have at most 15 + 9 digits, so the text stays short.
        if indicator.min is not None and value < indicator.min:
            yield issue(
                "E113.min",
                field=f"values.{code}",
                indicator=code,
                value=f"{value:f}",
                bound=f"{indicator.min:f}",
            )
        if indicator.max is not None and value > indicator.max:
            yield issue(
                "E113.max",
                field=f"values.{code}",
                indicator=code,
                value=f"{value:f}",
                bound=f"{indicator.max:f}",
            )


def derived_not_sent(ctx: Context) -> Iterator[Issue]:
    """catalog/README.md: derived indicators are computed after roll-up at every level, so a
    value sent for one would be a figure nobody checks."""
    if ctx.form is None:
        return
    derived = ctx.form.derived_codes
    for code in ctx.report.values:
        if code in derived:
            formula = ctx.form.indicators[code].derived
            yield issue("E114", field=f"values.{code}", indicator=code, formula=formula)


# --- regime rules and revisions ----------------------------------------------------------


def regime_rules(ctx: Context) -> Iterator[Issue]:
    """The regime's cross-field rules; `error` rejects, `warning` is listed and accepted.
    A rule whose indicators are missing (or invalid) is skipped: the required and type
    checks already say what is wrong with them (catalog/README.md)."""
    if ctx.form is None:
        return
    numbers = ctx.numbers
    with localcontext(_RULE_ARITHMETIC):  # entered once per report, not once per rule
        broken = [c for c in ctx.form.rules if _breaks(c.expression, numbers)]
    for compiled in broken:
        rule = compiled.rule
        figures = ", ".join(f"{name} = {numbers[name]:f}" for name in compiled.reads)
        yield issue(
            "E120",
            severity=rule.severity,
            rule=rule.code,
            field="values",
            message_vi=rule.message_vi,
            message_en=rule.message_en,
            figures=figures,
        )


def _breaks(expression: Expression, numbers: Mapping[str, Decimal]) -> bool:
    """The rule reads only numbers present and does not hold; arithmetic that fails (an
    overflow) breaks no rule."""
    if not expression.names <= numbers.keys():
        return False
    try:
        return not expression.holds(numbers)
    except ArithmeticError:
        return False


def revision_above_latest(ctx: Context) -> Iterator[Issue]:
    """DESIGN §3: a correction replaces the counted figures only with a higher revision."""
    latest = ctx.facts.latest_accepted_revision
    if latest is not None and ctx.report.revision <= latest:
        yield issue("E130", field="revision", revision=ctx.report.revision, latest=latest)


CHECKS: tuple[Check, ...] = (
    known_regime,
    known_unit,
    period_code,
    version_in_force,
    reporter,
    period_open,
    period_not_locked,
    indicators_known,
    required_present,
    types_match,
    within_bounds,
    derived_not_sent,
    regime_rules,
    revision_above_latest,
)


def validate(report: Report, received_at: datetime, book: RuleBook, facts: Facts) -> Verdict:
    ctx = resolve(report, received_at, book, facts)
    issues = tuple(found for check in CHECKS for found in check(ctx))
    rejected = any(i.severity is Severity.ERROR for i in issues)
    return Verdict(
        status=Status.REJECTED if rejected else Status.ACCEPTED,
        issues=issues,
        regime=ctx.regime,
        deadline=ctx.deadline,
        timeliness=timeliness_of(ctx.received_on, ctx.deadline) if ctx.deadline else None,
    )
