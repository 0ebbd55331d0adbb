"""Aggregation against real Kafka and PostgreSQL: snapshots with rising versions, exactly once.

Proves: the latest revision of each unit is counted once (duplicates and older revisions
change nothing and publish no version); a 2025 quarter of KSTT-TTHC gets a snapshot for the
province and for each district, naming the missing units; a redelivery of everything
already applied (the consumer group rewound to the beginning, as after a crash before the
offset commit) publishes nothing and changes nothing; an undecodable record goes to the
dead-letter topic and the rest of its batch is counted; the `recompute` command run as a
process agrees with the stored snapshots, finds a snapshot that differs, and with
`--publish` repairs it as the next version, relayed by the running service; two roll-ups
of one regime-period that overlap in time (a rebalance) number their versions in turn;
a relay cut off after the broker acknowledged a batch but before its DELETE committed
publishes the same bytes again, which the connector's rule on versions takes once.
"""

from __future__ import annotations

import asyncio
import getpass
import io
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.aggregation import rollup
from services.aggregation.app import MIGRATIONS, build_app
from services.aggregation.folds import fold, frame_for, snapshots
from services.aggregation.recompute import recompute
from services.aggregation.rollup import RollupStage
from services.aggregation.settings import AggregationSettings
from services.connector import store as connector_store
from services.connector.intake import newest_receipt
from services.connector.store import Known
from shared import codec
from shared.catalog import load_catalog
from shared.contracts import (
    ACCEPTED,
    AGGREGATES,
    AcceptedReport,
    AggregateSnapshot,
    Timeliness,
    regime_period_key,
)
from shared.db import create_pool, migrate
from shared.outbox import OutboxMessage, OutboxRelay
from shared.runtime import Runtime
from shared.settings import REPO_ROOT
from shared.topics import ensure_topics
from tests import factories
from tests.fakes import records
from tests.harness import (
    TopicReader,
    an_advisory_lock_is_awaited,
    eventually,
    logs_of,
    produce,
    running,
    service_settings,
)

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
KEY = regime_period_key("KSTT-TTHC", "2026-Q1")
KEY_2025 = regime_period_key("KSTT-TTHC", "2025-Q1")
CATALOG = load_catalog(REPO_ROOT / "catalog")
CONNECTOR_MIGRATIONS = REPO_ROOT / "services" / "connector" / "migrations"
DISTRICTS = ("TB.DH", "TB.HH", "TB.KX", "TB.QP", "TB.TH", "TB.TPTB", "TB.TT", "TB.VT")


def settings(namespace: str, kafka_bootstrap: str, postgres_dsn: str) -> AggregationSettings:
    return service_settings(AggregationSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)


def decoded(records: list[Any]) -> list[AggregateSnapshot]:
    return [codec.decode(AggregateSnapshot, r.value) for r in records]


def latest_by_scope(records: list[Any]) -> dict[str, AggregateSnapshot]:
    latest: dict[str, AggregateSnapshot] = {}
    for s in decoded(records):
        if s.unit not in latest or s.version > latest[s.unit].version:
            latest[s.unit] = s
    return latest


def kstt_2025(unit: str, online: int, **overrides: Any) -> AcceptedReport:
    values = dict(factories.KSTT_VALUES, RECEIVED_ONLINE=Decimal(online))
    return factories.accepted(period="2025-Q1", unit=unit, values=values, **overrides)


