"""On a three-node Kafka cluster with production's replication (3 replicas, min.insync.replicas
2, topics provisioned by `python -m services.topics`), reports keep flowing while one broker
is SIGKILLed with reports in the pipeline, while it is down and while it comes back, and
while one of two aggregation instances in the same consumer group is SIGKILLed as it
aggregates them: every report gets exactly one verdict, the hub ends with the exact province
totals of the latest accepted revisions, the group rebalances to the survivor, which takes
up the records the killed instance had not committed and those sent to its partitions after
it died, and nothing is left uncommitted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError

from devstack.cluster import KafkaCluster
from services.aggregation.folds import Figures, fold, frame_for, snapshot
from shared import codec
from shared.catalog import load_catalog
from shared.contracts import ACCEPTED, INBOUND, OUTCOMES, TOPICS, Outcome, Report, Status
from shared.settings import REPO_ROOT
from tests.harness import TopicReader, eventually, produce
from tests.system.cluster import ClusterView, ScaledStack, in_thread, local_cluster
from tests.system.conftest import NOW
from tests.system.report_stream import ReportStream
from tests.system.stack import HubReader
from tests.system.test_pipeline import as_accepted, kstt, ktxh, nvcp

PARTITIONS = 6
SCOPES = (("KSTT-TTHC", "2026-Q1"), ("KTXH-M", "2026-M03"), ("NVCP-S", "2026-S1"))
AGGREGATE = "baocao_stage_messages_received_total"
AGGREGATORS = ("aggregation", "aggregation-2")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    with local_cluster(tmp_path / "cluster") as running:
        yield running


@pytest.fixture
def scaled_stack(
    cluster: KafkaCluster, namespace: str, postgres_dsn: str, tmp_path: Path
) -> Iterator[ScaledStack]:
    """Topics provisioned as in production, then every service, aggregation twice."""
    durability = {
        "BAOCAO_KAFKA__REPLICATION_FACTOR": "3",
        "BAOCAO_KAFKA__MIN_INSYNC_REPLICAS": "2",
        "BAOCAO_KAFKA__PARTITIONS": str(PARTITIONS),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAOCAO_")}
    env |= durability | {
        "BAOCAO_KAFKA__BOOTSTRAP_SERVERS": cluster.address,
        "BAOCAO_KAFKA__NAMESPACE": namespace,
    }
    provisioned = subprocess.run(
        [sys.executable, "-m", "services.topics"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
    logs = tmp_path / "logs"
    logs.mkdir()
    stack = ScaledStack(
        namespace,
        cluster.address,
        postgres_dsn,
        logs,
        now=NOW,
        extra_env=durability,
        instances={"aggregation": 2},
    )
    try:
        stack.start_all()
        yield stack
    finally:
        stack.stop_all()


def reporters() -> Iterator[tuple[str, str, int]]:
    """(regime, unit, its place among the regime's reporters) for the three open periods."""
    catalog = load_catalog(REPO_ROOT / "catalog")
    for regime, period in SCOPES:
        frame = frame_for(catalog, regime, period)
        assert frame is not None
        for index, unit in enumerate(frame.reporters["TB"]):
            yield regime, unit, index


def unit_report(regime: str, unit: str, index: int, revision: int = 1) -> Report:
    """A reporter's report, its figures distinct per unit (`index`) and per revision."""
    shift = revision - 1
    if regime == "KSTT-TTHC":
        return kstt(unit, 100 + 7 * index + shift, revision=revision)
    if regime == "KTXH-M":
        made = ktxh(unit, f"{100 + index + shift}.{index:03d}")
    else:
        made = nvcp(unit, 15 + 3 * index + shift)
    return made.model_copy(update={"revision": revision})


def unit_reports() -> list[Report]:
    """Revision 1 of every reporter of the three open periods, with distinct figures."""
    return [unit_report(*reporter) for reporter in reporters()]


def revisions(reports: list[Report]) -> Iterator[Report]:
    """`reports`, then each of their units' revision 2, 3, ... in turn, without end."""
    yield from reports
    places = {(regime, unit): index for regime, unit, index in reporters()}
    for revision in count(2):
        for r in reports:
            yield unit_report(r.regime, r.unit, places[(r.regime, r.unit)], revision)


def expected_figures(counted: list[Report]) -> dict[tuple[str, str], Figures]:
    """The province snapshots, recomputed by the same pure fold aggregation runs."""
    catalog = load_catalog(REPO_ROOT / "catalog")
    figures = {}
    for regime, period in SCOPES:
        frame = frame_for(catalog, regime, period)
        assert frame is not None
        state = fold(as_accepted(r) for r in counted if (r.regime, r.period) == (regime, period))
        figures[(regime, period)] = snapshot(state, frame, "TB")
    return figures


async def send(stack: ScaledStack, reports: list[Report]) -> None:
    topic = f"{stack.namespace}{INBOUND.name}"
    await produce(stack.bootstrap, topic, [(None, codec.dumps(r)) for r in reports])


async def verdicts(outcomes: TopicReader, ids: set[str], timeout: float) -> list[Outcome]:
    """Waits until every report in `ids` has a verdict; returns all verdicts read so far."""

    async def all_judged() -> list[Outcome] | None:
        seen = [codec.decode(Outcome, r.value) for r in await outcomes.poll()]
        return seen if ids <= {v.report_id for v in seen} else None

    return await eventually(all_judged, timeout=timeout, interval=0.5)


async def aggregated(stack: ScaledStack) -> dict[str, float]:
    """Accepted reports each aggregation instance has taken in since it started."""
    return {
        name: await asyncio.to_thread(stack.counter, name, AGGREGATE, stage="aggregate")
        for name in AGGREGATORS
    }


async def aggregating(stack: ScaledStack, before: dict[str, float]) -> str | None:
    """The instance that has aggregated the most since `before`, or None while neither has:
    it holds partitions the reports flowing now go to."""
    gained = {name: done - before[name] for name, done in (await aggregated(stack)).items()}
    busiest = max(gained, key=gained.__getitem__)
    return busiest if gained[busiest] > 0 else None


def correction(sent: list[Report], made: Report) -> Report:
    """`made` as its unit's next revision: above every revision sent for it so far."""
    latest = max(r.revision for r in sent if (r.regime, r.unit) == (made.regime, made.unit))
    return made.model_copy(update={"revision": latest + 1})


async def busiest_broker(view: ClusterView, topics: list[str]) -> int:
    leaders = Counter(p.leader for p in await view.partitions(topics))
    return leaders.most_common(1)[0][0]


@pytest.mark.timeout(600)
async def test_reports_survive_a_broker_kill_and_an_instance_kill_with_exact_totals(
    cluster: KafkaCluster, scaled_stack: ScaledStack
) -> None:
    stack = scaled_stack
    view = ClusterView(cluster.address)
    topics = [f"{stack.namespace}{t.name}" for t in TOPICS]
    group = f"{stack.namespace}baocao.aggregation"

    # Provisioned as in production: three replicas, two in sync needed for a write.
    for state in await view.partitions(topics):
        assert len(state.replicas) == 3, state
    accepted_topic = f"{stack.namespace}{ACCEPTED.name}"
    assert await view.topic_config(accepted_topic, "min.insync.replicas") == "2"
    assert await view.topic_config(f"{stack.namespace}aggregates.v1", "cleanup.policy") == (
        "compact"
    )

    async def both_members() -> bool:
        return await view.group(group) == ("Stable", 2)

    await eventually(both_members, timeout=60, interval=0.5)

    first = unit_reports()
    waves = [first[0::3], first[1::3], first[2::3]]
    async with TopicReader(stack.bootstrap, f"{stack.namespace}{OUTCOMES.name}") as outcomes:
        # Wave 1 on the healthy cluster.
        await send(stack, waves[0])
        await verdicts(outcomes, {r.report_id for r in waves[0]}, timeout=90)

        # Wave 2 and its units' later revisions flow, a batch at a time, while the broker
        # leading the most partitions is SIGKILLed with reports in the pipeline, while it is
        # down, and while it comes back and catches up.
        victim = await busiest_broker(view, topics)
        inbound = f"{stack.namespace}{INBOUND.name}"
        flow = ReportStream(
            cluster.address, inbound, outcomes, revisions(waves[1]), size=3, limit=150
        )
        async with flow:
            # Killed once a batch has been judged and the next is in the pipeline.
            await eventually(flow.flowing, timeout=90, interval=0.05)
            assert await asyncio.to_thread(cluster.kill, victim)
            killed_at = flow.batches

            async def shrunk() -> bool:
                try:
                    states = await view.partitions(topics)
                except KafkaError:  # asked the dead broker, not yet fenced: ask again
                    return False
                return all(victim not in s.isr and len(s.isr) == 2 for s in states)

            await eventually(shrunk, timeout=30, interval=0.5)  # fenced, never below min ISR

            # Reports go on flowing on the two brokers left, then the third comes back while
            # they flow, and catches up: every partition has three in-sync replicas again.
            await eventually(partial(flow.flowing, killed_at), timeout=120, interval=0.05)
            restarting_at = flow.batches
            await asyncio.to_thread(in_thread, cluster.start, [victim])
            restarted_at = flow.batches

            async def fully_replicated() -> bool:
                return all(len(s.isr) == 3 for s in await view.partitions(topics))

            await eventually(fully_replicated, timeout=120, interval=1.0)
            await eventually(partial(flow.flowing, restarted_at), timeout=120, interval=0.05)
        assert restarted_at > restarting_at  # batches were sent while the broker started
        assert {r.report_id for r in waves[1]} <= {r.report_id for r in flow.sent}

        # Wave 3 and its units' later revisions flow while one of the two aggregation
        # instances is SIGKILLed: the one aggregating this flow (it holds partitions the
        # scopes' keys go to), with a batch on its way.
        before = await aggregated(stack)
        second = ReportStream(
            cluster.address, inbound, outcomes, revisions(waves[2]), size=3, limit=150
        )
        async with second:
            killed = await eventually(partial(aggregating, stack, before), timeout=90)
            await eventually(partial(second.flowing, second.batches - 1), timeout=90, interval=0.05)
            assigned = await eventually(
                partial(view.assignments, group, accepted_topic), timeout=60
            )
            stack.kill(killed)
            killed_at = second.batches
            ends_at_kill = await view.end_offsets(accepted_topic)
            committed_at_kill = await view.committed(group, accepted_topic)

            async def survivor_alone() -> bool:
                return await view.group(group) == ("Stable", 1)

            await eventually(survivor_alone, timeout=90, interval=0.5)
            survivor = await eventually(partial(view.assignments, group, accepted_topic))
            # The member gone is the instance killed: the survivor keeps its member id.
            (gone,) = assigned.keys() - survivor.keys()
            orphaned = assigned[gone]
            assert orphaned, assigned
            assert orphaned <= next(iter(survivor.values()))

            async def orphans_fed() -> bool:
                # Records for the killed instance's partitions, sent after it died.
                await second.flowing()  # raises if the stream failed or ran out
                ends = await view.end_offsets(accepted_topic)
                return any(ends[p] > ends_at_kill[p] for p in orphaned)

            await eventually(orphans_fed, timeout=120, interval=0.2)
            await eventually(partial(second.flowing, killed_at), timeout=120, interval=0.05)
        streamed = [*flow.sent, *second.sent]
        assert {r.report_id for r in waves[2]} <= {r.report_id for r in second.sent}

        # Then corrections (a higher revision replaces, never adds) and exact duplicates.
        sent = [*first, *streamed]
        corrected = [
            correction(sent, kstt(first[0].unit, 400)),
            correction(sent, kstt(first[3].unit, 333)),
            correction(sent, ktxh(first[17].unit, "9876543210.123456789")),
            correction(sent, nvcp(first[-1].unit, 99)),
        ]
        duplicates = [first[1], first[20], corrected[0]]
        await send(stack, corrected)
        await verdicts(outcomes, {r.report_id for r in corrected}, timeout=90)
        await send(stack, duplicates)
        every_id = {r.report_id for r in [*first, *streamed, *corrected]}
        seen = await verdicts(outcomes, every_id, timeout=120)

        async def duplicates_answered() -> list[Outcome] | None:
            current = [codec.decode(Outcome, r.value) for r in await outcomes.poll()]
            count = sum(v.status is Status.DUPLICATE for v in current)
            return current if count >= len(duplicates) else None

        seen = await eventually(duplicates_answered, timeout=90, interval=0.5)

    # Exactly one verdict per report, all accepted; one `duplicate` per resend.
    first_verdicts = [v for v in seen if v.status is not Status.DUPLICATE]
    assert Counter(v.report_id for v in first_verdicts) == Counter(every_id)
    rejected = [(v.report_id, [i.code for i in v.issues]) for v in first_verdicts]
    assert all(v.status is Status.ACCEPTED for v in first_verdicts), rejected
    assert sorted(v.report_id for v in seen if v.status is Status.DUPLICATE) == sorted(
        r.report_id for r in duplicates
    )

    # The hub holds the exact province totals of the latest revision of every unit.
    expected = expected_figures([*first, *streamed, *corrected])
    hub = HubReader(stack.url("hub_simulator"))
    try:
        for (regime, period), figures in expected.items():

            async def arrived(
                regime: str = regime, period: str = period, figures: Figures = figures
            ) -> dict[str, Any] | None:
                answer = await asyncio.to_thread(hub.aggregate, regime, period, "TB")
                if answer.status_code != 200:
                    return None
                held: dict[str, Any] = codec.loads(answer.content)
                return held if held["values"] == dict(figures.values) else None

            held = await eventually(arrived, timeout=120, interval=1.0)
            assert held["completeness"]["reported"] == figures.completeness.reported
            assert held["completeness"]["expected"] == figures.completeness.expected
            assert held["completeness"]["missing"] == []
        log = await asyncio.to_thread(hub.received)
    finally:
        hub.close()
    for scope in {(e["regime"], e["period"], e["unit"]) for e in log}:
        versions = [e["version"] for e in log if (e["regime"], e["period"], e["unit"]) == scope]
        assert versions == sorted(versions), scope  # never an older version after a newer one
    # Two corrections replaced their units' first figures (never added to them).
    kstt_latest = {
        r.unit: Decimal(str(r.values["RECEIVED_ONLINE"]))
        for r in sorted([*first, *streamed], key=lambda r: r.revision)
        if r.regime == "KSTT-TTHC"
    }
    replaced = kstt_latest[first[0].unit] + kstt_latest[first[3].unit]
    total = expected[("KSTT-TTHC", "2026-Q1")].values["RECEIVED_ONLINE"]
    assert total == sum(kstt_latest.values(), Decimal(0)) - replaced + 400 + 333

    # The surviving instance carried on: nothing left uncommitted in its group, and on the
    # killed instance's partitions it committed past what that one had.
    async def drained() -> bool:
        return await view.lag(group, accepted_topic) == 0

    await eventually(drained, timeout=60, interval=1.0)
    committed = await view.committed(group, accepted_topic)
    taken_up = {p for p in orphaned if committed[p] > committed_at_kill.get(p, 0)}
    assert taken_up, (orphaned, committed_at_kill, committed)
