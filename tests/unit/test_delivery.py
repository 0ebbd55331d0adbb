"""The connector's delivery loop, on a fake clock, against a hub played by `httpx.MockTransport`.

Proves, round by round (`Deliverer.deliver_due`) with the real `JsonHub` and an in-memory
ledger: only the latest version of a scope is sent, and a version that arrives while an
older one is in flight is sent next (after the round spacing, by when a later version
may have replaced it); every attempt is announced on hub.sync.v1 with its number and
result; a failure waits out its backoff and the hub's Retry-After; after `threshold`
consecutive failures the circuit lets nothing through, then one probe per cool-down, and
when a probe succeeds every scope waiting out a backoff is due at once; a refused
snapshot is parked (logged as a warning with the hub's reasons) until a new version or
an operator releases it; a stale reply counts as delivered; tokens that expire every two
seconds, or that a hub restart revokes, never fail a delivery; an adapter that raises
fails only its own attempt; the hub-sync lag is observed for each version the hub holds;
reconciliation checks every scope believed delivered, a page at a time, resends what the
hub lost, and stops without changing anything when the hub cannot answer; it runs at
start and again after each interval (on a timer that follows the test's clock), sooner
when the hub could not answer, and a scope the hub holds behind the version it
acknowledged is sent again; at start, scopes waiting out a backoff are due at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from services.connector import delivery
from services.connector.delivery import RECONCILE_RETRY_S, Deliverer
from services.connector.hub_client import HubReply, JsonHub
from services.connector.settings import ConnectorSection
from shared import codec
from shared.clock import FixedClock
from shared.contracts import (
    AggregateSnapshot,
    Completeness,
    DeliveryOutcome,
    HubSyncResult,
    scope_key,
)
from shared.observability.metrics import Metrics
from shared.settings import HubSettings
from tests.delivery_fakes import Ceiling, FakeHub, FakeLedger
from tests.harness import eventually, logs_of

pytestmark = pytest.mark.unit

T0 = datetime.fromisoformat("2025-03-18T09:00:00+07:00")
SETTINGS = HubSettings(
    url="http://hub.test", client_id="baocao-tb", client_secret=SecretStr("s3cret")
)
TOPIC = "hub.sync.v1"


def snapshot(unit: str = "TB", version: int = 1, online: int = 100) -> AggregateSnapshot:
    return AggregateSnapshot(
        regime="KSTT-TTHC",
        regime_version=1,
        period="2025-Q1",
        unit=unit,
        version=version,
        values={"RECEIVED_ONLINE": Decimal(online), "ONLINE_RATE": None},
        completeness=Completeness(
            expected=17,
            reported=1,
            on_time=1,
            rate=Decimal("5.88"),
            on_time_rate=Decimal("5.88"),
            missing=(),
        ),
        computed_at=T0,
    )


class Timer:
    """The reconciliation timer on the test's clock: each wait is recorded, and ends (the
    clock moving on by its length) only when the test lets it."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.waits: list[float] = []
        self._ends: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await self._ends.get()
        self.clock.advance(timedelta(seconds=seconds))

    def elapse(self) -> None:
        """The wait in progress (or the next one) is over."""
        self._ends.put_nowait(None)

    async def waiting(self, count: int) -> bool:
        """Whether the `count`-th wait has begun."""
        return len(self.waits) >= count


@dataclass
class Rig:
    clock: FixedClock
    hub: FakeHub
    ledger: FakeLedger
    deliverer: Deliverer
    metrics: Metrics
    timer: Timer

    def advance(self, seconds: float) -> None:
        self.clock.advance(timedelta(seconds=seconds))

    def results(self) -> list[HubSyncResult]:
        return [codec.decode(HubSyncResult, m.payload) for m in self.ledger.messages]

    def outcomes(self) -> list[tuple[str, int, DeliveryOutcome]]:
        return [(r.unit, r.version, r.outcome) for r in self.results()]

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


