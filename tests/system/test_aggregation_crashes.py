"""Aggregation killed with SIGKILL at random moments loses no update and counts none twice.

On the real Kafka broker and PostgreSQL server, with aggregation as its own process:
thousands of accepted reports for sixty regime-periods (both hierarchies of KSTT-TTHC,
both versions of KTXH-M, NVCP-S with its text indicator), every unit with one to five
revisions sent in shuffled order (corrections before and after what they correct),
about a sixth of them sent twice, reach `reports.accepted.v1` in waves while the process
is killed with SIGKILL six times, each time at a random point of the backlog, in turn just
as a batch is taken in and just after a batch's transaction commits, and restarted. At
that point the process is first stopped (SIGSTOP) and seen to have offsets it has not
committed and reports it has not applied, and only then killed: every kill lands mid-work.
A point seen only once its backlog was all done is passed over (the process resumes) for
the next wave's; one wave is spare for that. At the end:

- the latest snapshot published on `aggregates.v1` for every scope of every frame equals,
  byte for byte, the pure fold of the latest accepted revision of each unit (timed by
  its first revision), computed here from what was sent;
- per scope, the versions published are exactly 1..N, each version one content (a message
  the outbox relays twice is the same bytes), each a change from the one before, and N is
  the version stored: as many versions as distinct changes, in order;
- `recompute` finds every stored snapshot equal to the fold of the stored contributions;
- every kill, at least five and at each moment, landed with work left (as read once the
  process was dead).

Every random choice (the traffic, the kill points) comes from one seed, printed at the
start (`pytest -s`, or with the failure's captured output). `BAOCAO_CRASH_SEED=<seed>`
replays a run's traffic and kill points; the timing of each step is the machine's own.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import random
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.aggregation.folds import Figures, Frame, fold, frame_for, snapshots
from services.aggregation.recompute import recompute
from services.aggregation.settings import AggregationSettings
from shared import codec
from shared.catalog import Catalog, IndicatorType, load_catalog
from shared.contracts import (
    ACCEPTED,
    AGGREGATES,
    AcceptedReport,
    AggregateSnapshot,
    Timeliness,
    regime_period_key,
)
from shared.db import create_pool
from shared.settings import REPO_ROOT, KafkaSettings, PostgresSettings
from tests import factories
from tests.harness import eventually, produce
from tests.system.stack import Stack

CATALOG: Catalog = load_catalog(REPO_ROOT / "catalog")
KILLS = 6  # the issue asks for five at least
# A wave per kill, one for after the last kill, and one spare: a moment seen only once
# its backlog was all done is passed over (the process resumes) for the next wave's.
WAVES = KILLS + 2
SEED_VARIABLE = "BAOCAO_CRASH_SEED"
PARTITIONS = 6
# The broker's minimum: a killed member's partitions are handed over within 6 s.
SESSION_TIMEOUT_MS = 6000
BATCH_MAX_RECORDS = 100

REGIME_PERIODS: tuple[tuple[str, str], ...] = (
    *(("KSTT-TTHC", f"{y}-Q{q}") for y in (2023, 2024, 2025, 2026) for q in (1, 2, 3, 4)),
    *(("KTXH-M", f"{y}-M{m:02d}") for y in (2024, 2025, 2026) for m in range(1, 13)),
    *(("NVCP-S", f"{y}-S{h}") for y in (2023, 2024, 2025, 2026) for h in (1, 2)),
)


@dataclass
class Traffic:
    """What is sent: every accepted revision, and the messages in the order sent."""

    frames: dict[tuple[str, str], Frame]
    revisions: dict[tuple[str, str], list[AcceptedReport]] = field(default_factory=dict)
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    duplicates: int = 0


def values_for(frame: Frame, rng: random.Random) -> dict[str, Decimal | str]:
    """Figures of one revision; each indicator keeps one scale, so sums keep it too."""
    values: dict[str, Decimal | str] = {}
    for indicator in frame.regime.indicators:
        if indicator.is_derived or (not indicator.required and rng.random() < 0.2):
            continue
        if indicator.type is IndicatorType.TEXT:
            values[indicator.code] = rng.choice(["Hoàn thành", "Còn vướng mắc về vốn", "Đạt"])
        elif indicator.type is IndicatorType.INTEGER:
            values[indicator.code] = Decimal(rng.choice([0, rng.randrange(1, 10**6)]))
        else:
            values[indicator.code] = Decimal(rng.randrange(0, 10**9)).scaleb(-2)
    return values


def traffic(rng: random.Random) -> Traffic:
    frames = {}
    for regime, period in REGIME_PERIODS:
        found = frame_for(CATALOG, regime, period)
        assert found is not None, (regime, period)
        frames[(regime, period)] = found
    sent = Traffic(frames)
    for key, frame in frames.items():
        regime, period = key
        reports: list[AcceptedReport] = []
        units = frame.reporters["TB"]
        for index, unit in enumerate(units):
            if index and rng.random() < 0.15:
                continue  # a unit that has not reported: completeness must name it
            numbers = sorted(rng.sample(range(1, 10), rng.randint(1, 6)))
            for revision in numbers:
                timeliness = rng.choice([Timeliness.ON_TIME, Timeliness.LATE])
                reports.append(
                    factories.accepted(
                        report_id=f"{regime}-{period}-{unit}-r{revision}",
                        regime=regime,
                        regime_version=frame.regime.version,
                        period=period,
                        unit=unit,
                        revision=revision,
                        values=values_for(frame, rng),
                        received_at=factories.NOW + timedelta(seconds=rng.randrange(10**6)),
                        timeliness=timeliness,
                    )
                )
        sent.revisions[key] = reports
        messages = [(regime_period_key(regime, period), codec.dumps(r)) for r in reports]
        again = [m for m in messages if rng.random() < 0.18]
        sent.duplicates += len(again)
        sent.messages += messages + again
    rng.shuffle(sent.messages)  # revisions out of order, duplicates anywhere
    return sent


def oracle(sent: Traffic) -> dict[tuple[str, str, str], Figures]:
    """The fold of each unit's latest revision, timed by its first: what must be published."""
    expected = {}
    for key, reports in sent.revisions.items():
        by_unit: dict[str, list[AcceptedReport]] = defaultdict(list)
        for report in reports:
            by_unit[report.unit].append(report)
        latest = []
        for history in by_unit.values():
            history.sort(key=lambda r: r.revision)
            latest.append(history[-1].model_copy(update={"timeliness": history[0].timeliness}))
        for scope, figures in snapshots(fold(latest), sent.frames[key]).items():
            expected[(*key, scope)] = figures
    return expected


