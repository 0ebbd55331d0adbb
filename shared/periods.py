"""Periods, cut-off windows, deadlines, timeliness and the lock (catalog/periods.md).

A period (*kỳ báo cáo*) is named by an SDMX-style code (`2026-M03`, `2026-Q1`, `2026-S1`,
`2026`). Its cut-off window (*thời gian chốt số liệu*) is the date range its figures cover;
its deadline (*thời hạn gửi báo cáo*) is the last day a report counts as on time. Pure: every
"now" is a parameter and every date is a Vietnamese calendar day.

Exceptions::

    ValueError
     └── PeriodCodeError     a period code or (frequency, year, index) that names no period
"""

from __future__ import annotations

import calendar
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Final

import holidays

from shared.catalog import (
    Catalog,
    DayOfLastMonth,
    DeadlineRule,
    Frequency,
    PeriodConvention,
    Regime,
)
from shared.clock import TIMEZONE
from shared.contracts import Timeliness

__all__ = [
    "FIRST_YEAR",
    "LAST_YEAR",
    "TIMEZONE",
    "DateWindow",
    "Period",
    "PeriodCodeError",
    "PeriodState",
    "Timeliness",
    "current_periods",
    "cutoff_window",
    "deadline",
    "is_working_day",
    "local_date",
    "lock_date",
    "parse_period",
    "period_containing",
    "period_for",
    "period_state",
    "regime_for_period",
    "timeliness",
    "timeliness_of",
]

FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2100

_MONTHS_PER_PERIOD: Final = {
    Frequency.MONTHLY: 1,
    Frequency.QUARTERLY: 3,
    Frequency.SEMIANNUAL: 6,
    Frequency.ANNUAL: 12,
}
_PREFIX: Final = {
    Frequency.MONTHLY: "M",
    Frequency.QUARTERLY: "Q",
    Frequency.SEMIANNUAL: "S",
}
# Only ASCII digits (`\d` would accept other scripts' digits) and the whole string.
_CODE: Final = re.compile(
    r"(?P<year>[0-9]{4})(?:-(?:M(?P<month>0[1-9]|1[0-2])|Q(?P<quarter>[1-4])|S(?P<half>[12])))?"
)
_EXPECTED: Final = "expected YYYY-Mmm (M01..M12), YYYY-Qn (Q1..Q4), YYYY-Sn (S1, S2) or YYYY"


class PeriodCodeError(ValueError):
    """A period code, or a (frequency, year, index), that names no period."""


@dataclass(frozen=True, order=True)
class Period:
    """A reporting period (*kỳ báo cáo*); `index` is the month, quarter or half (1 if annual).

    Ordering compares codes, which sort chronologically within one frequency.
    """

    code: str
    frequency: Frequency
    year: int
    index: int

    def __post_init__(self) -> None:
        if not FIRST_YEAR <= self.year <= LAST_YEAR:
            raise PeriodCodeError(f"year {self.year} is outside {FIRST_YEAR}..{LAST_YEAR}")
        count = 12 // _MONTHS_PER_PERIOD[self.frequency]
        if not 1 <= self.index <= count:
            raise PeriodCodeError(f"{self.frequency} index {self.index} is outside 1..{count}")
        expected = _code(self.frequency, self.year, self.index)
        if self.code != expected:
            raise PeriodCodeError(f"code {self.code!r} does not match {expected!r}")

    def __str__(self) -> str:
        return self.code

    @property
    def first_month(self) -> int:
        return (self.index - 1) * _MONTHS_PER_PERIOD[self.frequency] + 1

    @property
    def last_month(self) -> int:
        return self.index * _MONTHS_PER_PERIOD[self.frequency]

    def shifted(self, steps: int) -> Period:
        """The period `steps` periods later (earlier if negative), same frequency.

        Raises PeriodCodeError when that falls outside the supported years.
        """
        count = 12 // _MONTHS_PER_PERIOD[self.frequency]
        year, index = divmod(self.year * count + self.index - 1 + steps, count)
        return period_for(self.frequency, year, index + 1)


def _code(frequency: Frequency, year: int, index: int) -> str:
    if frequency is Frequency.ANNUAL:
        return f"{year:04d}"
    if frequency is Frequency.MONTHLY:
        return f"{year:04d}-M{index:02d}"
    return f"{year:04d}-{_PREFIX[frequency]}{index}"


def period_for(frequency: Frequency, year: int, index: int = 1) -> Period:
    """The period of `frequency` numbered `index` in `year`; PeriodCodeError if none."""
    return Period(_code(frequency, year, index), frequency, year, index)


def parse_period(code: str) -> Period:
    """Parse `2026-M03`, `2026-Q1`, `2026-S2` or `2026`; anything else is PeriodCodeError."""
    match = _CODE.fullmatch(code)
    if match is None:
        raise PeriodCodeError(f"bad period code {code!r}: {_EXPECTED}")
    year = int(match["year"])
    if match["month"]:
        frequency, index = Frequency.MONTHLY, int(match["month"])
    elif match["quarter"]:
        frequency, index = Frequency.QUARTERLY, int(match["quarter"])
    elif match["half"]:
        frequency, index = Frequency.SEMIANNUAL, int(match["half"])
    else:
        frequency, index = Frequency.ANNUAL, 1
    try:
        return Period(code, frequency, year, index)
    except PeriodCodeError as error:
        raise PeriodCodeError(f"bad period code {code!r}: {error}") from None