@contextlib.asynccontextmanager
async def rig(**section: float) -> AsyncIterator[Rig]:
    clock = FixedClock(T0)
    fake = FakeHub(clock)
    ledger = FakeLedger()
    metrics = Metrics(CollectorRegistry())
    client = JsonHub(
        SETTINGS,
        transport=httpx.MockTransport(fake),
        monotonic=lambda: (clock.now() - T0).total_seconds(),
    )
    settings = ConnectorSection(**section)  # type: ignore[arg-type]
    timer = Timer(clock)
    deliverer = Deliverer(
        ledger, client, settings, clock, metrics, TOPIC, rng=Ceiling(), sleep=timer.sleep
    )
    try:
        yield Rig(clock, fake, ledger, deliverer, metrics, timer)
    finally:
        await client.aclose()


# --- what is sent -----------------------------------------------------------------------


async def test_only_the_latest_version_of_a_scope_is_sent() -> None:
    async with rig() as r:
        for version in (1, 2, 3):
            r.ledger.remember(snapshot(version=version, online=100 + version))
        assert await r.deliverer.deliver_due() == 1
        assert await r.deliverer.deliver_due() == 0
    assert r.hub.puts == [(("KSTT-TTHC", "2025-Q1", "TB"), 3)]
    assert r.hub.held[("KSTT-TTHC", "2025-Q1", "TB")][1]["values"]["RECEIVED_ONLINE"] == 103
    assert r.outcomes() == [("TB", 3, DeliveryOutcome.STORED)]


async def test_a_version_arriving_while_an_older_one_is_in_flight_is_sent_next() -> None:
    async with rig() as r:
        r.ledger.remember(snapshot(version=1))
        r.hub.during_put = lambda sent: r.ledger.remember(snapshot(version=sent.version + 1))
        await r.deliverer.deliver_due()
        r.hub.during_put = None
        await r.deliverer.deliver_due()
        assert await r.deliverer.deliver_due() == 0
    assert [v for _, v in r.hub.stored] == [1, 2]
    assert r.ledger.rows[("KSTT-TTHC", "2025-Q1", "TB")].acked_version == 2


async def test_versions_arriving_within_the_round_spacing_are_sent_once_as_the_latest() -> None:
    async with rig(round_spacing_s=2.0) as r:
        r.ledger.remember(snapshot(version=1))
        # Version 2 arrives while version 1 is in flight, version 3 just after: without
        # the spacing, version 2 would go out at once, in a round of its own.
        r.hub.during_put = lambda sent: r.ledger.remember(snapshot(version=sent.version + 1))
        loop = asyncio.create_task(r.deliverer.run())
        try:

            async def first_sent() -> bool:
                return len(r.hub.puts) == 1

            await eventually(first_sent, timeout=1.5, interval=0.01)
            r.hub.during_put = None
            r.ledger.remember(snapshot(version=3))
            r.deliverer.notify()

            async def second_sent() -> bool:
                return len(r.hub.puts) == 2

            await eventually(second_sent, timeout=10)
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
    assert [v for _, v in r.hub.puts] == [1, 3]
    assert r.ledger.rows[("KSTT-TTHC", "2025-Q1", "TB")].acked_version == 3


async def test_every_attempt_is_announced_on_hub_sync_with_its_number_and_result() -> None:
    async with rig() as r:
        r.ledger.remember(snapshot(version=4))
        r.hub.down, r.hub.retry_after_s = True, 2
        await r.deliverer.deliver_due()
        r.advance(2)
        await r.deliverer.deliver_due()
        r.hub.down = False
        r.advance(2)
        await r.deliverer.deliver_due()
    results = r.results()
    assert [(x.attempt, x.outcome, x.status_code) for x in results] == [
        (1, DeliveryOutcome.FAILED, 503),
        (2, DeliveryOutcome.FAILED, 503),
        (3, DeliveryOutcome.STORED, 200),
    ]
    assert all(x.version == 4 and x.error is None for x in results[2:])
    assert results[0].error is not None
    assert results[2].attempted_at == T0 + timedelta(seconds=4)
    assert {(m.topic, m.key) for m in r.ledger.messages} == {
        (TOPIC, scope_key("KSTT-TTHC", "2025-Q1", "TB"))
    }


