"""Gauges sampled on a timer: backlogs, consumer lag, regime progress.

A sample that fails (the database or the broker is away) is logged once, when the
failures start, and once when they stop; the gauge keeps its last value meanwhile, and
the alert on a service's own health tells the operator why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shared.logging import get_logger

log = get_logger(__name__)


async def sample_forever(
    name: str, sample: Callable[[], Awaitable[object]], interval_s: float
) -> None:
    failing = False
    while True:
        try:
            await sample()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if not failing:
                log.warning("sample_failed", sampler=name, error=repr(error))
            failing = True
        else:
            if failing:
                log.info("sample_recovered", sampler=name)
            failing = False
        await asyncio.sleep(interval_s)
