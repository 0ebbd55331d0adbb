"""How far each regime's open periods are from complete, and how long until their deadline.

For every regime of the catalog and every period accepting reports now (open or late,
`shared.periods.current_periods`), the province-scope completeness (DESIGN §4: expected,
reported, on time) taken from the latest snapshot, or nothing reported yet when there is
no snapshot, and the seconds left until the end of the `unit_to_province` deadline day
(catalog/periods.md: a report is on time when received on or before that day, Vietnam
time). Labels are regime and period only: both bounded by the catalog and the clock.

`progress()` is pure; `ProgressExporter` samples it into gauges on a timer, reading the
stored snapshots through the function the aggregation service gives it. A period that
stops accepting reports (locked) leaves the gauges.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from shared.catalog import Catalog
from shared.clock import TIMEZONE, Clock
from shared.contracts import Completeness
from shared.observability.metrics import Metrics
from shared.periods import (
    current_periods,
    cutoff_window,
    deadline,
    local_date,
    regime_for_period,
)

RegimePeriod = tuple[str, str]
ReadCompleteness = Callable[
    [Sequence[RegimePeriod]], Awaitable[Mapping[RegimePeriod, Completeness]]
]


@dataclass(frozen=True, slots=True)
class OpenPeriod:
    """A regime's period that accepts reports now, with what the catalog expects of it."""

    regime: str
    period: str
    deadline_ends: datetime  # the first instant after the deadline day, Vietnam time
    expected: int  # reporters under the province in the period's hierarchy


@dataclass(frozen=True, slots=True)
class Progress:
    regime: str
    period: str
    expected: int
    missing: int
    completeness: float  # ratio 0..1
    on_time: float  # ratio 0..1
    deadline_in_s: float


def open_periods(catalog: Catalog, now: datetime) -> list[OpenPeriod]:
    """Every (regime, period) accepting reports at `now`, oldest period first per regime."""
    found: list[OpenPeriod] = []
    today = local_date(now)
    for code in catalog.regime_codes:
        versions = catalog.regime_versions(code)
        current = catalog.regime_in_force(code, today) or versions[-1]
        rule = current.deadlines.unit_to_province
        periods = current_periods(
            current.frequency, current.period_convention, current.lock_after_days, rule, now
        )
        for period in periods:
            regime = regime_for_period(catalog, code, period)
            if regime is None:
                continue
            due = deadline(period, regime.period_convention, regime.deadlines.unit_to_province)
            day = cutoff_window(period, regime.period_convention).end
            reporters = catalog.reporters_under(regime, day, catalog.province)
            ends = datetime.combine(due + timedelta(days=1), time(), TIMEZONE)
            found.append(OpenPeriod(code, str(period), ends, len(reporters)))
    return found


def progress(period: OpenPeriod, completeness: Completeness | None, now: datetime) -> Progress:
    """The gauges of one open period; no snapshot yet means nobody has reported."""
    if completeness is None:
        expected, reported, on_time = period.expected, 0, 0
    else:
        expected, reported, on_time = (
            completeness.expected,
            completeness.reported,
            completeness.on_time,
        )
    # Nothing expected is nothing missing: complete, and no alert about it.
    whole = expected or 1
    return Progress(
        regime=period.regime,
        period=period.period,
        expected=expected,
        missing=expected - reported,
        completeness=reported / whole if expected else 1.0,
        on_time=on_time / whole if expected else 1.0,
        deadline_in_s=(period.deadline_ends - now).total_seconds(),
    )


class ProgressExporter:
    """Keeps the regime gauges equal to `progress()` of the open periods."""

    def __init__(
        self, metrics: Metrics, catalog: Catalog, clock: Clock, read: ReadCompleteness
    ) -> None:
        self._metrics = metrics
        self._catalog = catalog
        self._clock = clock
        self._read = read
        self._exported: set[RegimePeriod] = set()

    async def sample(self) -> list[Progress]:
        now = self._clock.now()
        periods = open_periods(self._catalog, now)
        stored = await self._read([(p.regime, p.period) for p in periods])
        found = [progress(p, stored.get((p.regime, p.period)), now) for p in periods]
        m = self._metrics
        for item in found:
            labels = {"regime": item.regime, "period": item.period}
            m.regime_completeness.labels(**labels).set(item.completeness)
            m.regime_on_time.labels(**labels).set(item.on_time)
            m.regime_missing_units.labels(**labels).set(item.missing)
            m.regime_expected_units.labels(**labels).set(item.expected)
            m.regime_deadline.labels(**labels).set(item.deadline_in_s)
        current = {(p.regime, p.period) for p in found}
        gauges = (
            m.regime_completeness,
            m.regime_on_time,
            m.regime_missing_units,
            m.regime_expected_units,
            m.regime_deadline,
        )
        for regime, period in self._exported - current:
            for gauge in gauges:
                gauge.remove(regime, period)
        self._exported = current
        return found