# --- when to send again -----------------------------------------------------------------


async def test_a_failed_delivery_waits_out_its_backoff() -> None:
    async with rig(backoff_base_s=2.0, backoff_cap_s=60.0) as r:
        r.ledger.remember(snapshot())
        r.hub.down = True
        delays = []
        for _ in range(4):
            assert await r.deliverer.deliver_due() == 1
            row = r.ledger.rows[("KSTT-TTHC", "2025-Q1", "TB")]
            assert row.next_attempt_at is not None
            delay = (row.next_attempt_at - r.clock.now()).total_seconds()
            delays.append(delay)
            r.advance(delay - 0.001)
            assert await r.deliverer.deliver_due() == 0  # not a moment early
            r.advance(0.001)
    assert delays == [2.0, 4.0, 8.0, 16.0]  # the ceilings: full jitter drew the top


async def test_the_hubs_retry_after_is_honoured_over_a_shorter_backoff() -> None:
    async with rig(backoff_base_s=0.5) as r:
        r.ledger.remember(snapshot())
        r.hub.down, r.hub.retry_after_s = True, 30
        await r.deliverer.deliver_due()
        r.advance(29.9)
        assert await r.deliverer.deliver_due() == 0
        r.hub.down = False
        r.advance(0.1)
        assert await r.deliverer.deliver_due() == 1
    assert r.outcomes()[-1] == ("TB", 1, DeliveryOutcome.STORED)


async def test_the_circuit_opens_probes_once_per_cool_down_and_releases_all_on_recovery() -> None:
    units = [f"TB.U{n:02d}" for n in range(12)]
    section = {
        "concurrency": 8,
        "circuit_threshold": 5,
        "circuit_cool_down_s": 5.0,
        "backoff_base_s": 20.0,
    }
    async with rig(**section) as r:
        for unit in units:
            r.ledger.remember(snapshot(unit))
        r.hub.down = True
        assert await r.deliverer.deliver_due() == 8  # all fail: the circuit opens
        assert r.deliverer.circuit.is_open
        assert r.sample("baocao_hub_circuit_open") == 1
        r.advance(4.9)
        assert await r.deliverer.deliver_due() == 0  # four scopes are due, but not now
        r.advance(0.1)
        assert await r.deliverer.deliver_due() == 1  # one probe; it fails
        r.advance(9.9)
        assert await r.deliverer.deliver_due() == 0  # the cool-down doubled
        r.hub.down = False
        r.advance(0.1)
        assert await r.deliverer.deliver_due() == 1  # the probe succeeds
        assert not r.deliverer.circuit.is_open
        assert r.sample("baocao_hub_circuit_open") == 0
        # Every other scope's backoff (20 s and more) is forgotten: the hub is back.
        assert await r.deliverer.deliver_due() == 8
        assert await r.deliverer.deliver_due() == 3
        assert await r.deliverer.deliver_due() == 0
    assert sorted(unit for (_, _, unit), _ in r.hub.stored) == units
    assert r.ledger.due_now_calls == 1


async def test_the_circuit_waits_at_least_the_hubs_retry_after() -> None:
    async with rig(circuit_threshold=1, circuit_cool_down_s=5.0) as r:
        r.ledger.remember(snapshot(version=1))
        r.hub.down, r.hub.retry_after_s = True, 40
        await r.deliverer.deliver_due()
        r.hub.down = False
        r.ledger.remember(snapshot(version=2))  # due at once: only the circuit holds it back
        r.advance(39)
        assert await r.deliverer.deliver_due() == 0
        r.advance(1)
        assert await r.deliverer.deliver_due() == 1
    assert r.outcomes()[-1] == ("TB", 2, DeliveryOutcome.STORED)


# --- refusals and stale versions --------------------------------------------------------


