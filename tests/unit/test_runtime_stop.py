"""A stopping service never waits for ever on one of its parts.

Proves: when the broker does not stop, or the database pool is never given back, `stop`
still returns after each part's bound, moves on to the next part, and terminates the
pool's connections; a part that stops in time is simply awaited, and one that fails
raises as before.
"""

from __future__ import annotations

import asyncio

import pytest

from services.aggregation.app import MIGRATIONS
from services.aggregation.settings import AggregationSettings
from shared import runtime as runtime_module
from shared.runtime import Runtime

pytestmark = pytest.mark.unit


class Part:
    """A broker or pool stand-in whose stop hangs, fails, or returns at once."""

    def __init__(self, hangs: bool = False, fails: bool = False) -> None:
        self.hangs, self.fails = hangs, fails
        self.stopped = self.terminated = False

    async def _stop(self) -> None:
        if self.fails:
            raise ConnectionError("broker gone")
        if self.hangs:
            await asyncio.Event().wait()
        self.stopped = True

    async def stop(self) -> None:
        await self._stop()

    async def close(self) -> None:
        await self._stop()

    def terminate(self) -> None:
        self.terminated = True


def _runtime(broker: Part, pool: Part) -> Runtime:
    runtime = Runtime("aggregation", AggregationSettings(), MIGRATIONS)
    runtime.broker = broker  # type: ignore[assignment]
    runtime._pool = pool  # type: ignore[assignment]
    return runtime


@pytest.fixture(autouse=True)
def short_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "STOP_DRAIN_S", 0.2)
    monkeypatch.setattr(runtime_module, "STOP_RELEASE_S", 0.2)


async def test_a_hung_broker_and_a_pool_never_given_back_do_not_hold_the_stop() -> None:
    broker, pool = Part(hangs=True), Part(hangs=True)
    await asyncio.wait_for(_runtime(broker, pool).stop(), 5)
    assert not broker.stopped
    assert pool.terminated


async def test_parts_that_stop_in_time_are_awaited_and_the_pool_closes_cleanly() -> None:
    broker, pool = Part(), Part()
    await _runtime(broker, pool).stop()
    assert broker.stopped
    assert pool.stopped
    assert not pool.terminated


async def test_a_part_that_fails_to_stop_raises_as_before() -> None:
    with pytest.raises(ConnectionError, match="broker gone"):
        await _runtime(Part(fails=True), Part()).stop()
