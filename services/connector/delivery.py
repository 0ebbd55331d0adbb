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
from datetime import timedelta

from shared import codec, outbox
from shared.contracts import HUB_SYNC, HubSyncResult, scope_key
from shared.logging import get_logger
from shared.outbox import OutboxMessage
from shared.runtime import Runtime

from . import store
from .hub_client import HubAdapter
from .policy import Backoff, Circuit, Step, step_after
from .settings import ConnectorSection
from .store import Attempt, Due

log = get_logger(__name__)


class Deliverer:
    def __init__(
        self,
        runtime: Runtime,
        hub: HubAdapter,
        section: ConnectorSection,
        rng: random.Random | None = None,
    ) -> None:
        self._rt = runtime
        self._hub = hub
        self._section = section
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._backoff = Backoff(section.backoff_base_s, section.backoff_cap_s)
        self.circuit = Circuit(
            section.circuit_threshold, section.circuit_cool_down_s, section.circuit_max_cool_down_s
        )
        self._wake = asyncio.Event()
        runtime.metrics.prepare_delivery(runtime.catalog.regime_codes)

    def notify(self) -> None:
        """A new version is known: deliver now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery_round_failed")
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._section.poll_interval_s)

    async def deliver_due(self) -> int:
        """One round: claim, send in parallel, record. Returns the number of attempts."""
        now = self._rt.clock.now()
        capacity = self.circuit.capacity(now, self._section.concurrency)
        self._rt.metrics.hub_circuit_open.set(1 if self.circuit.is_open else 0)
        if capacity == 0:
            return 0
        async with self._rt.pool.acquire() as conn:
            due = await store.claim_due(conn, now, capacity, self._section.lease_s)
        if not due:
            return 0
        attempts = await asyncio.gather(*(self._attempt(d) for d in due))
        async with self._rt.pool.acquire() as conn, conn.transaction():
            await store.record(conn, attempts)
            await outbox.write(conn, [self._sync_message(a) for a in attempts])
        self._rt.relay.notify()
        return len(attempts)

    async def _attempt(self, due: Due) -> Attempt:
        reply = await self._hub.deliver(due.snapshot)
        now = self._rt.clock.now()
        step = step_after(reply)
        self.circuit.record(hub_failed=step is Step.RETRY, now=now)
        metrics, snapshot = self._rt.metrics, due.snapshot
        metrics.hub_deliveries.labels(outcome=reply.outcome.value).inc()
        next_at = None
        if step is Step.ACKED:
            lag = (now - snapshot.computed_at).total_seconds()
            metrics.snapshot_to_hub.labels(regime=snapshot.regime).observe(max(0.0, lag))
            if due.newest_receipt is not None:
                total = (now - due.newest_receipt).total_seconds()
                metrics.receipt_to_hub.labels(regime=snapshot.regime).observe(max(0.0, total))
        elif step is Step.RETRY:
            delay = self._backoff.delay(due.attempts + 1, reply.retry_after_s, self._rng)
            next_at = now + timedelta(seconds=delay)
        log_event = log.warning if step is not Step.ACKED else log.debug
        log_event(
            "hub_delivery",
            regime=snapshot.regime,
            period=snapshot.period,
            unit=snapshot.unit,
            version=snapshot.version,
            outcome=reply.outcome.value,
            status=reply.status_code,
            step=step.value,
            error=reply.error,
        )
        return Attempt(due, reply, step, next_at)

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
            attempted_at=self._rt.clock.now(),
        )
        return OutboxMessage(
            self._rt.topic(HUB_SYNC), scope_key(s.regime, s.period, s.unit), codec.dumps(result)
        )

    async def reconcile(self, limit: int = 10_000) -> int:
        """Ask the hub what it holds for scopes believed delivered; resend what it lacks."""
        async with self._rt.pool.acquire() as conn:
            believed = await store.acknowledged(conn, limit)
        rewound = 0
        for regime, period, unit, acked in believed:
            try:
                held = await self._hub.held_version(regime, period, unit)
            except Exception as error:
                log.warning("reconcile_unreachable", error=str(error))
                return rewound
            if (held or 0) < acked:
                async with self._rt.pool.acquire() as conn:
                    await store.rewind(conn, regime, period, unit, held or 0)
                rewound += 1
                log.warning(
                    "hub_missing_version", regime=regime, period=period, unit=unit, held=held
                )
        if rewound:
            self.notify()
        return rewound

    async def reconcile_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:
                log.exception("reconcile_failed")
            await asyncio.sleep(self._section.reconcile_interval_s)

    async def watch_backlog(self, interval_s: float = 5.0) -> None:
        """Scopes behind the hub and scopes parked, as gauges for the operators' alerts."""
        while True:
            try:
                async with self._rt.pool.acquire() as conn:
                    behind, parked = await store.backlog(conn)
                self._rt.metrics.hub_backlog.set(behind)
                self._rt.metrics.hub_parked.set(parked)
            except Exception:
                log.exception("backlog_check_failed")
            await asyncio.sleep(interval_s)
