"""The roll-up of a regime and period (tổng hợp số liệu), as a pure fold.

`empty()` → `apply(state, accepted)` → `snapshot(state, frame, scope)`. The state holds,
per reporting unit, its latest accepted revision and the timeliness of its first accepted
revision: the highest revision wins the figures, the lowest the timeliness, so the result
does not depend on the order, on duplicates or on redeliveries, and a correction replaces
a unit's contribution, it never adds to it. `versions()` turns a state into the snapshot
versions to publish. The same fold serves the live service and the `recompute` command
that checks it.

Decisions the catalog leaves open, fixed here (DESIGN §3-4, catalog/README.md):
- On time is decided by the first accepted revision (DESIGN §4): a late correction of an
  on-time report stays on time, an on-time correction of a late one stays late, even when
  the first revision arrives after the correction (a replay).
- `sum` is exact whatever the number of digits (an unbounded context: no addition rounds),
  so a total never depends on the order of the reports.
- Every rounding is half up (5 rounds away from zero), as Vietnamese statistics round and
  as `decimals` and the completeness rates are read: no figure is rounded half-even.
- `avg` is that exact sum divided once by the count, rounded half up at 28 significant
  digits (fixed here, not read from the thread's context) and not rounded further:
  `decimals` rounds derived values only (catalog/README.md), so a mean keeps every digit
  a 28-digit quotient has. One division of an order-independent sum is order-independent.
- `min`/`max` compare exactly; between equal numbers written differently (1.0, 1.00) the
  frame's unit order decides, never the arrival order.
- `none` indicators are not rolled up: a scope shows its own value when the scope unit
  reports itself, else null (never the value of a unit below it).
- Derived indicators are computed at every scope from the scope's values at 60 significant
  digits, then rounded to the indicator's `decimals`; a zero denominator or a missing
  input gives null.
- Every indicator of the regime is present in every snapshot: explicit zeros stay zeros and
  "no value" is null, so the hub never keeps a stale value (DESIGN §3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import (
    MAX_EMAX,
    MAX_PREC,
    MIN_EMIN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from types import MappingProxyType

from shared.catalog import Aggregation, Catalog, Indicator, Regime
from shared.contracts import AcceptedReport, AggregateSnapshot, Completeness, Timeliness, Value
from shared.expressions import Expression
from shared.periods import cutoff_window, parse_period

HUNDRED = Decimal(100)
CENT = Decimal("0.01")

_TRAPS = [InvalidOperation, DivisionByZero, Overflow]
# Additions, comparisons and quantizing: never rounded, whatever the number of digits.
EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_UP, traps=_TRAPS)
# The mean: Python's default precision, fixed so that no caller's context changes it.
AVERAGE = Context(prec=28, rounding=ROUND_HALF_UP, traps=_TRAPS)
# Derived formulas: wide enough that rounding to `decimals` afterwards is the only rounding
# that shows for any realistic figure.
DERIVED = Context(prec=60, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_UP, traps=_TRAPS)


@dataclass(frozen=True, slots=True)
class Contribution:
    """One unit's counted report: its latest accepted revision."""

    unit: str
    revision: int
    report_id: str
    values: Mapping[str, Value]
    received_at: datetime
    first_revision: int
    first_on_time: bool


State = Mapping[str, Contribution]  # unit → contribution


def empty() -> State:
    return MappingProxyType({})


def counted(current: Contribution | None, report: AcceptedReport) -> Contribution | None:
    """A unit's contribution with `report` counted; None when it changes nothing."""
    on_time = report.timeliness is Timeliness.ON_TIME
    if current is None:
        return Contribution(
            report.unit,
            report.revision,
            report.report_id,
            report.values,
            report.received_at,
            report.revision,
            on_time,
        )
    if report.revision > current.revision:
        return Contribution(
            current.unit,
            report.revision,
            report.report_id,
            report.values,
            report.received_at,
            current.first_revision,
            current.first_on_time,
        )
    if report.revision < current.first_revision:
        # An older revision seen late (replay, reordering): it is only the earlier first.
        return Contribution(
            current.unit,
            current.revision,
            current.report_id,
            current.values,
            current.received_at,
            report.revision,
            on_time,
        )
    # The same revision again (a redelivery), or one between the first and the latest.
    return None


def apply(state: State, report: AcceptedReport) -> State:
    """The state with `report` counted; `state` itself when it changes nothing."""
    updated = counted(state.get(report.unit), report)
    if updated is None:
        return state
    return MappingProxyType({**state, report.unit: updated})


def fold(reports: Iterable[AcceptedReport], state: State | None = None) -> State:
    """`apply` of each report in turn, with the state copied once for the whole batch
    (not once a report: a regime-period's state has a contribution for each of its units)."""
    units = dict(state) if state is not None else {}
    changed = False
    for report in reports:
        updated = counted(units.get(report.unit), report)
        if updated is not None:
            units[report.unit] = updated
            changed = True
    if state is not None and not changed:
        return state
    return MappingProxyType(units)


@dataclass(frozen=True)
class Frame:
    """What the catalog fixes for one regime and period: version, scopes and reporters."""

    regime: Regime
    day: date  # last day of the cut-off window: the hierarchy in force
    reporters: Mapping[str, tuple[str, ...]]  # scope → its reporters
    derived: Mapping[str, Expression]

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.reporters)