def chunks(items: Sequence[Any], count: int) -> Iterator[Sequence[Any]]:
    size = -(-len(items) // count)
    for start in range(0, len(items), size):
        yield items[start : start + size]


# Where in the work on a backlog a kill lands, in turn: "taking in", a batch begun
# (decoding, folding, mid-transaction); "committed", just after a batch's transaction
# committed (before its offsets are committed and while its snapshots are relayed).
MOMENTS = ("taking in", "committed")


@dataclass
class Kill:
    moment: str  # one of MOMENTS
    received: float  # records the process had taken in when its moment was seen
    lag: int  # records of reports.accepted.v1 whose offsets were not committed
    unapplied: int  # reports sent that its inbox (`applied`) had no row for

    @property
    def mid_work(self) -> bool:
        return self.lag > 0 and self.unapplied > 0


def crash_seed() -> int:
    """The seed of every random choice (traffic, kill points): SEED_VARIABLE when set, to
    replay a run, else a new one."""
    chosen = os.environ.get(SEED_VARIABLE, "").strip()
    return int(chosen) if chosen else random.randrange(2**32)


async def received_so_far(stack: Stack) -> float:
    try:
        async with httpx.AsyncClient(base_url=stack.url("aggregation"), timeout=10) as http:
            text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return 0.0  # busy on a 2-core machine: ask again
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "baocao_stage_messages_received_total":
                return sample.value
    return 0.0


async def uncommitted(stack: Stack, topic: str) -> int:
    """Records of `topic` that aggregation's consumer group has not committed."""
    group = f"{stack.namespace}baocao.aggregation"
    consumer = AIOKafkaConsumer(
        bootstrap_servers=stack.bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        committed = [await consumer.committed(tp) or 0 for tp in tps]
        return sum(ends[tp] - offset for tp, offset in zip(tps, committed, strict=True))
    finally:
        await consumer.stop()


async def rows_in(stack: Stack, table: str) -> int:
    """Rows of one of aggregation's tables (`outbox`, `applied`: the inbox)."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        count: int = await conn.fetchval(
            f'SELECT count(*) FROM "{stack.namespace}aggregation".{table}'
        )
        return count
    finally:
        await conn.close()


async def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record of `topic`, in partition order, up to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "aggregates.v1 could not be read to its end"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
        return records
    finally:
        await consumer.stop()


async def moment_seen(stack: Stack, moment: str, target: int, every: int) -> float | None:
    """Poll until `moment` of the work: `target` records taken in and, for "committed",
    the next transaction seen committing after that. Returns the records taken in; None
    when all `every` reports sent were applied before a commit could be seen (the moment
    would come after the work). Polled, not timed: the steps of a batch decide it."""
    baseline: list[int] = []  # the inbox's size, read before the target was seen reached
    taken: list[float] = []

    async def reached() -> bool:
        if moment == "committed":
            # Read first: a transaction committing after this read shows as a commit
            # below, however fast the process goes once the target is passed.
            baseline[:] = [await rows_in(stack, "applied")]
        taken[:] = [await received_so_far(stack)]
        return taken[0] >= target

    await eventually(reached, timeout=90, interval=0.02)
    if moment != "committed":
        return taken[0]

    async def committed() -> str:
        now = await rows_in(stack, "applied")
        if now > baseline[0]:
            return "a commit"
        return "all applied" if now == every else ""

    seen = await eventually(committed, timeout=90, interval=0.01)
    return taken[0] if seen == "a commit" else None


async def kill_if_working(
    stack: Stack, topic: str, moment: str, received: float, sent: int
) -> Kill | None:
    """Stop aggregation (SIGSTOP) where it is and look: with offsets not committed and
    some of the `sent` reports not applied, SIGKILL it and return what it left, read again
    once it is dead; else let it go on and return None. Stopped, it moves nothing between
    the look and the kill, so the kill lands in the work it was seen in."""

    async def left() -> Kill:
        unapplied = sent - await rows_in(stack, "applied")
        return Kill(moment, received, await uncommitted(stack, topic), unapplied)

    stack.pause("aggregation")
    if not (await left()).mid_work:
        stack.resume("aggregation")
        return None
    await asyncio.to_thread(stack.kill, "aggregation")
    return await left()


@pytest.fixture
def aggregation(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path
) -> Iterator[Stack]:
    stack = Stack(
        namespace,
        kafka_bootstrap,
        postgres_dsn,
        tmp_path,
        now="2026-03-16T10:00:00+07:00",
        extra_env={
            "BAOCAO_KAFKA__SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            # Smaller batches than the default 500: more transactions and offset commits
            # in a backlog, hence more moments between two steps for a kill to land on.
            "BAOCAO_KAFKA__BATCH_MAX_RECORDS": str(BATCH_MAX_RECORDS),
        },
    )
    try:
        stack.start("aggregation")
        stack.wait_ready("aggregation")
        yield stack
    finally:
        stack.stop_all()


@pytest.mark.timeout(600)
async def test_sigkilled_aggregation_publishes_exactly_the_fold_of_the_latest_revisions(
    aggregation: Stack,
) -> None:
    stack = aggregation
    seed = crash_seed()
    print(f"\ncrash test: seed {seed} ({SEED_VARIABLE}={seed} replays its traffic and kill points)")
    rng = random.Random(seed)
    sent = traffic(rng)
    expected = oracle(sent)
    topic = f"{stack.namespace}{ACCEPTED.name}"
    started = time.monotonic()
    pending = iter(chunks(sent.messages, WAVES))
    kills: list[Kill] = []
    passed: list[str] = []  # moments seen only once their backlog was all done: no kill
    ids_sent: set[str] = set()  # report ids: `applied` (the inbox) has a row per id
    while len(kills) < KILLS:
        wave = next(pending, None)
        assert wave is not None, f"seed {seed}: moments passed over {passed}; kills {kills}"
        # Each wave is a backlog for a process that has just started (or restarted, or
        # resumed with its backlog done).
        await produce(stack.bootstrap, topic, wave)
        ids_sent |= {codec.loads(value)["report_id"] for _, value in wave}

        # A random moment of the work on it: once a random share of the backlog has been
        # taken in, at once or as soon as the next transaction is seen committed.
        target = rng.randrange(1, max(2, len(wave) - 2 * BATCH_MAX_RECORDS))
        moment = MOMENTS[len(kills) % len(MOMENTS)]
        received = await moment_seen(stack, moment, target, len(ids_sent))
        kill = None
        if received is not None:
            kill = await kill_if_working(stack, topic, moment, received, len(ids_sent))
        if kill is None:
            passed.append(moment)
            continue
        kills.append(kill)
        stack.start("aggregation")
        await asyncio.to_thread(stack.wait_ready, "aggregation")
    for wave in pending:
        await produce(stack.bootstrap, topic, wave)

    async def drained() -> bool:
        return await uncommitted(stack, topic) == 0 and await rows_in(stack, "outbox") == 0

    await eventually(drained, timeout=240, interval=0.5)
    elapsed = time.monotonic() - started
    records = await read_all(stack.bootstrap, f"{stack.namespace}{AGGREGATES.name}")
    context = f"seed {seed}; kills {kills}; moments passed over {passed}"

    # Versions: 1..N per scope, one content each, each a change, in order.
    published: dict[tuple[str, str, str], dict[int, bytes]] = defaultdict(dict)
    first_seen: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    repeats = 0
    for record in records:
        snapshot = codec.decode(AggregateSnapshot, record.value)
        scope = (snapshot.regime, snapshot.period, snapshot.unit)
        assert record.key == f"{scope[0]}|{scope[1]}|{scope[2]}".encode(), context
        held = published[scope].setdefault(snapshot.version, record.value)
        if snapshot.version in first_seen[scope]:
            repeats += 1
            assert held == record.value, f"{scope} v{snapshot.version}: two contents; {context}"
        else:
            first_seen[scope].append(snapshot.version)
    assert set(published) == set(expected), context
    stored = await stored_versions(stack)
    versions = 0
    for scope, by_version in published.items():
        count = len(by_version)
        versions += count
        assert first_seen[scope] == list(range(1, count + 1)), f"{scope}; {context}"
        assert stored[scope] == count, f"{scope}; {context}"
        contents = [content_of(by_version[v]) for v in range(1, count + 1)]
        for before, after in itertools.pairwise(contents):
            assert before != after, f"{scope}: a version without a change; {context}"
        # The final content, byte for byte, is the oracle's.
        final = codec.decode(AggregateSnapshot, by_version[count])
        figures = expected[scope]
        assert codec.dumps(final.values) == codec.dumps(dict(figures.values)), f"{scope}; {context}"
        assert final.completeness == figures.completeness, f"{scope}; {context}"
        assert final.regime_version == figures.regime_version, f"{scope}; {context}"

    # The service's own oracle agrees with what it stored.
    config = AggregationSettings(
        kafka=KafkaSettings(bootstrap_servers=stack.bootstrap, namespace=stack.namespace),
        postgres=PostgresSettings(dsn=stack.dsn, schema_prefix=stack.namespace),  # type: ignore[arg-type]
    )
    pool = await create_pool(config.postgres, config.postgres.schema_name("aggregation"))
    try:
        for regime, period in REGIME_PERIODS:
            status = await recompute(
                config, regime, period, out=io.StringIO(), catalog=CATALOG, pool=pool
            )
            assert status == 0, (regime, period)
    finally:
        await pool.close()

    # Every kill hit the process with work left (as read once it was dead), at least five
    # times as the issue asks, at each moment. Whether a kill fell between a snapshot's
    # publication and the outbox's delete (`repeats` above) is a matter of milliseconds that
    # no polling can aim at: it is shown, not required.
    assert len(kills) >= 5, context
    assert all(k.mid_work for k in kills), context
    assert {k.moment for k in kills} == set(MOMENTS), context
    print(  # the figures of this run, shown with `pytest -s`
        f"\ncrash test: seed {seed}, {len(sent.messages)} messages "
        f"({sent.duplicates} duplicates) for {len(REGIME_PERIODS)} regime-periods, "
        f"{len(published)} scopes, {versions} versions, {repeats} relayed twice, "
        f"kills (moment, taken in, not committed, not applied) "
        f"{[(k.moment, int(k.received), k.lag, k.unapplied) for k in kills]}, "
        f"moments passed over {passed}, {elapsed:.1f} s"
    )


def content_of(payload: bytes) -> tuple[Any, ...]:
    snapshot = codec.decode(AggregateSnapshot, payload)
    return (snapshot.regime_version, snapshot.values, snapshot.completeness)


async def stored_versions(stack: Stack) -> dict[tuple[str, str, str], int]:
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch(
            f'SELECT regime, period, unit, version FROM "{stack.namespace}aggregation".snapshots'
        )
    finally:
        await conn.close()
    return {(r["regime"], r["period"], r["unit"]): r["version"] for r in rows}
