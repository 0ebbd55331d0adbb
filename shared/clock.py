"""The system's clock: real time, or real time starting at a chosen instant.

`BAOCAO_NOW` starts every service's clock at a given instant and lets it advance in real
time, so tests, replays and demos can run "on 16 March 2026" with deadlines that behave as
they would that day. Production leaves it unset.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware."""
        ...


# Stamps read in Vietnam's time (+07:00), as reporting units and the hub read them.
TIMEZONE = ZoneInfo("Asia/Ho_Chi_Minh")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(TIMEZONE)


class ShiftedClock:
    """Real time shifted so that `start` is the time at the real instant `anchor`.

    Every process of one run gets the same `anchor` (the real epoch second the run began),
    so their clocks agree with each other and latencies across services stay real. Without
    an anchor the clock starts at `start` when it is built.
    """

    def __init__(self, start: datetime, anchor: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("the start instant needs a UTC offset")
        origin = datetime.fromtimestamp(time.time() if anchor is None else anchor, UTC)
        self._offset = start - origin

    def now(self) -> datetime:
        return datetime.now(TIMEZONE) + self._offset


class FixedClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("the instant needs a UTC offset")
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta


def clock_from(start: datetime | None, anchor: float | None = None) -> Clock:
    return SystemClock() if start is None else ShiftedClock(start, anchor)
