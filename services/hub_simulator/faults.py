"""Deciding, per request, whether the simulated hub misbehaves. Pure: time and chance are
parameters, so tests can pin both.

An outage refuses everything (token endpoint included): the hub is down. Random failures,
throttling and added latency concern the aggregates API only, as a loaded hub would. A
refused unit's PUTs are answered 422: the hub will not take its snapshots, however often
they are sent, until the knob is changed (as the connector's parking expects of a 422).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from .settings import Faults

OUTAGE_KNOBS = frozenset({"outage_seconds", "outage_until"})


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
        """Every knob as given: an outage only if `faults` asks for one."""
        self.faults = faults
        self.outage_until = (
            now + timedelta(seconds=faults.outage_seconds)
            if faults.outage_seconds
            else faults.outage_until
        )

    def state(self, now: datetime) -> Faults:
        """The knobs in force, an outage in progress as the instant it ends: configuring
        this again changes nothing."""
        until = self.outage_until if self.in_outage(now) else None
        return self.faults.model_copy(update={"outage_seconds": 0.0, "outage_until": until})

    def patched(self, changes: Faults, now: datetime) -> Faults:
        """The knobs in force with those `changes` names set, the others kept. An outage in
        progress goes on, unless `changes` names an outage knob: then it replaces it."""
        given = set(changes.model_fields_set)
        if given & OUTAGE_KNOBS:
            given |= OUTAGE_KNOBS
        kept = self.state(now).model_dump(exclude=given)
        return Faults.model_validate(kept | {name: getattr(changes, name) for name in given})

    def in_outage(self, now: datetime) -> bool:
        return self.outage_until is not None and now < self.outage_until

    def refused_unit(self, unit: str) -> str | None:
        """Why a PUT for `unit` is refused (422) whatever it carries, if the knob says so."""
        if unit in self.faults.refuse_units:
            return f"unit {unit} is refused by the fault knob refuse_units"
        return None

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