async def test_snapshots_count_the_latest_revision_of_each_unit_once(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    a1 = factories.accepted(unit="TB.DH.N01", revision=1)
    b1 = factories.accepted(unit="TB.HH.N01", revision=1)
    corrected = dict(factories.KSTT_VALUES, RECEIVED_ONLINE=Decimal(130), RECEIVED_TOTAL=165)
    a2 = factories.accepted(unit="TB.DH.N01", revision=2, values=corrected)
    topic = config.kafka.topic(ACCEPTED)
    async with running(build_app(config)):
        await produce(kafka_bootstrap, topic, [(KEY, codec.dumps(a1))])
        async with TopicReader(kafka_bootstrap, config.kafka.topic(AGGREGATES)) as aggregates:
            await aggregates.until(1)
            # a duplicate of a1 and an older revision after a2 change nothing
            messages = [(KEY, codec.dumps(m)) for m in (b1, a1, a2, a1)]
            await produce(kafka_bootstrap, topic, messages)

            async def latest() -> AggregateSnapshot | None:
                last = decoded(await aggregates.poll())[-1]
                return (
                    last
                    if last.completeness.reported == 2 and last.values["RECEIVED_ONLINE"] == 250
                    else None
                )

            final = await eventually(latest)
        status = await recompute(config, "KSTT-TTHC", "2026-Q1")
    assert final.unit == "TB"
    assert final.values["RECEIVED_ONLINE"] == Decimal(250)
    assert final.values["RECEIVED_TOTAL"] == Decimal(155 + 165)
    assert final.values["ONLINE_RATE"] == Decimal("80.65")  # 250 / 310
    assert final.completeness.expected == 17
    assert final.completeness.missing[:2] == ("TB.DH.N02", "TB.HH.N02")
    versions = [s.version for s in decoded(aggregates.records)]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) <= 3  # a1; b1 (+ a2, maybe in the same batch); never for a duplicate
    assert status == 0


async def test_a_2025_quarter_has_a_snapshot_per_district_and_a_redelivery_changes_nothing(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    reports = [
        kstt_2025("TB.DH", 100),
        kstt_2025("TB.DH.X01", 10, timeliness=Timeliness.LATE),
        kstt_2025("TB.DH.X02", 20),
        kstt_2025("TB.HH.X03", 1000),
        kstt_2025("TB.TTPVHCC", 5),
    ]
    frame = frame_for(CATALOG, "KSTT-TTHC", "2025-Q1")
    assert frame is not None
    expected = snapshots(fold(reports), frame)
    topic = config.kafka.topic(ACCEPTED)
    messages = [(KEY_2025, codec.dumps(r)) for r in reports]
    await ensure_topics(config.kafka)  # read aggregates.v1 across two runs of the service
    async with (
        TopicReader(kafka_bootstrap, config.kafka.topic(AGGREGATES)) as aggregates,
    ):
        async with running(build_app(config)):
            await produce(kafka_bootstrap, topic, messages)

            async def all_counted() -> dict[str, AggregateSnapshot] | None:
                latest = latest_by_scope(await aggregates.poll())
                done = len(latest) == 9 and latest["TB"].completeness.reported == 5
                return latest if done else None

            first = await eventually(all_counted)
        published = len(aggregates.records)
        # As after a crash between the database commit and the offset commit: every
        # record comes again, to a service that has applied them all.
        await rewind(config, topic)
        async with running(build_app(config)):
            await produce(kafka_bootstrap, topic, messages[:2])  # and sent twice, too
            await eventually(lambda: consumed_to_end(config, topic))
            await eventually(lambda: outbox_empty(postgres_dsn, config))
        await aggregates.poll()
        stored = await stored_versions(postgres_dsn, config)
    assert set(first) == set(frame.scopes)
    for scope, figures in expected.items():
        assert first[scope].version == 1
        assert (first[scope].values, first[scope].completeness) == (
            dict(figures.values),
            figures.completeness,
        )
    dh = first["TB.DH"]
    assert dh.values["RECEIVED_ONLINE"] == Decimal(130)
    assert (dh.completeness.expected, dh.completeness.reported, dh.completeness.on_time) == (
        4,
        3,
        2,
    )
    assert dh.completeness.missing == ("TB.DH.X03",)
    assert first["TB"].values["RECEIVED_ONLINE"] == Decimal(1135)
    assert first["TB.KX"].completeness.missing == ("TB.KX", "TB.KX.X01", "TB.KX.X02", "TB.KX.X03")
    # No new version; the outbox may have relayed a message twice (at least once), byte
    # for byte the same.
    assert published == 9
    assert {r.value for r in aggregates.records} == {r.value for r in aggregates.records[:9]}
    assert stored == dict.fromkeys(frame.scopes, 1)
    assert await recompute(config, "KSTT-TTHC", "2025-Q1") == 0


async def rewind(config: AggregationSettings, topic: str) -> None:
    """Commit offset 0 on every partition for aggregation's group, which has no member now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka.bootstrap_servers,
        group_id=config.kafka.group("aggregation"),
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(config.kafka.partitions)]
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


async def consumed_to_end(config: AggregationSettings, topic: str) -> bool:
    """Whether aggregation's group has committed every record of `topic`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.kafka.bootstrap_servers,
        group_id=config.kafka.group("aggregation"),
        enable_auto_commit=False,
    )
    try:
        await consumer.start()
        tps = [TopicPartition(topic, p) for p in range(config.kafka.partitions)]
        ends = await consumer.end_offsets(tps)
        committed = [await consumer.committed(tp) for tp in tps]
        return all(c == ends[tp] for tp, c in zip(tps, committed, strict=True))
    finally:
        await consumer.stop()


