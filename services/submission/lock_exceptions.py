"""Operators' exceptions to a period's lock (ngoại lệ khóa sổ): what a request must name.

periods.md: `lock_after_days` after the deadline, reports and revisions for a period are
refused, "an operator can open an exception for a unit and period, which is recorded".
Pure: a request, the catalog and the time of opening in; the `LockException` to record,
or every issue found, out. An exception must name a regime the catalog has, a period code
of its frequency with a version in force, and a unit that reports that regime for that
period (the same references validation checks, with the same codes and messages), and it
must expire after it is opened.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.catalog import Catalog
from shared.contracts import Code, Issue, LockException, PeriodCode
from shared.messages import bad_period_code, issue, not_a_reporter, wrong_frequency
from shared.periods import PeriodCodeError, cutoff_window, parse_period, regime_for_period


class LockExceptionRequest(BaseModel):
    """The body of `POST /v1/admin/lock-exceptions`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    regime: Code = Field(description="Regime code, e.g. KSTT-TTHC.")
    period: PeriodCode = Field(description="Period code, e.g. 2026-Q1.")
    unit: Code = Field(description="The reporting unit allowed to report after the lock.")
    expires_at: AwareDatetime = Field(description="The exception ends at this instant.")
    reason: str = Field(min_length=1, max_length=2000, description="Why it is opened.")
    opened_by: str = Field(min_length=1, max_length=128, description="The operator opening it.")


def open_exception(
    request: LockExceptionRequest, catalog: Catalog, now: datetime
) -> LockException | tuple[Issue, ...]:
    """The exception to record, opened at `now`, or every reason it cannot be opened."""
    found = [*_references(request, catalog)]
    if request.expires_at <= now:
        found.append(
            issue(
                "E100.expiry",
                field="expires_at",
                opened_at=now.isoformat(),
                expires_at=request.expires_at.isoformat(),
            )
        )
    if found:
        return tuple(found)
    return LockException(
        regime=request.regime,
        period=request.period,
        unit=request.unit,
        expires_at=request.expires_at,
        reason=request.reason,
        opened_by=request.opened_by,
        opened_at=now,
    )


def _references(request: LockExceptionRequest, catalog: Catalog) -> list[Issue]:
    found: list[Issue] = []
    versions = catalog.regime_versions(request.regime)
    unit = catalog.unit(request.unit)
    if not versions:
        known = ", ".join(catalog.regime_codes)
        found.append(issue("E101", field="regime", regime=request.regime, known=known))
    if unit is None:
        found.append(issue("E102", field="unit", unit=request.unit))
    try:
        period = parse_period(request.period)
    except PeriodCodeError:
        found.append(bad_period_code(request.period))
        return found
    if not versions:
        return found
    if all(v.frequency is not period.frequency for v in versions):
        frequency = versions[-1].frequency.value
        found.append(wrong_frequency(request.period, request.regime, frequency))
        return found
    regime = regime_for_period(catalog, request.regime, period)
    if regime is None or regime.frequency is not period.frequency:
        day = cutoff_window(period, versions[-1].period_convention).end
        found.append(
            issue("E107", field="period", regime=request.regime, period=request.period, day=day)
        )
        return found
    day = cutoff_window(period, regime.period_convention).end
    if unit is None:
        return found
    if not unit.valid_on(day):
        found.append(
            issue("E103.not_in_force", field="unit", unit=unit.code, day=day, period=period.code)
        )
    elif unit.type not in regime.reporters:
        found.append(
            not_a_reporter(unit.code, unit.type, regime.code, period.code, regime.reporters)
        )
    return found