async def test_a_refused_snapshot_is_parked_until_a_new_version_arrives() -> None:
    async with rig() as r:
        r.ledger.remember(snapshot(version=1))
        r.hub.refuse = lambda s: ["values.RECEIVED_ONLINE: not accepted"] if s.version == 1 else []
        await r.deliverer.deliver_due()
        r.advance(3600)
        assert await r.deliverer.deliver_due() == 0  # parked: sending again cannot succeed
        assert await r.ledger.backlog() == (0, 1)
        r.ledger.remember(snapshot(version=2))
        assert await r.deliverer.deliver_due() == 1
    assert r.outcomes() == [
        ("TB", 1, DeliveryOutcome.REFUSED),
        ("TB", 2, DeliveryOutcome.STORED),
    ]
    assert r.results()[0].error == "values.RECEIVED_ONLINE: not accepted"
    assert await r.ledger.backlog() == (0, 0)


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """What the delivery loop logs, as structlog's event dicts."""
    with logs_of(monkeypatch, delivery) as entries:
        yield entries


async def test_a_parked_snapshot_is_logged_as_a_warning_with_the_hubs_reasons(
    logged: list[MutableMapping[str, Any]],
) -> None:
    async with rig() as r:
        r.ledger.remember(snapshot(version=3))
        r.hub.refuse = lambda s: ["values.RECEIVED_ONLINE: not accepted"]
        await r.deliverer.deliver_due()
    assert [e for e in logged if e["event"] == "hub_delivery_parked"] == [
        {
            "event": "hub_delivery_parked",
            "log_level": "warning",
            "regime": "KSTT-TTHC",
            "period": "2025-Q1",
            "unit": "TB",
            "version": 3,
            "outcome": "refused",
            "status": 422,
            "attempt": 1,
            "error": "values.RECEIVED_ONLINE: not accepted",
        }
    ]


async def test_an_operator_releases_a_parked_snapshot() -> None:
    async with rig() as r:
        r.ledger.remember(snapshot(version=1))
        r.hub.refuse = lambda s: ["unknown regime version"]
        await r.deliverer.deliver_due()
        r.hub.refuse = None  # the cause is fixed at the hub
        assert await r.deliverer.deliver_due() == 0
        assert r.ledger.unpark("KSTT-TTHC") == 1
        assert await r.deliverer.deliver_due() == 1
    assert r.outcomes()[-1] == ("TB", 1, DeliveryOutcome.STORED)


async def test_a_stale_reply_counts_as_delivered() -> None:
    async with rig() as r:
        r.hub.held[("KSTT-TTHC", "2025-Q1", "TB")] = (9, {})
        r.ledger.remember(snapshot(version=3))
        await r.deliverer.deliver_due()
        r.advance(3600)
        assert await r.deliverer.deliver_due() == 0
    assert r.outcomes() == [("TB", 3, DeliveryOutcome.STALE)]
    assert r.sample("baocao_hub_sync_lag_seconds_count", regime="KSTT-TTHC") == 0


# --- tokens ------------------------------------------------------------------------------


async def test_tokens_expiring_every_two_seconds_never_fail_a_delivery() -> None:
    async with rig() as r:
        r.hub.token_ttl_s = 2
        for version in range(1, 41):
            r.ledger.remember(snapshot(version=version, online=version))
            assert await r.deliverer.deliver_due() == 1
            r.advance(0.5)
    assert {o for _, _, o in r.outcomes()} == {DeliveryOutcome.STORED}
    assert len(r.hub.stored) == 40
    assert r.hub.tokens_issued >= 19  # one per second of the twenty


async def test_a_hub_restart_that_revokes_tokens_fails_no_delivery() -> None:
    async with rig() as r:
        r.ledger.remember(snapshot(version=1))
        await r.deliverer.deliver_due()
        r.hub.restart()
        r.ledger.remember(snapshot(version=2))
        await r.deliverer.deliver_due()
    assert r.outcomes() == [("TB", 1, DeliveryOutcome.STORED), ("TB", 2, DeliveryOutcome.STORED)]
    assert r.hub.tokens_issued == 2


# --- failures of the adapter itself -------------------------------------------------------


