"""Feeding a running stack with reports, and auditing what the hub holds against what
aggregation emitted.

`ReportFeed` sends the sample-traffic plan's reports (first reports, corrections,
duplicates, refusals) to reports.inbound.v1 at a steady rate, and remembers every
report_id. `settle` waits until every report sent has its verdict, every accepted one is
counted by aggregation and every snapshot it emitted is on aggregates.v1; then the latest
version of each synced scope is read from aggregates.v1 to its end. The tests compare the
hub with that, its log of stored versions with the rule that no scope ever goes back a
version, and its log of every PUT with the rule that no client sends a version older than
one the hub already holds. `Pipeline` also reads the connector's delivery state and gives
its operator's command to retry what is parked; `logged` reads a service's log events.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from services.traffic.reports import TrafficPlan
from shared import codec
from shared.catalog import Catalog
from shared.contracts import (
    ACCEPTED,
    AGGREGATES,
    HUB_SYNC,
    INBOUND,
    OUTCOMES,
    AcceptedReport,
    HubSyncResult,
    Outcome,
    Status,
)
from tests.harness import TopicReader, eventually
from tests.system.stack import Stack

Scope = tuple[str, str, str]


def stack_now(stack: Stack) -> datetime:
    """The stack's clock: BAOCAO_NOW, advancing in real time from the stack's anchor."""
    assert stack.now is not None
    return datetime.fromisoformat(stack.now) + timedelta(seconds=time.time() - float(stack.anchor))


class TopicTail(TopicReader):
    """A TopicReader that reads exactly up to the end offsets of every partition."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._consumer.start()

        async def assigned() -> set[TopicPartition] | None:
            found: set[TopicPartition] = self._consumer.assignment()
            return found or None

        self._partitions = sorted(await eventually(assigned))

    async def stop(self) -> None:
        await self._consumer.stop()

    async def end_offsets(self) -> dict[TopicPartition, int]:
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(self._partitions)
        return ends

    async def catch_up(self) -> list[Any]:
        """Everything up to the end offsets as of now."""
        ends = await self.end_offsets()
        while await self._behind(ends):
            batches = await self._consumer.getmany(*self._partitions, timeout_ms=500)
            for records in batches.values():
                self.records.extend(records)
        return self.records

    async def _behind(self, ends: dict[TopicPartition, int]) -> bool:
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return True
        return False


@dataclass
class ReportFeed:
    """The sample-traffic plan's reports, sent at a steady rate to reports.inbound.v1."""

    stack: Stack
    catalog: Catalog
    seed: int = 20250316
    sent: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.plan = TrafficPlan(self.catalog, Random(self.seed))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.stack.bootstrap, acks="all", enable_idempotence=True
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send_for(self, seconds: float, rate: float) -> int:
        """Send `rate` reports a second for `seconds`; returns how many were sent."""
        topic = f"{self.stack.namespace}{INBOUND.name}"
        started, count = time.monotonic(), 0
        while (elapsed := time.monotonic() - started) < seconds:
            planned = self.plan.next(stack_now(self.stack))
            assert planned is not None, "no period accepts reports at the stack's clock"
            await self._producer.send_and_wait(topic, codec.dumps(planned.report), key=planned.key)
            self.sent.add(planned.report.report_id)
            count += 1
            await asyncio.sleep(max(0.0, count / rate - elapsed))
        return count


