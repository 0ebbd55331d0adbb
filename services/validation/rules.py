"""Validation of a report against its regime (chế độ báo cáo): every issue, in DESIGN §4 order.

Pure: a report, its receipt time, the catalog and what the store knows of earlier
revisions and lock exceptions in; a `Verdict` out. `CHECKS` is the table of small check
functions, run in order: references → period → indicators → regime rules → revision.
Each check needs some resolved facts (the regime version in force, the period); when a
fact could not be resolved, the checks that need it do not run, and the check that
failed to resolve it has already said why. Adding a rule = one function, one entry in
`CHECKS`, rows in its parametrized test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property

from shared.catalog import Catalog, Indicator, IndicatorType, Regime, Unit
from shared.contracts import Issue, Report, Severity, Status, Timeliness
from shared.expressions import Expression
from shared.messages import FREQUENCY_VI, TYPE_NAMES, issue
from shared.periods import (
    DateWindow,
    Period,
    PeriodCodeError,
    cutoff_window,
    deadline,
    local_date,
    lock_date,
    parse_period,
    timeliness,
)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the validation store knows about the report's (regime, period, unit)."""

    latest_accepted_revision: int | None = None
    lock_exception_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    issues: tuple[Issue, ...]
    regime: Regime | None
    deadline: date | None
    timeliness: Timeliness | None


class RuleBook:
    """Every regime version's rule expressions, compiled once at start."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._rules = {
            (regime.code, regime.version): tuple(
                (rule, Expression(rule.expr)) for rule in regime.rules
            )
            for code in catalog.regime_codes
            for regime in catalog.regime_versions(code)
        }

    def rules(self, regime: Regime) -> tuple[tuple[object, Expression], ...]:
        return self._rules[(regime.code, regime.version)]


@dataclass
class Context:
    """A report and the facts resolved from it, each at most once."""

    report: Report
    received_at: datetime
    book: RuleBook
    facts: Facts

    @property
    def catalog(self) -> Catalog:
        return self.book.catalog

    @cached_property
    def versions(self) -> tuple[Regime, ...]:
        return self.catalog.regime_versions(self.report.regime)

    @cached_property
    def period(self) -> Period | None:
        try:
            period = parse_period(self.report.period)
        except PeriodCodeError:
            return None
        if not self.versions or period.frequency != self.versions[0].frequency:
            return None
        return period

    @cached_property
    def window(self) -> DateWindow | None:
        if self.period is None:
            return None
        return cutoff_window(self.period, self.versions[0].period_convention)

    @cached_property
    def regime(self) -> Regime | None:
        """The version in force on the last day of the period's cut-off window."""
        if self.window is None:
            return None
        return self.catalog.regime_in_force(self.report.regime, self.window.end)

    @cached_property
    def unit(self) -> Unit | None:
        return self.catalog.unit(self.report.unit)

    @cached_property
    def deadline(self) -> date | None:
        if self.regime is None or self.period is None:
            return None
        return deadline(
            self.period, self.regime.period_convention, self.regime.deadlines.unit_to_province
        )

    @cached_property
    def received_on(self) -> date:
        return local_date(self.received_at)

    @cached_property
    def numbers(self) -> dict[str, Decimal]:
        """Values that are valid numbers for their indicator: what rules may read."""
        numbers: dict[str, Decimal] = {}
        for code, value in self.report.values.items():
            indicator = self.regime.indicator(code) if self.regime else None
            valid = indicator is not None and _type_problem(indicator, value) is None
            if isinstance(value, Decimal) and valid:
                numbers[code] = value
        return numbers


Check = Callable[[Context], Iterator[Issue]]


# --- references -------------------------------------------------------------------------


def known_regime(ctx: Context) -> Iterator[Issue]:
    """Decree 09/2019/NĐ-CP art. 5: a report belongs to a regime the province publishes."""
    if not ctx.versions:
        yield issue("E101", field="regime", regime=ctx.report.regime)


def known_unit(ctx: Context) -> Iterator[Issue]:
    if ctx.unit is None:
        yield issue("E102", field="unit", unit=ctx.report.unit)


def period_code(ctx: Context) -> Iterator[Issue]:
    """Art. 12: periods are months, quarters, half-years or years, per the regime."""
    if not ctx.versions:
        return
    try:
        period = parse_period(ctx.report.period)
    except PeriodCodeError as error:
        yield issue(
            "E104",
            field="period",
            period=ctx.report.period,
            reason_vi="sai cú pháp mã kỳ",
            reason_en=str(error),
        )
        return
    frequency = ctx.versions[0].frequency
    if period.frequency != frequency:
        yield issue(
            "E104.frequency",
            field="period",
            period=ctx.report.period,
            regime=ctx.report.regime,
            frequency=frequency.value,
            frequency_vi=FREQUENCY_VI.get(frequency.value, frequency.value),
        )


def version_in_force(ctx: Context) -> Iterator[Issue]:
    if ctx.window is not None and ctx.regime is None:
        yield issue(
            "E107",
            field="period",
            regime=ctx.report.regime,
            period=ctx.report.period,
            day=ctx.window.end,
        )


def reporter(ctx: Context) -> Iterator[Issue]:
    """Art. 6: the regime names who reports; the hierarchy is the one in force that day."""
    if ctx.regime is None or ctx.unit is None or ctx.window is None:
        return
    day = ctx.window.end
    if not ctx.unit.valid_on(day):
        yield issue(
            "E103.not_in_force", field="unit", unit=ctx.unit.code, day=day, period=ctx.report.period
        )
    elif ctx.unit.type not in ctx.regime.reporters:
        yield issue(
            "E103",
            field="unit",
            unit=ctx.unit.code,
            unit_type=ctx.unit.type,
            regime=ctx.regime.code,
            period=ctx.report.period,
            reporters=", ".join(ctx.regime.reporters),
        )