@dataclass(frozen=True)
class DateWindow:
    """A range of calendar days, both ends included."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window ends {self.end} before it starts {self.start}")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end


def _month_before(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def cutoff_window(period: Period, convention: PeriodConvention) -> DateWindow:
    """The cut-off window (*thời gian chốt số liệu*) of `period` under `convention`."""
    if convention is PeriodConvention.ND09:
        # Decree 09/2019/NĐ-CP art. 12: from the 15th of the month before the period to the
        # 14th of its last month, for every frequency (S1 and the year start on 15 December).
        year, month = _month_before(period.year, period.first_month)
        return DateWindow(date(year, month, 15), date(period.year, period.last_month, 14))
    last_day = calendar.monthrange(period.year, period.last_month)[1]
    return DateWindow(
        date(period.year, period.first_month, 1), date(period.year, period.last_month, last_day)
    )


def period_containing(frequency: Frequency, convention: PeriodConvention, day: date) -> Period:
    """The period of `frequency` whose cut-off window contains `day`."""
    reference = day
    if convention is PeriodConvention.ND09 and day.day >= 15:
        # From the 15th on, a day belongs to the window ending on the next month's 14th.
        reference = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    months = _MONTHS_PER_PERIOD[frequency]
    return period_for(frequency, reference.year, (reference.month - 1) // months + 1)


@functools.cache
def _holidays(year: int) -> frozenset[date]:
    # observed=True adds the days off in lieu (nghỉ bù) and the Tết days the library knows
    # from each year's government decision.
    known = holidays.country_holidays("VN", years=year, observed=True)
    if not known.start_year <= year <= known.end_year:
        # Outside its range the library returns no holidays at all, which would silently
        # turn Tết into working days.
        raise ValueError(f"no Vietnamese holiday calendar for {year}")
    return frozenset(known.keys())


def is_working_day(day: date) -> bool:
    """Monday to Friday, minus Vietnamese public holidays and their observed days.

    Weekend days the government swaps into working days (e.g. Saturday 2025-04-26) do not
    count: catalog/README.md defines working days as Monday to Friday, and counting fewer
    working days only moves a deadline later, never making an on-time report late.
    """
    return day.weekday() < 5 and day not in _holidays(day.year)


def deadline(period: Period, convention: PeriodConvention, rule: DeadlineRule) -> date:
    """The deadline (*thời hạn gửi báo cáo*) day of `period` under `rule`."""
    if isinstance(rule, DayOfLastMonth):
        return date(period.year, period.last_month, rule.day_of_last_month)
    day = cutoff_window(period, convention).end
    remaining = rule.working_days_after_cutoff
    while remaining:
        day += timedelta(days=1)
        if is_working_day(day):
            remaining -= 1
    return day


def local_date(at: datetime) -> date:
    """The calendar day in Vietnam at instant `at`; a naive datetime is refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: an offset is required")
    return at.astimezone(TIMEZONE).date()


def timeliness(received_at: datetime, deadline: date) -> Timeliness:
    """On time when received (Asia/Ho_Chi_Minh) on or before the deadline day (periods.md)."""
    return timeliness_of(local_date(received_at), deadline)


def timeliness_of(received_on: date, deadline: date) -> Timeliness:
    """`timeliness` of a report received on the local day `received_on`."""
    return Timeliness.ON_TIME if received_on <= deadline else Timeliness.LATE


def lock_date(deadline: date, lock_after_days: int) -> date:
    """The last day new reports and revisions are accepted: deadline + lock_after_days."""
    return deadline + timedelta(days=lock_after_days)


class PeriodState(StrEnum):
    NOT_OPEN = "not_open"
    OPEN = "open"
    LATE = "late"
    LOCKED = "locked"


def period_state(
    window: DateWindow, deadline: date, lock_after_days: int, at: datetime
) -> PeriodState:
    """Where a period stands at instant `at`, by its local (Asia/Ho_Chi_Minh) date `d`.

    - `not_open`: d < window.start (periods.md: a report for a window not started yet is
      refused);
    - `open`: window.start <= d <= deadline, the deadline day included, as for timeliness;
    - `late`: deadline < d <= lock_date(deadline, lock_after_days): "still accepted until
      the lock, lock_after_days days after that deadline", so the lock day itself still
      accepts, and with lock_after_days = 0 there is no late phase;
    - `locked`: d > lock date.
    Whole days throughout: the regulation counts days, not hours.
    """
    day = local_date(at)
    if day < window.start:
        return PeriodState.NOT_OPEN
    if day <= deadline:
        return PeriodState.OPEN
    if day <= lock_date(deadline, lock_after_days):
        return PeriodState.LATE
    return PeriodState.LOCKED


def current_periods(
    frequency: Frequency,
    convention: PeriodConvention,
    lock_after_days: int,
    deadline_rule: DeadlineRule,
    at: datetime,
) -> list[Period]:
    """The periods accepting reports (open or late) at `at`, oldest first."""
    day = local_date(at)
    try:
        newest = period_containing(frequency, convention, day)
    except PeriodCodeError:
        return []
    found: list[Period] = []
    period: Period | None = newest
    # Deadlines never move earlier from one period to the next, so once a period is
    # locked every older one is too.
    while period is not None:
        due = deadline(period, convention, deadline_rule)
        state = period_state(cutoff_window(period, convention), due, lock_after_days, at)
        if state is PeriodState.LOCKED:
            break
        if state is not PeriodState.NOT_OPEN:
            found.append(period)
        try:
            period = period.shifted(-1)
        except PeriodCodeError:
            period = None
    return found[::-1]


def regime_for_period(catalog: Catalog, code: str, period: Period) -> Regime | None:
    """The version of regime `code` that applies to `period`, if any.

    periods.md: the version whose effective range contains the last day of the period's
    cut-off window, the window taken in that version's own convention.
    """
    for regime in catalog.regime_versions(code):
        if regime.in_force_on(cutoff_window(period, regime.period_convention).end):
            return regime
    return None