@dataclass
class Pipeline:
    """What the tests read from a running stack's topics, database and HTTP endpoints."""

    stack: Stack
    catalog: Catalog
    levels: frozenset[str]
    outcomes: TopicTail = field(init=False)
    accepted: TopicTail = field(init=False)
    aggregates: TopicTail = field(init=False)
    sync: TopicTail = field(init=False)

    def __post_init__(self) -> None:
        ns, bootstrap = self.stack.namespace, self.stack.bootstrap
        self.outcomes = TopicTail(bootstrap, f"{ns}{OUTCOMES.name}")
        self.accepted = TopicTail(bootstrap, f"{ns}{ACCEPTED.name}")
        self.aggregates = TopicTail(bootstrap, f"{ns}{AGGREGATES.name}")
        self.sync = TopicTail(bootstrap, f"{ns}{HUB_SYNC.name}")

    @property
    def tails(self) -> tuple[TopicTail, ...]:
        return (self.outcomes, self.accepted, self.aggregates, self.sync)

    async def start(self) -> None:
        started: list[TopicTail] = []
        try:
            for tail in self.tails:
                started.append(tail)
                await tail.start()
        except BaseException:
            for tail in started:
                await tail.stop()
            raise

    async def stop(self) -> None:
        for tail in self.tails:
            await tail.stop()

    # --- waiting for the pipeline to finish what was sent --------------------------------

    async def settle(self, sent: set[str], timeout: float = 120.0) -> dict[Scope, dict[str, Any]]:
        """The latest snapshot of each synced scope, once everything sent is aggregated."""

        async def judged() -> set[str] | None:
            outcomes = [codec.decode(Outcome, r.value) for r in await self.outcomes.catch_up()]
            seen = {o.report_id for o in outcomes}
            accepted = {o.report_id for o in outcomes if o.status is Status.ACCEPTED}
            return accepted if sent <= seen else None

        accepted_ids = await eventually(judged, timeout=timeout, interval=0.5)

        async def counted() -> bool:
            records = await self.accepted.catch_up()
            ids = {codec.decode(AcceptedReport, r.value).report_id for r in records}
            return accepted_ids <= ids and await self._aggregation_done()

        await eventually(counted, timeout=timeout, interval=0.5)
        latest: dict[Scope, dict[str, Any]] = {}
        for record in await self.aggregates.catch_up():
            body = codec.loads(record.value)
            scope = (body["regime"], body["period"], body["unit"])
            unit = self.catalog.unit(body["unit"])
            if unit is None or unit.type not in self.levels:
                continue
            if scope not in latest or latest[scope]["version"] < body["version"]:
                latest[scope] = body
        return latest

    async def _aggregation_done(self) -> bool:
        """Aggregation has committed every accepted report, and published all it emitted."""
        group = f"{self.stack.namespace}baocao.aggregation"
        admin = AIOKafkaAdminClient(bootstrap_servers=self.stack.bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        ends = await self.accepted.end_offsets()
        done = {tp: meta.offset for tp, meta in committed.items()}
        if any(done.get(tp, 0) < end for tp, end in ends.items() if end > 0):
            return False
        conn = await asyncpg.connect(self.stack.dsn)
        try:
            waiting: int = await conn.fetchval(
                f'SELECT count(*) FROM "{self.stack.namespace}aggregation".outbox'
            )
        finally:
            await conn.close()
        return waiting == 0

    # --- the hub -------------------------------------------------------------------------

    def hub(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.stack.url("hub_simulator"), timeout=10)

    async def held(self) -> dict[Scope, dict[str, Any]]:
        async with self.hub() as hub:
            answer = await hub.get("/admin/aggregates")
        return {(h["regime"], h["period"], h["unit"]): h for h in codec.loads(answer.content)}

    async def received(self) -> list[dict[str, Any]]:
        """Every version the hub stored, in order."""
        return await self._log("/admin/received")

    async def puts(self, after: int = 0) -> list[dict[str, Any]]:
        """Every PUT the hub received (after id `after`), in order, with what it held then
        and its answer."""
        return await self._log("/admin/puts", after)

    async def _log(self, path: str, after: int = 0) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        async with self.hub() as hub:
            while True:
                since = entries[-1]["id"] if entries else after
                page = (await hub.get(path, params={"after": since})).json()
                if not page:
                    return entries
                entries += page

    async def set_faults(self, **knobs: Any) -> dict[str, Any]:
        """Every knob not named goes back to its default."""
        async with self.hub() as hub:
            answer = await hub.put("/admin/faults", json=knobs)
        answer.raise_for_status()
        faults: dict[str, Any] = answer.json()
        return faults

    async def hub_holds(
        self, latest: dict[Scope, dict[str, Any]], timeout: float = 120.0
    ) -> dict[Scope, dict[str, Any]]:
        """Wait until the hub holds exactly `latest`."""

        async def same() -> dict[Scope, dict[str, Any]] | None:
            held = await self.held()
            return held if held == latest else None

        return await eventually(same, timeout=timeout, interval=0.5)

    # --- the connector's operator endpoints (open: the stack sets no credential) ---------

    def connector(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.stack.url("connector"), timeout=10)

    async def deliveries(self, state: str | None = None) -> list[dict[str, Any]]:
        """The connector's delivery state of each scope (in `state` only, if given)."""
        async with self.connector() as connector:
            answer = await connector.get(
                "/v1/admin/deliveries", params={"state": state} if state else None
            )
        answer.raise_for_status()
        listed: list[dict[str, Any]] = answer.json()
        return listed

    async def retry_parked(self) -> int:
        """An operator's command: the parked snapshots are sent again; how many scopes."""
        async with self.connector() as connector:
            answer = await connector.post("/v1/admin/deliveries/retry-parked")
        answer.raise_for_status()
        released: int = answer.json()["released"]
        return released

    async def sync_results(self, since: int = 0) -> list[HubSyncResult]:
        """hub.sync.v1 from the `since`-th record read (in read order)."""
        records = await self.sync.catch_up()
        return [codec.decode(HubSyncResult, r.value) for r in records[since:]]

    # --- metrics -------------------------------------------------------------------------

    async def metrics(self, service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        async with httpx.AsyncClient(base_url=self.stack.url(service), timeout=10) as http:
            text = (await http.get("/metrics")).text
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }


def sample(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and set(labels.items()) <= set(sample_labels)
    )


def logged(stack: Stack, service: str, event: str) -> list[dict[str, Any]]:
    """The JSON lines of `service`'s log that record `event`."""
    lines = (stack.logs / f"{service}.log").read_text(errors="replace").splitlines()
    entries = [json.loads(line) for line in lines if line.startswith("{")]
    return [entry for entry in entries if entry.get("event") == event]


def older_than_held(puts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The PUTs that carried a version lower than one the hub had already stored for their
    scope when they arrived. Such a replay is answered `unchanged` when its key was seen
    before, never `stale`, so hub.sync.v1 alone would not show that it was sent."""
    return [
        put
        for put in puts
        if put["version"] is not None
        and put["held_version"] is not None
        and put["version"] < put["held_version"]
    ]


def never_back_a_version(log: Iterable[dict[str, Any]]) -> dict[Scope, list[int]]:
    """Versions stored per scope, in the hub's order; each list must rise strictly."""
    stored: dict[Scope, list[int]] = {}
    for entry in log:
        stored.setdefault((entry["regime"], entry["period"], entry["unit"]), []).append(
            entry["version"]
        )
    return stored