class Brittle:
    """An adapter that raises for one unit (a bug in a new transport, say)."""

    def __init__(self, breaks_on: str) -> None:
        self.breaks_on = breaks_on
        self.delivered: list[str] = []

    async def deliver(self, snapshot: AggregateSnapshot) -> HubReply:
        if snapshot.unit == self.breaks_on:
            raise RuntimeError("adapter bug")
        self.delivered.append(snapshot.unit)
        return HubReply(DeliveryOutcome.STORED, 200)

    async def held_version(self, regime: str, period: str, unit: str) -> int | None:
        return None

    async def aclose(self) -> None:
        return None


async def test_an_adapter_that_raises_fails_only_its_own_attempt(
    logged: list[MutableMapping[str, Any]],
) -> None:
    clock, ledger = FixedClock(T0), FakeLedger()
    metrics = Metrics(CollectorRegistry())
    adapter = Brittle("TB.DH")
    deliverer = Deliverer(ledger, adapter, ConnectorSection(), clock, metrics, TOPIC, Ceiling())
    for unit in ("TB", "TB.DH", "TB.HH"):
        ledger.remember(snapshot(unit))
    assert await deliverer.deliver_due() == 3
    raised = [e for e in logged if e["event"] == "hub_adapter_raised"]
    # The line names the scope and version whose attempt failed.
    assert [(e["regime"], e["period"], e["unit"], e["version"]) for e in raised] == [
        ("KSTT-TTHC", "2025-Q1", "TB.DH", 1)
    ]
    results = {r.unit: r for r in (codec.decode(HubSyncResult, m.payload) for m in ledger.messages)}
    assert sorted(adapter.delivered) == ["TB", "TB.HH"]
    assert results["TB.DH"].outcome is DeliveryOutcome.FAILED
    assert results["TB.DH"].error == "RuntimeError: adapter bug"
    assert ledger.rows[("KSTT-TTHC", "2025-Q1", "TB.DH")].attempts == 1


# --- the hub-sync lag ----------------------------------------------------------------------


async def test_the_hub_sync_lag_is_observed_for_each_version_the_hub_holds() -> None:
    async with rig() as r:
        r.ledger.remember(snapshot(version=1))
        r.advance(3)
        r.hub.down = True
        await r.deliverer.deliver_due()  # a failure: nothing observed
        assert r.sample("baocao_hub_sync_lag_seconds_count", regime="KSTT-TTHC") == 0
        r.hub.down = False
        r.advance(1)
        await r.deliverer.deliver_due()
    assert r.sample("baocao_hub_sync_lag_seconds_count", regime="KSTT-TTHC") == 1
    assert r.sample("baocao_hub_sync_lag_seconds_sum", regime="KSTT-TTHC") == 4.0
    assert r.sample("baocao_hub_deliveries_total", outcome="failed") == 1
    assert r.sample("baocao_hub_deliveries_total", outcome="stored") == 1


# --- reconciliation ---------------------------------------------------------------------


async def test_reconciliation_resends_what_the_hub_lost() -> None:
    async with rig() as r:
        for unit in ("TB", "TB.DH"):
            r.ledger.remember(snapshot(unit, version=2))
        await r.deliverer.deliver_due()
        r.hub.lose(("KSTT-TTHC", "2025-Q1", "TB.DH"))
        result = await r.deliverer.reconcile()
        assert (result.checked, result.rewound, result.complete) == (2, 1, True)
        assert await r.deliverer.deliver_due() == 1
        again = await r.deliverer.reconcile()
    assert (again.checked, again.rewound) == (2, 0)
    assert r.hub.held[("KSTT-TTHC", "2025-Q1", "TB.DH")][0] == 2
    assert r.outcomes()[-1] == ("TB.DH", 2, DeliveryOutcome.STORED)


async def test_reconciliation_stops_and_changes_nothing_when_the_hub_cannot_answer() -> None:
    async with rig() as r:
        for n in range(6):
            r.ledger.remember(snapshot(f"TB.U{n}"))
        await r.deliverer.deliver_due()
        r.hub.down = True
        result = await r.deliverer.reconcile()
        assert await r.deliverer.deliver_due() == 0
    assert (result.checked, result.rewound, result.complete) == (0, 0, False)
    assert all(row.acked_version == 1 for row in r.ledger.rows.values())


