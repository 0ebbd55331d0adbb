from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.catalog import DayOfLastMonth, Frequency, PeriodConvention, WorkingDaysAfterCutoff
from shared.periods import (
    DateWindow,
    Period,
    PeriodCodeError,
    PeriodState,
    Timeliness,
    current_periods,
    cutoff_window,
    deadline,
    is_working_day,
    local_date,
    lock_date,
    parse_period,
    period_containing,
    period_for,
    period_state,
    timeliness,
)

pytestmark = pytest.mark.unit

ND09 = PeriodConvention.ND09
CALENDAR = PeriodConvention.CALENDAR
DAY_18 = DayOfLastMonth(day_of_last_month=18)
TWO_WORKING_DAYS = WorkingDaysAfterCutoff(working_days_after_cutoff=2)
VN = timezone(timedelta(hours=7))


def d(text: str) -> date:
    return date.fromisoformat(text)


class Example(NamedTuple):
    code: str
    nd09: DateWindow
    day_18: date
    working_2: date
    calendar: DateWindow


def window(cell: str) -> DateWindow:
    start, end = cell.split(" .. ")
    return DateWindow(d(start), d(end))


def worked_examples_table() -> list[Example]:
    """The rows of periods.md's "Worked examples" table, read from the binding document."""
    text = (Path(__file__).parents[2] / "catalog" / "periods.md").read_text(encoding="utf-8")
    section = text.split("## Worked examples", 1)[1].split("\n## ", 1)[0]
    examples = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0][:1].isdigit():
            continue  # the header, the separator, prose
        code, nd09, day_18, working_2, calendar = cells
        # "2026-02-24 (Tết 16-20 Feb)": the date, then a note
        examples.append(
            Example(
                code, window(nd09), d(day_18.split()[0]), d(working_2.split()[0]), window(calendar)
            )
        )
    return examples


WORKED_EXAMPLES = worked_examples_table()


def test_the_worked_examples_table_is_read_in_full() -> None:
    assert [example.code for example in WORKED_EXAMPLES] == [
        "2025-M01", "2026-M02", "2026-M03", "2026-M04", "2026-M09", "2026-M12",
        "2025-Q1", "2026-Q1", "2026-Q3", "2026-S1", "2026-S2", "2026",
    ]  # fmt: skip


worked_examples = pytest.mark.parametrize(
    "example", WORKED_EXAMPLES, ids=[example.code for example in WORKED_EXAMPLES]
)


@worked_examples
def test_nd09_window_runs_from_the_15th_before_to_the_14th(example: Example) -> None:
    assert cutoff_window(parse_period(example.code), ND09) == example.nd09


@worked_examples
def test_day_of_last_month_18_is_the_18th_of_the_last_month(example: Example) -> None:
    assert deadline(parse_period(example.code), ND09, DAY_18) == example.day_18


@worked_examples
def test_two_working_days_after_the_cutoff_skip_weekends_and_holidays(example: Example) -> None:
    assert deadline(parse_period(example.code), ND09, TWO_WORKING_DAYS) == example.working_2


@worked_examples
def test_calendar_window_is_the_calendar_period(example: Example) -> None:
    assert cutoff_window(parse_period(example.code), CALENDAR) == example.calendar


@pytest.mark.parametrize(
    ("code", "frequency", "year", "index"),
    [
        ("2026-M01", Frequency.MONTHLY, 2026, 1),
        ("2026-M12", Frequency.MONTHLY, 2026, 12),
        ("2000-M03", Frequency.MONTHLY, 2000, 3),
        ("2026-Q1", Frequency.QUARTERLY, 2026, 1),
        ("2026-Q4", Frequency.QUARTERLY, 2026, 4),
        ("2026-S1", Frequency.SEMIANNUAL, 2026, 1),
        ("2026-S2", Frequency.SEMIANNUAL, 2026, 2),
        ("2026", Frequency.ANNUAL, 2026, 1),
        ("2100", Frequency.ANNUAL, 2100, 1),
    ],
)
def test_valid_period_codes_parse_and_round_trip(
    code: str, frequency: Frequency, year: int, index: int
) -> None:
    period = parse_period(code)
    assert period == Period(code, frequency, year, index)
    assert str(period) == code
    assert period_for(frequency, year, index) == period


@pytest.mark.parametrize(
    "code",
    [
        "",
        "2026-M13",
        "2026-M00",
        "2026-M3",
        "2026-M003",
        "2026-Q0",
        "2026-Q5",
        "2026-S0",
        "2026-S3",
        "2026-H1",
        "26-Q1",
        "02026",
        "2026-",
        "2026-m03",
        "2026-q1",
        " 2026-Q1",
        "2026-Q1 ",
        "2026-Q1\n",
        "2026Q1",
        "1999",
        "2101-M01",
        "٢٠٢٦",  # Arabic-Indic digits are digits to `\d`, not to the period grammar
    ],
)
def test_malformed_period_codes_are_refused(code: str) -> None:
    with pytest.raises(PeriodCodeError, match=r"expected|outside"):
        parse_period(code)


