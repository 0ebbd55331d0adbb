"""Deciding, per request, whether the simulated hub misbehaves. Pure: time and chance are
parameters, so tests can pin both.

An outage refuses everything (token endpoint included): the hub is down. Random failures,
throttling and added latency concern the aggregates API only, as a loaded hub would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from .settings import Faults


@dataclass(frozen=True)
class Refusal:
    status: int  # 429 or 503
    retry_after_s: int
    reason: str


@dataclass
class FaultState:
    faults: Faults
    outage_until: datetime | None = None

    def configure(self, faults: Faults, now: datetime) -> None:
        self.faults = faults
        self.outage_until = (
            now + timedelta(seconds=faults.outage_seconds) if faults.outage_seconds else None
        )

    def in_outage(self, now: datetime) -> bool:
        return self.outage_until is not None and now < self.outage_until

    def refusal(self, now: datetime, rng: random.Random, *, api: bool = True) -> Refusal | None:
        retry = self.faults.retry_after_s
        if self.in_outage(now):
            return Refusal(503, retry, "outage")
        if not api:
            return None
        if rng.random() < self.faults.failure_rate:
            return Refusal(503, retry, "injected failure")
        if rng.random() < self.faults.throttle_rate:
            return Refusal(429, retry, "injected throttling")
        return None
