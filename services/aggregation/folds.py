"""The roll-up of a regime and period (tổng hợp số liệu), as a pure fold.

`empty()` → `apply(state, accepted)` → `snapshot(state, frame, scope)`. The state holds,
per reporting unit, its latest accepted revision and the timeliness of its first accepted
revision. Applying a report only ever keeps the higher revision, so the result does not
depend on the order, on duplicates or on redeliveries: a correction replaces a unit's
contribution, it never adds to it. The same fold serves the live service and the
`recompute` command that checks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType

from shared.catalog import Aggregation, Catalog, Regime
from shared.contracts import AcceptedReport, Completeness, Timeliness, Value
from shared.expressions import Expression
from shared.periods import cutoff_window, parse_period

HUNDRED = Decimal(100)
CENT = Decimal("0.01")


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


def apply(state: State, report: AcceptedReport) -> State:
    """The state with `report` counted; `state` itself when it changes nothing."""
    current = state.get(report.unit)
    on_time = report.timeliness is Timeliness.ON_TIME
    if current is None:
        updated = Contribution(
            report.unit,
            report.revision,
            report.report_id,
            report.values,
            report.received_at,
            report.revision,
            on_time,
        )
    elif report.revision == current.revision:
        return state
    elif report.revision > current.revision:
        updated = replace(
            current,
            revision=report.revision,
            report_id=report.report_id,
            values=report.values,
            received_at=report.received_at,
        )
    elif report.revision < current.first_revision:
        # An older revision seen late (replay, reordering): it is only the earlier first.
        updated = replace(current, first_revision=report.revision, first_on_time=on_time)
    else:
        return state
    return MappingProxyType({**state, report.unit: updated})


def fold(reports: Iterable[AcceptedReport], state: State | None = None) -> State:
    for report in reports:
        state = apply(state if state is not None else empty(), report)
    return state if state is not None else empty()


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
    """The roll-up frame, or None when the catalog has no such regime version for the period."""
    versions = catalog.regime_versions(regime_code)
    if not versions:
        return None
    period = parse_period(period_code)
    day = cutoff_window(period, versions[0].period_convention).end
    regime = catalog.regime_in_force(regime_code, day)
    if regime is None:
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


def _roll(values: list[Decimal], how: Aggregation) -> Decimal | None:
    if not values:
        return None
    if how is Aggregation.SUM:
        return sum(values, Decimal(0))
    if how is Aggregation.AVG:
        return sum(values, Decimal(0)) / len(values)
    if how is Aggregation.MIN:
        return min(values)
    if how is Aggregation.MAX:
        return max(values)
    return None


def _percent(part: int, whole: int) -> Decimal:
    return (
        (Decimal(part) * HUNDRED / Decimal(whole)).quantize(CENT, ROUND_HALF_UP)
        if whole
        else Decimal(0)
    )


def snapshot(state: State, frame: Frame, scope: str) -> Figures:
    """The scope's roll-up: every indicator present (null when no value is left)."""
    expected = frame.reporters[scope]
    counted = [state[u] for u in expected if u in state]
    values: dict[str, Value | None] = {}
    numbers: dict[str, Decimal] = {}
    for indicator in frame.regime.indicators:
        how = indicator.aggregation
        if indicator.is_derived or how is None:
            continue
        if how is Aggregation.NONE:
            # Not rolled up: a scope shows only its own value, and null rather than nothing
            # when it has none, so the hub never keeps a stale one.
            own = state.get(scope) if scope in expected else None
            values[indicator.code] = own.values.get(indicator.code) if own else None
            continue
        present = [c.values[indicator.code] for c in counted if indicator.code in c.values]
        rolled = _roll([v for v in present if isinstance(v, Decimal)], how)
        values[indicator.code] = rolled
        if rolled is not None:
            numbers[indicator.code] = rolled
    for indicator in frame.regime.indicators:
        if indicator.derived:
            result = frame.derived[indicator.code].compute(numbers)
            if result is not None and indicator.decimals is not None:
                result = result.quantize(Decimal(1).scaleb(-indicator.decimals), ROUND_HALF_UP)
            values[indicator.code] = result
    reported = {c.unit for c in counted}
    on_time = sum(1 for c in counted if c.first_on_time)
    completeness = Completeness(
        expected=len(expected),
        reported=len(reported),
        on_time=on_time,
        rate=_percent(len(reported), len(expected)),
        on_time_rate=_percent(on_time, len(expected)),
        missing=tuple(u for u in expected if u not in reported),
    )
    return Figures(frame.regime.version, values, completeness)


def snapshots(state: State, frame: Frame) -> dict[str, Figures]:
    return {scope: snapshot(state, frame, scope) for scope in frame.scopes}