def frame_for(catalog: Catalog, regime_code: str, period_code: str) -> Frame | None:
    """The roll-up frame; None when no version of the regime is in force for the period
    (or the period code is not of the regime's frequency).

    periods.md: the regime version and the unit hierarchy are those in force on the last
    day of the period's cut-off window (districts until 2025-06-30, communes straight
    under the province from 2025-07-01).
    """
    versions = catalog.regime_versions(regime_code)
    if not versions:
        return None
    try:
        period = parse_period(period_code)
    except ValueError:
        return None
    day = cutoff_window(period, versions[0].period_convention).end
    regime = catalog.regime_in_force(regime_code, day)
    if regime is None or regime.frequency is not period.frequency:
        return None
    reporters = {
        scope: catalog.reporters_under(regime, day, scope) for scope in catalog.scopes(regime, day)
    }
    derived = {i.code: Expression(i.derived) for i in regime.indicators if i.derived}
    return Frame(regime, day, reporters, derived)


@dataclass(frozen=True)
class Figures:
    """A scope's snapshot content, without version or time (compared to detect changes)."""

    regime_version: int
    values: Mapping[str, Value | None]
    completeness: Completeness


def _roll(values: Sequence[Decimal], how: Aggregation) -> Decimal | None:
    if not values:
        return None
    if how is Aggregation.SUM:
        return _exact_sum(values)
    if how is Aggregation.AVG:
        return AVERAGE.divide(_exact_sum(values), Decimal(len(values)))
    if how is Aggregation.MIN:
        return min(values)  # the first of equal values: frame order, not arrival order
    if how is Aggregation.MAX:
        return max(values)
    return None


def _exact_sum(values: Iterable[Decimal]) -> Decimal:
    total = Decimal(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


def _derive(
    expression: Expression, indicator: Indicator, numbers: Mapping[str, Decimal]
) -> Decimal | None:
    """A derived value, rounded as the catalog says; None when it has none."""
    try:
        with localcontext(DERIVED):
            result = expression.compute(numbers)
        if result is None or indicator.decimals is None:
            return result
        return result.quantize(Decimal(1).scaleb(-indicator.decimals), context=EXACT)
    except (ArithmeticError, ValueError):
        # Overflow or a value too large to quantize: no value rather than a stuck batch.
        return None


def _percent(part: int, whole: int) -> Decimal:
    """DESIGN §4: completeness rates in percent, 2 decimals."""
    if not whole:
        return Decimal(0)
    return AVERAGE.divide(Decimal(part) * HUNDRED, Decimal(whole)).quantize(CENT, ROUND_HALF_UP)


def snapshot(state: State, frame: Frame, scope: str) -> Figures:
    """The scope's roll-up: every indicator present (null when no value is left)."""
    expected = frame.reporters[scope]
    counted = [state[u] for u in expected if u in state]
    own = state.get(scope) if scope in expected else None
    values: dict[str, Value | None] = {}
    numbers: dict[str, Decimal] = {}
    for indicator in frame.regime.indicators:
        how = indicator.aggregation
        if indicator.is_derived or how is None:
            continue
        value: Value | None
        if how is Aggregation.NONE:
            value = own.values.get(indicator.code) if own else None
        else:
            present = (c.values.get(indicator.code) for c in counted)
            value = _roll([v for v in present if isinstance(v, Decimal)], how)
        values[indicator.code] = value
        if isinstance(value, Decimal):
            numbers[indicator.code] = value
    for indicator in frame.regime.indicators:
        if indicator.derived:
            values[indicator.code] = _derive(frame.derived[indicator.code], indicator, numbers)
    on_time = sum(1 for c in counted if c.first_on_time)
    completeness = Completeness(
        expected=len(expected),
        reported=len(counted),
        on_time=on_time,
        rate=_percent(len(counted), len(expected)),
        on_time_rate=_percent(on_time, len(expected)),
        missing=tuple(u for u in expected if u not in state),
    )
    return Figures(frame.regime.version, values, completeness)


def snapshots(state: State, frame: Frame) -> dict[str, Figures]:
    return {scope: snapshot(state, frame, scope) for scope in frame.scopes}


@dataclass(frozen=True, slots=True)
class Version:
    """The latest snapshot of a scope: its version number and content."""

    number: int
    figures: Figures


def versions(
    frame: Frame,
    period: str,
    state: State,
    latest: Mapping[str, Version],
    computed_at: datetime,
    scopes: Iterable[str] | None = None,
) -> list[AggregateSnapshot]:
    """The snapshots to publish: one per scope whose content changed, numbered latest + 1.

    DESIGN §3: `version` rises by one on every change of a scope's snapshot, and only then,
    so the number of versions a scope goes through is the number of its changes. Content
    is compared by value (3.0 equals 3.00).
    """
    emitted: list[AggregateSnapshot] = []
    for scope in frame.scopes if scopes is None else scopes:
        figures = snapshot(state, frame, scope)
        previous = latest.get(scope)
        if previous is not None and previous.figures == figures:
            continue
        emitted.append(
            AggregateSnapshot(
                regime=frame.regime.code,
                regime_version=figures.regime_version,
                period=period,
                unit=scope,
                version=(previous.number if previous else 0) + 1,
                values=dict(figures.values),
                completeness=figures.completeness,
                computed_at=computed_at,
            )
        )
    return emitted
