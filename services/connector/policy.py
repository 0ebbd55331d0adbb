"""When to send again, and when to stop sending: the connector's delivery policy. Pure.

- Exponential backoff with full jitter (so that many scopes failing together do not
  retry together), never sooner than the hub's `Retry-After`.
- A circuit breaker: after `threshold` consecutive failures the hub is left alone for a
  cool-down (at least its `Retry-After`), then one delivery probes it; the cool-down
  doubles while probes fail. When a probe succeeds the hub is back: scopes waiting out
  their own backoff are due at once (`Transition.CLOSED`).
- A snapshot the hub refuses (422) is parked: sending it again cannot succeed. A new
  version, or an operator, unparks the scope.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.contracts import DeliveryOutcome

from .hub_client import HubReply


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first)."""
        # The exponent is bounded: 2**1024 overflows a float, and the cap is long reached.
        ceiling = min(self.cap_s, self.base_s * 2 ** min(max(0, attempt - 1), 64))
        return max(rng.uniform(0, ceiling), retry_after_s or 0.0)


class Step(StrEnum):
    ACKED = "acked"
    RETRY = "retry"
    PARKED = "parked"


def step_after(reply: HubReply) -> Step:
    if reply.delivered:
        return Step.ACKED
    if reply.outcome is DeliveryOutcome.REFUSED:
        return Step.PARKED
    return Step.RETRY


def holds_this_version(reply: HubReply) -> bool:
    """The hub now holds exactly the version sent (a stale reply means it holds a newer one)."""
    return reply.outcome in (DeliveryOutcome.STORED, DeliveryOutcome.UNCHANGED)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Transition(StrEnum):
    OPENED = "opened"
    CLOSED = "closed"


@dataclass
class Circuit:
    threshold: int = 5
    cool_down_s: float = 5.0
    max_cool_down_s: float = 60.0
    failures: int = 0
    state: CircuitState = CircuitState.CLOSED
    reopen_at: datetime | None = None
    _cool_down: float = 0.0

    def capacity(self, now: datetime, concurrency: int) -> int:
        """How many deliveries may start now: all, one probe, or none."""
        if self.state is CircuitState.CLOSED:
            return concurrency
        if self.state is CircuitState.OPEN and self.reopen_at is not None and now >= self.reopen_at:
            self.state = CircuitState.HALF_OPEN
        return 1 if self.state is CircuitState.HALF_OPEN else 0

    def record(
        self, hub_failed: bool, now: datetime, retry_after_s: float | None = None
    ) -> Transition | None:
        """Count one delivery's result; says when the circuit opened or closed."""
        if not hub_failed:
            was_open = self.state is not CircuitState.CLOSED
            self.failures, self.state, self._cool_down = 0, CircuitState.CLOSED, 0.0
            return Transition.CLOSED if was_open else None
        self.failures += 1
        if self.state is CircuitState.OPEN:
            return None  # deliveries already in flight when it opened: no news about the hub
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self._cool_down = min(
                self.max_cool_down_s, self._cool_down * 2 if self._cool_down else self.cool_down_s
            )
            wait = max(self._cool_down, retry_after_s or 0.0)
            self.state = CircuitState.OPEN
            self.reopen_at = now + timedelta(seconds=wait)
            return Transition.OPENED
        return None

    @property
    def is_open(self) -> bool:
        return self.state is not CircuitState.CLOSED