def test_a_period_whose_code_disagrees_with_its_fields_cannot_be_built() -> None:
    with pytest.raises(PeriodCodeError):
        Period("2026-M04", Frequency.MONTHLY, 2026, 3)
    with pytest.raises(PeriodCodeError):
        period_for(Frequency.QUARTERLY, 2026, 5)


def test_periods_shift_across_year_ends() -> None:
    assert parse_period("2025-M12").shifted(1) == parse_period("2026-M01")
    assert parse_period("2026-Q1").shifted(-1) == parse_period("2025-Q4")
    assert parse_period("2026-S1").shifted(-3) == parse_period("2024-S2")
    assert parse_period("2026").shifted(2) == parse_period("2028")


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2026-02-16", False),  # Tết: Lunar New Year's Eve
        ("2026-02-20", False),  # Tết: fourth day
        ("2026-02-23", True),
        ("2026-02-21", False),  # Saturday
        ("2026-04-27", False),  # Hùng Kings' day falls on Sunday 26 April, observed Monday
        ("2026-09-02", False),
        ("2025-04-26", False),  # a Saturday swapped into a working day: not counted
        ("2026-03-17", True),
    ],
)
def test_working_days_are_weekdays_outside_vietnamese_holidays(day: str, expected: bool) -> None:
    assert is_working_day(d(day)) is expected


def test_a_deadline_beyond_the_holiday_calendar_is_an_error_not_a_guess() -> None:
    with pytest.raises(ValueError, match="no Vietnamese holiday calendar for 2101"):
        deadline(period_for(Frequency.ANNUAL, 2100), CALENDAR, TWO_WORKING_DAYS)


def test_local_date_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        local_date(datetime(2026, 3, 18, 10, 0))  # noqa: DTZ001 - the naive value under test


@pytest.mark.parametrize(
    ("received_at", "expected"),
    [
        ("2026-03-18T23:59:59+07:00", Timeliness.ON_TIME),
        ("2026-03-19T00:00:00+07:00", Timeliness.LATE),
        ("2026-03-18T16:59:59+00:00", Timeliness.ON_TIME),  # 23:59:59 in Vietnam
        ("2026-03-18T17:30:00+00:00", Timeliness.LATE),  # already 19 March in Vietnam
        ("2026-03-18T12:00:00-05:00", Timeliness.LATE),  # 19 March 00:00 in Vietnam
        ("2026-03-19T01:00:00+09:00", Timeliness.ON_TIME),  # 18 March 23:00 in Vietnam
        ("2026-03-01T08:00:00+07:00", Timeliness.ON_TIME),
    ],
)
def test_timeliness_is_judged_on_the_vietnamese_calendar_day(
    received_at: str, expected: Timeliness
) -> None:
    assert timeliness(datetime.fromisoformat(received_at), d("2026-03-18")) is expected


def test_timeliness_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        timeliness(datetime(2026, 3, 18), d("2026-03-18"))  # noqa: DTZ001


def test_the_lock_date_is_lock_after_days_after_the_deadline() -> None:
    assert lock_date(d("2026-03-18"), 30) == d("2026-04-17")
    assert lock_date(d("2026-03-18"), 0) == d("2026-03-18")


# KSTT-TTHC 2026-Q1: window 2025-12-15 .. 2026-03-14, deadline 2026-03-18, lock 30 days.
Q1_WINDOW = DateWindow(d("2025-12-15"), d("2026-03-14"))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2025-12-14T23:59:59+07:00", PeriodState.NOT_OPEN),
        ("2025-12-14T17:00:00+00:00", PeriodState.OPEN),  # 15 December 00:00 in Vietnam
        ("2025-12-15T00:00:00+07:00", PeriodState.OPEN),
        ("2026-03-18T23:59:59+07:00", PeriodState.OPEN),
        ("2026-03-19T00:00:00+07:00", PeriodState.LATE),
        ("2026-04-17T23:59:59+07:00", PeriodState.LATE),  # the lock day still accepts
        ("2026-04-17T16:59:59+00:00", PeriodState.LATE),
        ("2026-04-17T17:00:00+00:00", PeriodState.LOCKED),  # 18 April in Vietnam
        ("2026-04-18T00:00:00+07:00", PeriodState.LOCKED),
    ],
)
def test_period_state_boundaries_are_whole_vietnamese_days(at: str, expected: PeriodState) -> None:
    state = period_state(Q1_WINDOW, d("2026-03-18"), 30, datetime.fromisoformat(at))
    assert state is expected


def test_with_no_lock_delay_a_period_locks_the_day_after_its_deadline() -> None:
    at = datetime.fromisoformat("2026-03-19T00:00:00+07:00")
    assert period_state(Q1_WINDOW, d("2026-03-18"), 0, at) is PeriodState.LOCKED