async def query(dsn: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


async def outbox_empty(dsn: str, config: AggregationSettings) -> bool:
    schema = config.postgres.schema_name("aggregation")
    return not await query(dsn, f'SELECT 1 FROM "{schema}".outbox LIMIT 1')


async def stored_versions(dsn: str, config: AggregationSettings) -> dict[str, int]:
    schema = config.postgres.schema_name("aggregation")
    rows = await query(dsn, f'SELECT unit, version FROM "{schema}".snapshots')
    return {r["unit"]: r["version"] for r in rows}


async def test_an_undecodable_record_is_dead_lettered_and_the_rest_is_counted(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    good = factories.accepted(unit="TB.QP.N02")
    topic = config.kafka.topic(ACCEPTED)
    async with running(build_app(config)):
        await produce(kafka_bootstrap, topic, [(KEY, b"{not json"), (KEY, codec.dumps(good))])
        async with (
            TopicReader(kafka_bootstrap, config.kafka.dlq(ACCEPTED)) as dlq,
            TopicReader(kafka_bootstrap, config.kafka.topic(AGGREGATES)) as aggregates,
        ):
            [dead] = await dlq.until(1)
            [counted] = decoded(await aggregates.until(1))
    assert dead.value == b"{not json"
    assert dict(dead.headers)["dlq.source.topic"] == topic.encode()
    assert counted.completeness.reported == 1
    assert counted.values["RECEIVED_ONLINE"] == factories.KSTT_VALUES["RECEIVED_ONLINE"]


async def run_recompute(config: AggregationSettings, *args: str) -> tuple[int, list[Any]]:
    """`python -m services.aggregation recompute ...` as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAOCAO_")}
    env |= {
        "BAOCAO_KAFKA__BOOTSTRAP_SERVERS": config.kafka.bootstrap_servers,
        "BAOCAO_KAFKA__NAMESPACE": config.kafka.namespace,
        "BAOCAO_POSTGRES__DSN": config.postgres.dsn.get_secret_value(),
        "BAOCAO_POSTGRES__SCHEMA_PREFIX": config.postgres.schema_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.aggregation",
        "recompute",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None, err
    return process.returncode, [codec.loads(line) for line in out.decode().splitlines()]


async def test_recompute_agrees_finds_a_difference_and_publishes_the_repair(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    reports = [kstt_2025("TB.VT.X01", 7), kstt_2025("TB.VT.X02", 8)]
    args = ("--regime", "KSTT-TTHC", "--period", "2025-Q1")
    async with (
        running(build_app(config)),
        TopicReader(kafka_bootstrap, config.kafka.topic(AGGREGATES)) as aggregates,
    ):
        await produce(
            kafka_bootstrap,
            config.kafka.topic(ACCEPTED),
            [(KEY_2025, codec.dumps(r)) for r in reports],
        )

        async def counted() -> bool:
            latest = latest_by_scope(await aggregates.poll())
            return "TB" in latest and latest["TB"].completeness.reported == 2

        await eventually(counted)
        status, lines = await run_recompute(config, *args)
        assert status == 0
        assert [line["unit"] for line in lines] == ["TB", *DISTRICTS]
        assert all(line["matches_stored"] for line in lines)
        vt = next(line for line in lines if line["unit"] == "TB.VT")
        assert vt["values"]["RECEIVED_ONLINE"] == 15
        assert vt["completeness"]["missing"] == ["TB.VT", "TB.VT.X03"]

        # A stored snapshot that no longer matches its contributions (a bad restore, say).
        schema = config.postgres.schema_name("aggregation")
        await query(
            postgres_dsn,
            f'UPDATE "{schema}".snapshots SET values = values || \'{{"RECEIVED_ONLINE": 1}}\''
            " WHERE unit = 'TB.VT'",
        )
        found = io.StringIO()
        status = await recompute(config, "KSTT-TTHC", "2025-Q1", unit="TB.VT", out=found)
        lines = [codec.loads(line) for line in found.getvalue().splitlines()]
        assert (status, [line["matches_stored"] for line in lines]) == (1, [False])
        status, lines = await run_recompute(
            config, *args, "--unit", "TB.VT", "--publish", "--actor", "nguyen-van-a"
        )
        assert status == 0
        assert (lines[0]["stored_version"], lines[0]["published_version"]) == (1, 2)

        async def repaired() -> AggregateSnapshot | None:
            latest = latest_by_scope(await aggregates.poll())
            return latest["TB.VT"] if latest["TB.VT"].version == 2 else None

        fixed = await eventually(repaired)
        assert fixed.values["RECEIVED_ONLINE"] == Decimal(15)
        assert await recompute(config, "KSTT-TTHC", "2025-Q1") == 0
    assert await recompute(config, "KSTT-TTHC", "2025-M01") == 2  # not a quarter
    # A period nobody reported: nothing counted, nothing published, nothing differs.
    quiet = io.StringIO()
    assert await recompute(config, "KSTT-TTHC", "2024-Q4", out=quiet, publish=True) == 0
    lines = [codec.loads(line) for line in quiet.getvalue().splitlines()]
    assert [(line["matches_stored"], line["published_version"]) for line in lines] == [
        (True, None)
    ] * 9

    # Each publishing run is in the audit log (who, when, what); comparisons are not.
    schema = config.postgres.schema_name("aggregation")
    logged = await query(
        postgres_dsn,
        f'SELECT at, actor, action, target, details FROM "{schema}".audit_log ORDER BY id',
    )
    assert [(r["actor"], r["action"], r["target"], codec.loads(r["details"])) for r in logged] == [
        (
            "nguyen-van-a",
            "aggregates.republish",
            "aggregates:KSTT-TTHC|2025-Q1",
            {
                "regime": "KSTT-TTHC",
                "period": "2025-Q1",
                "unit": "TB.VT",
                "published": [{"unit": "TB.VT", "version": 2}],
            },
        ),
        (
            getpass.getuser(),  # by default, the login that ran it
            "aggregates.republish",
            "aggregates:KSTT-TTHC|2024-Q4",
            {"regime": "KSTT-TTHC", "period": "2024-Q4", "unit": None, "published": []},
        ),
    ]
    assert logged[0]["at"].tzinfo is not None


async def test_two_transactions_on_one_regime_period_number_their_versions_one_after_the_other(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # As when a rebalance hands a partition over while the previous owner is still
    # finishing a batch: two roll-ups of the same regime-period overlap in time.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    pool = await create_pool(config.postgres, config.postgres.schema_name("aggregation"))
    stage = RollupStage(Runtime("aggregation", config, MIGRATIONS))
    try:
        await migrate(pool, MIGRATIONS)

        rolled: list[AcceptedReport] = []

        async def roll_up(report: AcceptedReport) -> list[AggregateSnapshot]:
            async with pool.acquire() as conn, conn.transaction():
                emitted = (await stage.roll_up(conn, [report], NOW)).emitted
                rolled.append(report)
                if len(rolled) == 1:
                    # Still uncommitted until the other transaction waits on its lock.
                    await eventually(lambda: an_advisory_lock_is_awaited(pool), timeout=30)
                return emitted

        first, second = await asyncio.gather(
            roll_up(factories.accepted(unit="TB.DH.N01")),
            roll_up(factories.accepted(unit="TB.HH.N01")),
        )
        stored = await stored_versions(postgres_dsn, config)
    finally:
        await pool.close()
    assert sorted(s.version for s in [*first, *second]) == [1, 2]
    last = max([*first, *second], key=lambda s: s.version)
    assert last.completeness.reported == 2
    assert stored == {"TB": 2}
    assert await recompute(config, "KSTT-TTHC", "2026-Q1") == 0


async def test_a_regime_period_another_writer_moved_is_read_again_not_taken_from_memory(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # As when a rebalance hands the partition to another instance and back: the first
    # instance holds the regime-period in memory, the other one counts a report meanwhile.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    first = Runtime("aggregation", config, MIGRATIONS)
    second = Runtime("aggregation", config, MIGRATIONS)
    await first.start()
    await second.start()
    try:
        mine, other = RollupStage(first), RollupStage(second)
        online = {"TB.DH.N01": 100, "TB.HH.N01": 50}

        def report(unit: str, revision: int = 1) -> tuple[Any, ...]:
            values = dict(factories.KSTT_VALUES, RECEIVED_ONLINE=Decimal(online[unit]))
            sent = factories.accepted(unit=unit, revision=revision, values=values)
            return records(config.kafka.topic(ACCEPTED), codec.dumps(sent))

        await mine.apply(report("TB.DH.N01"))
        await other.apply(report("TB.HH.N01"))
        online["TB.DH.N01"] = 70
        await mine.apply(report("TB.DH.N01", revision=2))
    finally:
        await first.stop()
        await second.stop()
    conn = await asyncpg.connect(postgres_dsn)
    try:
        row = await conn.fetchrow(
            f'SELECT version, values, completeness FROM "{namespace}aggregation".snapshots'
            " WHERE unit = 'TB'"
        )
    finally:
        await conn.close()
    assert row is not None
    assert row["version"] == 3
    assert codec.loads(row["completeness"])["reported"] == 2
    assert Decimal(codec.loads(row["values"])["RECEIVED_ONLINE"]) == 120
    assert await recompute(config, "KSTT-TTHC", "2026-Q1", out=io.StringIO()) == 0


async def test_an_accepted_report_without_a_regime_version_is_logged_with_its_identity(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Validation accepts only periods with a regime version in force (E107): should one
    # come through anyway, the line names the report, so an operator can find it.
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    runtime = Runtime("aggregation", config, MIGRATIONS)
    sent = factories.accepted(period="2020-Q4")
    await runtime.start()
    try:
        with logs_of(monkeypatch, rollup) as logs:
            await RollupStage(runtime).apply(
                records(config.kafka.topic(ACCEPTED), codec.dumps(sent))
            )
    finally:
        await runtime.stop()
    lines = [e for e in logs if e["event"] == "no_frame_for_accepted_report"]
    assert [(e["report_id"], e["regime"], e["period"], e["unit"]) for e in lines] == [
        (sent.report_id, "KSTT-TTHC", "2020-Q4", "TB.DH.N01")
    ]


async def test_a_relay_cut_off_after_the_broker_acknowledged_publishes_the_same_bytes_again(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # The outbox's crash window: the broker has acknowledged a batch of snapshots, and the
    # DELETE that takes them out of the outbox has not committed (the process dies, or its
    # database connection is lost). The relay publishes them again (at least once), and
    # the consumer's rule on versions makes the replay change nothing (exactly once).
    config = settings(namespace, kafka_bootstrap, postgres_dsn)
    connector = await create_pool(config.postgres, config.postgres.schema_name("connector"))
    runtime = Runtime("aggregation", config, MIGRATIONS)
    try:
        await runtime.start()
        await migrate(connector, CONNECTOR_MIGRATIONS)
        stage = RollupStage(runtime)
        accepted = config.kafka.topic(ACCEPTED)
        # Two transactions before any relay: every scope's version 1, then version 2 of
        # the province and of TB.DH, all waiting in the outbox (no relay loop runs here).
        await stage.apply(records(accepted, codec.dumps(kstt_2025("TB.DH.X01", 10))))
        await stage.apply(
            records(accepted, codec.dumps(kstt_2025("TB.DH.X02", 20)), first_offset=1)
        )
        waiting = await outbox_rows(postgres_dsn, config)
        stored = await stored_versions(postgres_dsn, config)
        assert waiting == sum(stored.values()) == 9 + 2

        async def acknowledged_then_cut_off(messages: Sequence[OutboxMessage]) -> None:
            await runtime.publish(messages)  # returns once the broker acknowledged them all
            raise ConnectionResetError("connection lost before the DELETE committed")

        cut_off = OutboxRelay(runtime.pool, acknowledged_then_cut_off, runtime.metrics)
        async with TopicReader(kafka_bootstrap, config.kafka.topic(AGGREGATES)) as aggregates:
            with pytest.raises(ConnectionResetError):
                await cut_off.relay_once()
            assert await outbox_rows(postgres_dsn, config) == waiting  # the DELETE rolled back
            first = list(await aggregates.until(waiting))
            assert await runtime.relay.relay_once() == waiting
            everything = await aggregates.until(2 * waiting)
            replayed = everything[waiting:]
        assert await outbox_rows(postgres_dsn, config) == 0
        # Counted once: the relay counts what it published only once its DELETE committed.
        published = runtime.registry.get_sample_value(
            "baocao_outbox_published_total", {"topic": config.kafka.topic(AGGREGATES)}
        )
        assert published == waiting

        # Within each partition, the replay is the first publication again, byte for byte
        # and in the same order (key, value and headers).
        assert sent_per_partition(replayed) == sent_per_partition(first)
        assert len(replayed) == waiting

        # The connector keeps the highest version per scope: the first publication moves
        # every scope forward, and each replayed record, taken on its own as a redelivery
        # would come, moves none (an older version after a newer one included).
        async with connector.acquire() as conn:
            assert await connector_store.remember(conn, known(first)) == len(stored)
            for record in replayed:
                assert await connector_store.remember(conn, known([record])) == 0
            rows = await conn.fetch("SELECT unit, version FROM deliveries")
        assert {r["unit"]: r["version"] for r in rows} == stored
        assert stored["TB"] == stored["TB.DH"] == 2
    finally:
        await runtime.stop()
        await connector.close()


async def outbox_rows(dsn: str, config: AggregationSettings) -> int:
    schema = config.postgres.schema_name("aggregation")
    [row] = await query(dsn, f'SELECT count(*) AS n FROM "{schema}".outbox')
    count: int = row["n"]
    return count


def sent_per_partition(
    consumed: Sequence[Any],
) -> dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]]:
    """What each partition received, in offset order."""
    by_partition: dict[int, list[tuple[bytes, bytes, list[tuple[str, bytes]]]]] = {}
    for record in sorted(consumed, key=lambda r: (r.partition, r.offset)):
        by_partition.setdefault(record.partition, []).append(
            (record.key, record.value, list(record.headers))
        )
    return by_partition


def known(consumed: Sequence[Any]) -> list[Known]:
    """The snapshots as the connector's intake takes them from aggregates.v1."""
    return [Known(codec.decode(AggregateSnapshot, r.value), newest_receipt(r)) for r in consumed]