# --- period -----------------------------------------------------------------------------


def period_open(ctx: Context) -> Iterator[Issue]:
    """Art. 12: data are reported for a cut-off window that has started."""
    if ctx.window is not None and ctx.regime is not None and ctx.received_on < ctx.window.start:
        yield issue("E105", field="period", period=ctx.report.period, start=ctx.window.start)


def period_not_locked(ctx: Context) -> Iterator[Issue]:
    """Late reports are accepted until `lock_after_days` after the deadline, unless an
    operator opened an exception for this unit that has not expired."""
    if ctx.deadline is None or ctx.regime is None:
        return
    last_day = lock_date(ctx.deadline, ctx.regime.lock_after_days)
    if ctx.received_on <= last_day:
        return
    until = ctx.facts.lock_exception_until
    if until is not None and ctx.received_at < until:
        return
    yield issue("E106", field="period", period=ctx.report.period, lock_date=last_day)


# --- indicators -------------------------------------------------------------------------


def indicators_known(ctx: Context) -> Iterator[Issue]:
    if ctx.regime is None:
        return
    for code in ctx.report.values:
        indicator = ctx.regime.indicator(code)
        if indicator is None:
            yield issue("E110", field=f"values.{code}", indicator=code, regime=ctx.regime.code)
        elif indicator.is_derived:
            yield issue("E114", field=f"values.{code}", indicator=code)


def required_present(ctx: Context) -> Iterator[Issue]:
    if ctx.regime is None:
        return
    for indicator in ctx.regime.indicators:
        if (
            indicator.required
            and not indicator.is_derived
            and indicator.code not in ctx.report.values
        ):
            yield issue(
                "E111",
                field=f"values.{indicator.code}",
                indicator=indicator.code,
                name_vi=indicator.name_vi,
                name_en=indicator.name_en,
            )


def _type_problem(indicator: Indicator, value: Decimal | str) -> str | None:
    """Why `value` is not of the indicator's type, or None. Numbers are exact decimals."""
    if indicator.type is IndicatorType.TEXT:
        return None if isinstance(value, str) else f"the number {value}"
    if isinstance(value, str):
        return f'the text "{value[:40]}"'
    if indicator.type is IndicatorType.INTEGER and value != value.to_integral_value():
        return f"{value}"
    return None


def types_match(ctx: Context) -> Iterator[Issue]:
    if ctx.regime is None:
        return
    for code, value in ctx.report.values.items():
        indicator = ctx.regime.indicator(code)
        if indicator is None or indicator.is_derived:
            continue
        problem = _type_problem(indicator, value)
        if problem is not None:
            vi, en = TYPE_NAMES[indicator.type.value]
            yield issue(
                "E112",
                field=f"values.{code}",
                indicator=code,
                expected_vi=vi,
                expected_en=en,
                got=problem,
            )


def within_bounds(ctx: Context) -> Iterator[Issue]:
    if ctx.regime is None:
        return
    for code, value in ctx.report.values.items():
        indicator = ctx.regime.indicator(code)
        if indicator is None or indicator.is_derived or _type_problem(indicator, value) is not None:
            continue
        field = f"values.{code}"
        if isinstance(value, str):
            if indicator.max_length is not None and len(value) > indicator.max_length:
                yield issue(
                    "E113.length",
                    field=field,
                    indicator=code,
                    length=len(value),
                    bound=indicator.max_length,
                )
            continue
        if indicator.min is not None and value < indicator.min:
            yield issue("E113.min", field=field, indicator=code, value=value, bound=indicator.min)
        if indicator.max is not None and value > indicator.max:
            yield issue("E113.max", field=field, indicator=code, value=value, bound=indicator.max)


# --- regime rules and revisions ----------------------------------------------------------


def regime_rules(ctx: Context) -> Iterator[Issue]:
    """The regime's cross-field rules. A rule whose indicators are missing (or invalid) is
    skipped: the required and type checks already say what is wrong with them."""
    if ctx.regime is None:
        return
    numbers = ctx.numbers
    for rule, expression in ctx.book.rules(ctx.regime):
        if not expression.names <= numbers.keys():
            continue
        if not expression.holds(numbers):
            yield issue(
                "E120",
                severity=Severity(rule.severity.value),  # type: ignore[attr-defined]
                rule=rule.code,  # type: ignore[attr-defined]
                field="values",
                message_vi=rule.message_vi,  # type: ignore[attr-defined]
                message_en=rule.message_en,  # type: ignore[attr-defined]
            )


def revision_above_latest(ctx: Context) -> Iterator[Issue]:
    """A correction replaces the counted figures only with a higher revision."""
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
    regime_rules,
    revision_above_latest,
)


def validate(report: Report, received_at: datetime, book: RuleBook, facts: Facts) -> Verdict:
    ctx = Context(report, received_at, book, facts)
    issues = tuple(found for check in CHECKS for found in check(ctx))
    rejected = any(i.severity is Severity.ERROR for i in issues)
    return Verdict(
        status=Status.REJECTED if rejected else Status.ACCEPTED,
        issues=issues,
        regime=ctx.regime,
        deadline=ctx.deadline,
        timeliness=timeliness(received_at, ctx.deadline) if ctx.deadline else None,
    )