def test_period_state_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        period_state(Q1_WINDOW, d("2026-03-18"), 30, datetime(2026, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # KTXH-M: monthly nd09, two working days, lock 15 days.
        ("2026-03-10T09:00:00+07:00", ["2026-M02", "2026-M03"]),  # M02 due 24 Feb, locks 11 Mar
        ("2026-03-11T23:00:00+07:00", ["2026-M02", "2026-M03"]),
        ("2026-03-12T00:00:00+07:00", ["2026-M03"]),
        ("2026-03-15T00:00:00+07:00", ["2026-M03", "2026-M04"]),
    ],
)
def test_current_periods_are_those_open_or_late(at: str, expected: list[str]) -> None:
    periods = current_periods(
        Frequency.MONTHLY, ND09, 15, TWO_WORKING_DAYS, datetime.fromisoformat(at)
    )
    assert [p.code for p in periods] == expected


def test_current_periods_for_a_semiannual_regime_with_a_long_lock() -> None:
    # NVCP-S: S2 2025 is due 18 Dec 2025 and locks 17 Jan 2026; S1 2026 opened 15 Dec.
    at = datetime.fromisoformat("2026-01-10T12:00:00+07:00")
    periods = current_periods(Frequency.SEMIANNUAL, ND09, 30, DAY_18, at)
    assert [p.code for p in periods] == ["2025-S2", "2026-S1"]


# --- properties ----------------------------------------------------------------------

FREQUENCIES = st.sampled_from(list(Frequency))
CONVENTIONS = st.sampled_from(list(PeriodConvention))
PERIOD_COUNT = {
    Frequency.MONTHLY: 12,
    Frequency.QUARTERLY: 4,
    Frequency.SEMIANNUAL: 2,
    Frequency.ANNUAL: 1,
}


@st.composite
def periods(draw: st.DrawFn, last_year: int = 2100) -> Period:
    frequency = draw(FREQUENCIES)
    year = draw(st.integers(2000, last_year))
    return period_for(frequency, year, draw(st.integers(1, PERIOD_COUNT[frequency])))


@given(periods(), CONVENTIONS)
def test_a_window_starts_on_or_before_it_ends(period: Period, convention: PeriodConvention) -> None:
    window = cutoff_window(period, convention)
    assert window.start <= window.end
    assert period_containing(period.frequency, convention, window.start) == period
    assert period_containing(period.frequency, convention, window.end) == period


@given(periods(last_year=2099), CONVENTIONS)
def test_consecutive_windows_tile_without_gap_or_overlap(
    period: Period, convention: PeriodConvention
) -> None:
    following = period.shifted(1)
    assert cutoff_window(period, convention).end + timedelta(days=1) == (
        cutoff_window(following, convention).start
    )


# The holiday calendar ends with 2100, so a 2100 period's deadline may fall outside it.
@given(periods(last_year=2099), CONVENTIONS, st.integers(1, 10))
def test_the_working_days_deadline_is_a_working_day_after_the_window(
    period: Period, convention: PeriodConvention, count: int
) -> None:
    rule = WorkingDaysAfterCutoff(working_days_after_cutoff=count)
    due = deadline(period, convention, rule)
    end = cutoff_window(period, convention).end
    assert due > end
    assert is_working_day(due)
    between = [end + timedelta(days=n) for n in range(1, (due - end).days + 1)]
    assert sum(is_working_day(day) for day in between) == count


@given(
    FREQUENCIES,
    CONVENTIONS,
    st.integers(0, 60),
    st.one_of(
        st.builds(DayOfLastMonth, day_of_last_month=st.integers(15, 28)),
        st.builds(WorkingDaysAfterCutoff, working_days_after_cutoff=st.integers(1, 10)),
    ),
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2098, 12, 31)),  # noqa: DTZ001
)
def test_current_periods_are_exactly_the_periods_accepting_reports(
    frequency: Frequency,
    convention: PeriodConvention,
    lock_after_days: int,
    rule: DayOfLastMonth | WorkingDaysAfterCutoff,
    naive: datetime,
) -> None:
    at = naive.replace(tzinfo=VN)
    if isinstance(rule, DayOfLastMonth) and convention is CALENDAR:
        rule = WorkingDaysAfterCutoff(working_days_after_cutoff=rule.day_of_last_month - 14)
    candidates = [
        period_for(frequency, year, index)
        for year in range(at.year - 1, at.year + 2)
        for index in range(1, PERIOD_COUNT[frequency] + 1)
    ]
    expected = [
        p
        for p in candidates
        if period_state(
            cutoff_window(p, convention), deadline(p, convention, rule), lock_after_days, at
        )
        in (PeriodState.OPEN, PeriodState.LATE)
    ]
    assert current_periods(frequency, convention, lock_after_days, rule, at) == expected
