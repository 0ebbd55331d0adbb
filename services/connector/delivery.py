"""Delivering snapshots to the national hub until it holds the latest version of each scope.

The loop claims due scopes (latest version not acknowledged, not parked, backoff over),
sends each one's latest version (superseded versions are never sent), and records every
attempt's result together with its `hub.sync.v1` message in one transaction. The state
is durable, so a restart resumes where it stopped; reconciliation (at start and on a
timer) asks the hub what it holds and sends again whatever it lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from shared import codec
from shared.clock import Clock
from shared.contracts import DeliveryOutcome, HubSyncResult, scope_key
from shared.logging import get_logger
from shared.observability.log_context import report_fields
from shared.observability.metrics import Metrics
from shared.outbox import OutboxMessage

from .hub_client import HubAdapter, HubReply, HubUnavailableError
from .ledger import Ledger
from .policy import Backoff, Circuit, Step, Transition, holds_this_version, step_after
from .settings import ConnectorSection
from .store import Attempt, Due, Scope

log = get_logger(__name__)

# Reconciliation stops after this many scopes in a row the hub could not answer for: the
# hub is down, and asking about every other scope would only add to its load.
RECONCILE_GIVE_UP_AFTER = 3
# An incomplete reconciliation (hub down, database down) is tried again this soon.
RECONCILE_RETRY_S = 30.0
# Scopes believed delivered are read this many at a time, so a check of every scope
# (tens of thousands over the years' periods) never holds them all in memory at once.
RECONCILE_PAGE = 500


@dataclass(frozen=True, slots=True)
class Reconciliation:
    checked: int
    rewound: int
    complete: bool


class Deliverer:
    def __init__(
        self,
        ledger: Ledger,
        hub: HubAdapter,
        section: ConnectorSection,
        clock: Clock,
        metrics: Metrics,
        sync_topic: str,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`sleep` is the reconciliation timer's (tests run it on their own clock)."""
        self._ledger = ledger
        self._hub = hub
        self._section = section
        self._clock = clock
        self._metrics = metrics
        self._sync_topic = sync_topic
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._sleep = sleep
        self._backoff = Backoff(section.backoff_base_s, section.backoff_cap_s)
        self.circuit = Circuit(
            section.circuit_threshold, section.circuit_cool_down_s, section.circuit_max_cool_down_s
        )
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """A new version is known: deliver now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                self._wake.clear()
                started = time.monotonic()
                try:
                    sent = await self.deliver_due()
                except Exception:
                    log.exception("delivery_round_failed")
                    sent = 0
                if sent == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._section.poll_interval_s)
                else:
                    # Versions that arrive meanwhile wait for the next round, where only
                    # the latest of each scope is sent.
                    spare = self._section.round_spacing_s - (time.monotonic() - started)
                    if spare > 0:
                        await asyncio.sleep(spare)
        finally:
            await self._hub.aclose()

    async def deliver_due(self) -> int:
        """One round: claim, send in parallel, record. Returns the number of attempts."""
        capacity = self.circuit.capacity(self._clock.now(), self._section.concurrency)
        self._metrics.hub_circuit_open.set(1 if self.circuit.is_open else 0)
        if capacity == 0:
            return 0
        recovered = False
        async with self._ledger.claim(self._clock.now(), capacity) as claim:
            if not claim.due:
                return 0
            replies = await asyncio.gather(*(self._send(d) for d in claim.due))
            attempts = []
            for due, reply in zip(claim.due, replies, strict=True):
                attempt, transition = self._judge(due, reply)
                attempts.append(attempt)
                recovered = recovered or transition is Transition.CLOSED
            await claim.record(attempts, [self._sync_message(a) for a in attempts])
        self._metrics.hub_circuit_open.set(1 if self.circuit.is_open else 0)
        if recovered:
            released = await self._ledger.due_now()
            log.info("hub_circuit_closed", released=released)
        return len(attempts)

    async def _send(self, due: Due) -> HubReply:
        try:
            return await self._hub.deliver(due.snapshot)
        except Exception as error:
            # An adapter must not raise; if one does, this scope's attempt failed, and the
            # others of the round are still recorded.
            log.exception(
                "hub_adapter_raised", **report_fields(due.snapshot), version=due.snapshot.version
            )
            return HubReply(DeliveryOutcome.FAILED, error=f"{type(error).__name__}: {error}")

    def _judge(self, due: Due, reply: HubReply) -> tuple[Attempt, Transition | None]:
        now = self._clock.now()
        step = step_after(reply)
        transition = self.circuit.record(step is Step.RETRY, now, reply.retry_after_s)
        if transition is Transition.OPENED:
            log.warning(
                "hub_circuit_opened",
                failures=self.circuit.failures,
                reopen_at=self.circuit.reopen_at.isoformat() if self.circuit.reopen_at else None,
            )
        snapshot = due.snapshot
        self._metrics.hub_deliveries.labels(outcome=reply.outcome.value).inc()
        next_at = None
        if step is Step.RETRY:
            delay = self._backoff.delay(due.attempts + 1, reply.retry_after_s, self._rng)
            next_at = now + timedelta(seconds=delay)
        elif holds_this_version(reply):
            lag = (now - snapshot.computed_at).total_seconds()
            self._metrics.snapshot_to_hub.labels(regime=snapshot.regime).observe(max(0.0, lag))
            if due.newest_receipt is not None:
                total = (now - due.newest_receipt).total_seconds()
                self._metrics.receipt_to_hub.labels(regime=snapshot.regime).observe(max(0.0, total))
        fields = {
            "regime": snapshot.regime,
            "period": snapshot.period,
            "unit": snapshot.unit,
            "version": snapshot.version,
            "outcome": reply.outcome.value,
            "status": reply.status_code,
            "attempt": due.attempts + 1,
            "error": reply.error,
        }
        if step is Step.PARKED:
            log.warning("hub_delivery_parked", **fields)
        elif step is Step.RETRY:
            log.warning(
                "hub_delivery_failed", retry_at=next_at.isoformat() if next_at else None, **fields
            )
        else:
            log.debug("hub_delivery", **fields)
        return Attempt(due, reply, step, next_at, now), transition

    def _sync_message(self, attempt: Attempt) -> OutboxMessage:
        s, reply = attempt.due.snapshot, attempt.reply
        result = HubSyncResult(
            regime=s.regime,
            period=s.period,
            unit=s.unit,
            version=s.version,
            outcome=reply.outcome,
            status_code=reply.status_code,
            attempt=attempt.due.attempts + 1,
            error=reply.error,
            attempted_at=attempt.at,
        )
        return OutboxMessage(
            self._sync_topic, scope_key(s.regime, s.period, s.unit), codec.dumps(result)
        )

    async def reconcile(self, page: int = RECONCILE_PAGE) -> Reconciliation:
        """Ask the hub what it holds for every scope believed delivered; resend what it lacks."""
        checked = rewound = unanswered = believed = 0
        async with contextlib.aclosing(self._believed_delivered(page)) as scopes:
            async for regime, period, unit, acked in scopes:
                believed += 1
                try:
                    held = await self._hub.held_version(regime, period, unit)
                except HubUnavailableError as error:
                    unanswered += 1
                    log.warning("reconcile_unanswered", regime=regime, error=str(error))
                    if unanswered >= RECONCILE_GIVE_UP_AFTER:
                        break
                    continue
                unanswered = 0
                checked += 1
                if (held or 0) < acked and await self._ledger.rewind(
                    regime, period, unit, held or 0
                ):
                    rewound += 1
                    log.warning(
                        "hub_missing_version",
                        regime=regime,
                        period=period,
                        unit=unit,
                        held=held,
                        acknowledged=acked,
                    )
        if rewound:
            self.notify()
        return Reconciliation(checked, rewound, complete=checked == believed)

    async def _believed_delivered(self, page: int) -> AsyncGenerator[tuple[str, str, str, int]]:
        """Every scope believed delivered, read `page` at a time in scope order."""
        after: Scope | None = None
        while True:
            batch = await self._ledger.acknowledged(after, page)
            for row in batch:
                yield row
            if len(batch) < page:
                return
            after = batch[-1][:3]

    async def reconcile_forever(self) -> None:
        """At start every scope behind the hub is due at once, then the hub is checked;
        again every `reconcile_interval_s`, sooner while a check could not finish."""
        started = False
        while True:
            wait = RECONCILE_RETRY_S
            try:
                if not started:
                    released = await self._ledger.due_now()
                    started = True
                    log.info("deliveries_resumed", due=released)
                    self.notify()
                result = await self.reconcile()
                log.info(
                    "reconciled",
                    checked=result.checked,
                    rewound=result.rewound,
                    complete=result.complete,
                )
                if result.complete:
                    wait = self._section.reconcile_interval_s
            except Exception:
                log.exception("reconcile_failed")
            await self._sleep(min(wait, self._section.reconcile_interval_s))

    async def watch_backlog(self, interval_s: float = 5.0) -> None:
        """Scopes behind the hub and scopes parked, as gauges for the operators' alerts."""
        while True:
            try:
                behind, parked = await self._ledger.backlog()
                self._metrics.hub_backlog.set(behind)
                self._metrics.hub_parked.set(parked)
            except Exception:
                log.exception("backlog_check_failed")
            await asyncio.sleep(interval_s)