async def test_reconciliation_checks_every_scope_believed_delivered_a_page_at_a_time() -> None:
    units = [f"TB.U{n:02d}" for n in range(7)]
    async with rig(concurrency=8) as r:
        for unit in units:
            r.ledger.remember(snapshot(unit, version=2))
        await r.deliverer.deliver_due()
        r.hub.lose(("KSTT-TTHC", "2025-Q1", units[-1]))  # on the last page
        result = await r.deliverer.reconcile(page=3)
        assert await r.deliverer.deliver_due() == 1
    assert (result.checked, result.rewound, result.complete) == (7, 1, True)
    assert sorted(unit for _, _, unit in r.hub.gets) == units
    assert r.outcomes()[-1] == (units[-1], 2, DeliveryOutcome.STORED)


@contextlib.asynccontextmanager
async def reconciling(r: Rig) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(r.deliverer.reconcile_forever())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_hub_is_checked_at_start_and_again_after_each_interval() -> None:
    async with rig(reconcile_interval_s=300.0) as r:
        for unit in ("TB", "TB.DH"):
            r.ledger.remember(snapshot(unit))
        await r.deliverer.deliver_due()
        async with reconciling(r):
            for checks in (1, 2, 3):
                await eventually(functools.partial(r.timer.waiting, checks), timeout=5)
                # Each check asks about both scopes, and the next waits for the interval.
                assert len(r.hub.gets) == 2 * checks
                r.timer.elapse()
    assert r.timer.waits == [300.0, 300.0, 300.0]


async def test_a_scope_the_hub_holds_behind_its_acknowledged_version_is_sent_again() -> None:
    scope = ("KSTT-TTHC", "2025-Q1", "TB")
    async with rig(reconcile_interval_s=300.0) as r:
        r.ledger.remember(snapshot(version=1))
        await r.deliverer.deliver_due()
        backup = r.hub.backup()
        r.ledger.remember(snapshot(version=2, online=200))
        await r.deliverer.deliver_due()
        async with reconciling(r):
            await eventually(lambda: r.timer.waiting(1), timeout=5)
            assert await r.deliverer.deliver_due() == 0  # the hub holds version 2
            r.hub.restore(backup)  # brought back with version 1 only
            r.timer.elapse()
            await eventually(lambda: r.timer.waiting(2), timeout=5)
            assert r.ledger.rows[scope].acked_version == 1
            assert await r.deliverer.deliver_due() == 1
    assert r.hub.stored[-1] == (scope, 2)
    assert r.hub.held[scope][1]["values"]["RECEIVED_ONLINE"] == 200
    assert r.ledger.rows[scope].acked_version == 2


async def test_a_check_the_hub_could_not_answer_is_tried_again_sooner() -> None:
    async with rig(reconcile_interval_s=300.0) as r:
        r.ledger.remember(snapshot())
        await r.deliverer.deliver_due()
        r.hub.down = True
        async with reconciling(r):
            await eventually(lambda: r.timer.waiting(1), timeout=5)
            r.hub.down = False
            r.timer.elapse()
            await eventually(lambda: r.timer.waiting(2), timeout=5)
    assert r.timer.waits == [RECONCILE_RETRY_S, 300.0]


async def test_at_start_every_scope_waiting_out_a_backoff_is_due_at_once() -> None:
    async with rig(backoff_base_s=60.0, reconcile_interval_s=3600.0) as r:
        r.ledger.remember(snapshot())
        r.hub.down = True
        await r.deliverer.deliver_due()
        r.hub.down = False
        assert await r.deliverer.deliver_due() == 0  # waiting out 60 s
        async with reconciling(r):
            await eventually(lambda: asyncio.sleep(0, r.ledger.due_now_calls), timeout=5)
        assert await r.deliverer.deliver_due() == 1
    assert r.outcomes()[-1] == ("TB", 1, DeliveryOutcome.STORED)
