"""Is the system done with what it was sent? And what does it hold?

Done means: every consumer group has committed its topic to the end, every outbox is
empty, no duplicate waits for its original's verdict, and the hub has acknowledged the
latest version of every scope, all of it twice in a row with no topic growing in between
(a message relayed between two reads is caught by the second). The bench reads the
services' tables only to know that, and to compare what they hold before and after a
replay; the figures themselves come from the topics (`bench.timeline`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.processes import Deployment
from bench.topics import LagWatch
from shared.contracts import ACCEPTED, AGGREGATES, INBOUND, OUTCOMES, RECEIVED, TOPICS

POLL_S = 0.2
OUTBOXES = ("submission", "validation", "aggregation", "connector")


def subscriptions(deploy: Deployment) -> list[tuple[str, str]]:
    """(group, topic) of every subscriber of the pipeline."""
    return [
        (deploy.group("submission"), deploy.topic(INBOUND.name)),
        (deploy.group("submission-verdicts"), deploy.topic(OUTCOMES.name)),
        (deploy.group("validation"), deploy.topic(RECEIVED.name)),
        (deploy.group("aggregation"), deploy.topic(ACCEPTED.name)),
        (deploy.group("connector"), deploy.topic(AGGREGATES.name)),
    ]


async def _waiting(conn: Any, deploy: Deployment) -> int:
    parts = [f'SELECT count(*) FROM "{deploy.schema(s)}".outbox' for s in OUTBOXES]
    parts.append(f'SELECT count(*) FROM "{deploy.schema("submission")}".pending_duplicates')
    parts.append(
        f'SELECT count(*) FROM "{deploy.schema("connector")}".deliveries '
        "WHERE acked_version < version AND (parked_version IS NULL OR parked_version < version)"
    )
    total: int = await conn.fetchval(
        "SELECT " + " + ".join(f"({p})" for p in parts)  # our schema names
    )
    return total


async def wait_done(deploy: Deployment, timeout_s: float = 600.0) -> float:
    """Poll until the system is done; returns when it was first seen done (epoch s)."""
    deadline = time.monotonic() + timeout_s
    topics = [deploy.topic(spec.name) for spec in TOPICS]
    conn = await asyncpg.connect(deploy.dsn)
    lags: dict[tuple[str, str], int] = {}
    waiting = 0
    try:
        async with LagWatch(deploy.bootstrap, subscriptions(deploy)) as watch:
            previous: dict[str, int] | None = None
            first_seen: float | None = None
            while time.monotonic() < deadline:
                seen = time.time()
                lags = await watch.lag()
                if any(lags.values()):
                    # Not done: the tables and topic ends are read only once nothing lags,
                    # so that the probe itself does not load the server under test.
                    previous = first_seen = None
                    await asyncio.sleep(POLL_S)
                    continue
                waiting = await _waiting(conn, deploy)
                ends = {t: sum((await watch.ends(t)).values()) for t in topics}
                if not waiting:
                    if previous == ends and first_seen is not None:
                        return first_seen
                    first_seen = first_seen or seen
                else:
                    first_seen = None
                previous = ends
                await asyncio.sleep(POLL_S)
    finally:
        await conn.close()
    behind = {group: lag for (group, _), lag in lags.items() if lag}
    raise TimeoutError(
        f"the system was not done within {timeout_s} s: lag {behind}, {waiting} rows waiting "
        f"in outboxes, pending duplicates or deliveries (logs: {deploy.logs})"
    )


async def stored(deploy: Deployment) -> dict[str, Any]:
    """The snapshots aggregation holds and what the hub holds, row by row."""
    conn = await asyncpg.connect(deploy.dsn)
    try:
        snapshots = await conn.fetch(
            "SELECT regime, period, unit, version, regime_version, values::text, "
            "completeness::text, computed_at "
            f'FROM "{deploy.schema("aggregation")}".snapshots ORDER BY regime, period, unit'
        )
        hub = await conn.fetch(
            "SELECT regime, period, unit, version, body::text "
            f'FROM "{deploy.schema("hub_simulator")}".aggregates ORDER BY regime, period, unit'
        )
    finally:
        await conn.close()
    return {
        "snapshots": [tuple(r) for r in snapshots],
        "hub": [tuple(r) for r in hub],
    }


async def first_progress(deploy: Deployment, timeout_s: float = 300.0) -> float:
    """When the deployment's groups began to work: the last moment (epoch s) at which none
    of them had committed anything, polled from before the processes start."""
    deadline = time.monotonic() + timeout_s
    async with LagWatch(deploy.bootstrap, subscriptions(deploy)) as watch:
        ends = {topic: await watch.ends(topic) for _, topic in subscriptions(deploy)}
        total = sum(sum(e.values()) for e in ends.values())
        last_idle = time.time()
        while time.monotonic() < deadline:
            polled = time.time()
            if sum((await watch.lag()).values()) < total:
                return last_idle
            last_idle = polled
            await asyncio.sleep(POLL_S / 2)
    raise TimeoutError(f"no group of {deploy.namespace} made progress within {timeout_s} s")


STAGE_SAMPLES = (
    "baocao_stage_messages_received_total",
    "baocao_stage_batch_duration_seconds_count",
    "baocao_stage_batch_duration_seconds_sum",
)


async def stage_counters(deploy: Deployment) -> dict[str, dict[str, float]]:
    """Per stage: records taken in, batches, and seconds spent on batches, so far."""
    found: dict[str, dict[str, float]] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for service in OUTBOXES:
            text = (await http.get(f"{deploy.url(service)}/metrics")).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name in STAGE_SAMPLES:
                        stage = found.setdefault(sample.labels["stage"], {})
                        stage[sample.name] = sample.value
    return found


def batches(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """Batches per stage between two readings, their mean size and mean duration."""
    records, count, seconds = STAGE_SAMPLES
    summary: dict[str, Any] = {}
    for stage, now in after.items():
        then = before.get(stage, {})
        n = now.get(count, 0.0) - then.get(count, 0.0)
        taken = now.get(records, 0.0) - then.get(records, 0.0)
        spent = now.get(seconds, 0.0) - then.get(seconds, 0.0)
        summary[stage] = {
            "batches": int(n),
            "mean_records": round(taken / n, 1) if n else 0,
            "mean_ms": round(spent / n * 1000, 1) if n else 0,
        }
    return summary
