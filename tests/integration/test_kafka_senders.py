"""Sender authentication over Kafka, on a broker that authenticates with SASL/SCRAM-SHA-512
and authorizes with ACLs: each source's principal may write only its own inbound topic and
read only its own outcomes; submission takes the sender from the topic, refuses a report
for another unit (E141) to the sender alone, stores none it refuses, and sends every
verdict on a source's reports to that source's own topic. The same holds over TLS: a
source sends over SASL_SSL, submission and validation read and write over SASL_SSL
trusting the broker's CA, and the source hears its report accepted."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from services.submission import registry_cli
from services.submission.app import build_app
from services.submission.kafka_access import create_acls, former_acls
from services.submission.settings import SubmissionSection, SubmissionSettings
from services.validation.app import build_app as validation_app
from services.validation.settings import ValidationSettings
from shared import codec
from shared.contracts import INBOUND, OUTCOMES, RECEIVED, Outcome, ReceivedReport, Status
from shared.kafka_client import client_options
from shared.settings import PostgresSettings
from shared.source_topics import inbound_topic, outcomes_topic
from tests import factories
from tests.harness import eventually, running
from tests.secure_broker import SecureBroker, secure_broker

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
# motcua-a's name begins motcua-ab's: it must not reach motcua-ab's consumer groups.
SOURCES = {"motcua-a": "TB.DH.N01", "motcua-b": "TB.DH.N02", "motcua-ab": "TB.DH.N02"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    state = tmp_path_factory.mktemp("secure-kafka")
    with secure_broker(state, list(SOURCES), tls=True) as running_broker:
        yield running_broker


async def deliver(broker: SecureBroker, user: str, topic: str, values: list[bytes]) -> None:
    producer = broker.producer(user)
    try:
        await producer.start()  # a refused producer is stopped too
        await asyncio.gather(*[await producer.send(topic, value) for value in values])
    finally:
        await producer.stop()


async def read(broker: SecureBroker, user: str, topic: str, group: str, count: int) -> list[Any]:
    consumer = broker.consumer(user, topic, group)
    await consumer.start()
    seen: list[Any] = []
    try:

        async def enough() -> list[Any] | None:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                seen.extend(records)
            return seen if len(seen) >= count else None

        return await eventually(enough, timeout=60)
    finally:
        await consumer.stop()


async def refused_read(broker: SecureBroker, user: str, topic: str, group: str) -> KafkaError:
    consumer = broker.consumer(user, topic, group)

    async def records() -> bool:
        # Each call raises a refusal met since the last: the group coordinator's (checked
        # on entry) or a fetch's; records instead mean the read was allowed.
        return bool(await consumer.getmany(timeout_ms=200))

    try:
        await consumer.start()
        await eventually(records, timeout=30)
    except (TopicAuthorizationFailedError, GroupAuthorizationFailedError) as error:
        return error
    finally:
        await consumer.stop()
    raise AssertionError(f"{user} could read {topic} as {group}")


async def stored_senders(postgres_dsn: str, namespace: str) -> list[tuple[str, str]]:
    """(report id, sender) of every report submission stored."""
    conn = await asyncpg.connect(postgres_dsn)
    try:
        stored = await conn.fetch(f'SELECT report_id, sender FROM "{namespace}submission".reports')
    finally:
        await conn.close()
    return [(r["report_id"], r["sender"]) for r in stored]


async def test_each_source_writes_and_reads_only_its_own_topics_and_reports_only_its_units(
    broker: SecureBroker, namespace: str, postgres_dsn: str
) -> None:
    kafka = broker.settings(namespace, metadata_max_age_ms=2000)
    config = SubmissionSettings(
        kafka=kafka,
        postgres=PostgresSettings(dsn=postgres_dsn, schema_prefix=namespace),  # type: ignore[arg-type]
        now=NOW,
        log_format="console",
        submission=SubmissionSection(sender_authentication=True),
    )
    for source, unit in SOURCES.items():
        argv = ("sources", "create", source, "--unit", unit, "--kafka")
        assert await registry_cli.run(argv, config, out=io.StringIO(), err=io.StringIO()) == 0

    own = factories.report(unit="TB.DH.N01", source="motcua-a")
    for_b = factories.report(unit="TB.DH.N02", source="motcua-a")
    forged = factories.report(unit="TB.DH.N02", source="motcua-b")
    a_inbound = inbound_topic(kafka, "motcua-a")
    async with running(build_app(config)):
        await deliver(broker, "motcua-a", a_inbound, [codec.dumps(r) for r in (for_b, forged, own)])

        # The broker refuses A anything else: B's topic, the shared inbound topic.
        for topic in (inbound_topic(kafka, "motcua-b"), kafka.topic(INBOUND)):
            with pytest.raises(TopicAuthorizationFailedError):
                await deliver(broker, "motcua-a", topic, [codec.dumps(own)])

        forwarded = await read(broker, "admin", kafka.topic(RECEIVED), f"{namespace}check", 1)
        assert [codec.decode(ReceivedReport, r.value).report for r in forwarded] == [own]

        # Verdicts reach A on its own topic: its refusals at once, then validation's verdict
        # on its stored report (published on the shared topic, as validation does).
        verdict = Outcome(
            report_id=own.report_id, regime=own.regime, period=own.period, unit=own.unit,
            revision=1, status=Status.ACCEPTED, received_at=NOW,
        )  # fmt: skip
        await deliver(broker, "admin", kafka.topic(OUTCOMES), [codec.dumps(verdict)])
        mine = await read(
            broker, "motcua-a", outcomes_topic(kafka, "motcua-a"), f"{namespace}motcua-a.v", 3
        )
        answers = {o.report_id: o for o in (codec.decode(Outcome, r.value) for r in mine)}
        assert [(i.code, i.field) for i in answers[for_b.report_id].issues] == [("E141", "unit")]
        assert {i.field for i in answers[forged.report_id].issues} == {"source", "unit"}
        assert answers[own.report_id].status is Status.ACCEPTED

        # Revoking a source takes back its ACLs: it can no longer write or read its topics.
        out = io.StringIO()
        assert await registry_cli.run(("sources", "revoke", "motcua-b"), config, out=out) == 0
        late = factories.report(unit="TB.DH.N02", source="motcua-b")
        b_inbound, b_topic = inbound_topic(kafka, "motcua-b"), outcomes_topic(kafka, "motcua-b")

        async def write_refused() -> bool:
            try:
                await deliver(broker, "motcua-b", b_inbound, [codec.dumps(late)])
            # With no ACL left, not even an idempotent producer's id is granted.
            except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
                return True
            return False

        await eventually(write_refused, timeout=30)
        await refused_read(broker, "motcua-b", b_topic, f"{namespace}motcua-b.v2")
        # Its topic is still there, and a record on it (written before the revocation) is
        # refused (E140).
        await deliver(broker, "admin", b_inbound, [codec.dumps(late)])
        refusals = await read(broker, "admin", b_topic, f"{namespace}check-b", 1)
        assert {i.code for r in refusals for i in codec.decode(Outcome, r.value).issues} == {"E140"}

    # Nothing refused was stored or sent where B (or anyone reading the shared topic) sees it.
    shared = await read(broker, "admin", kafka.topic(OUTCOMES), f"{namespace}shared", 1)
    assert [codec.decode(Outcome, r.value).report_id for r in shared] == [own.report_id]
    assert await stored_senders(postgres_dsn, namespace) == [(own.report_id, "motcua-a")]
    dead = await read(broker, "admin", kafka.dlq(INBOUND), f"{namespace}dlq", 3)
    assert {r.value for r in dead} == {codec.dumps(r) for r in (for_b, forged, late)}

    # Each grant and removal is in the audit log, and the listing names each source's user.
    listing, log = io.StringIO(), io.StringIO()
    assert await registry_cli.run(("sources", "list"), config, out=listing) == 0
    assert await registry_cli.run(("audit", "list"), config, out=log) == 0
    assert "motcua-a  active  units=TB.DH.N01  keys=-  kafka=motcua-a" in listing.getvalue()
    assert "motcua-b  revoked  units=TB.DH.N02  keys=-  kafka=-" in listing.getvalue()
    actions = [(line.split("  ")[2], line.split("  ")[3]) for line in log.getvalue().splitlines()]
    assert ("source.kafka_access", "source:motcua-b") in actions
    assert actions[-2:] == [
        ("source.revoke", "source:motcua-b"),
        ("source.kafka_remove", "source:motcua-b"),
    ]

    # A cannot read B's verdicts, nor use a consumer group that is not its own.
    await refused_read(
        broker, "motcua-a", outcomes_topic(kafka, "motcua-b"), f"{namespace}motcua-a.x"
    )
    await refused_read(
        broker, "motcua-a", outcomes_topic(kafka, "motcua-a"), f"{namespace}motcua-b.x"
    )
    a_outcomes = outcomes_topic(kafka, "motcua-a")
    await refused_read(broker, "motcua-a", a_outcomes, f"{namespace}motcua-ab.outcomes")

    # Granting again takes back what earlier versions granted: groups prefixed by the
    # bare name, which let motcua-a in as motcua-ab.
    admin = AIOKafkaAdminClient(**client_options(kafka))
    await admin.start()
    try:
        await create_acls(admin, former_acls(kafka, "motcua-a", "motcua-a"))
    finally:
        await admin.close()
    await read(broker, "motcua-a", a_outcomes, f"{namespace}motcua-ab.former", 1)
    grant = ("sources", "kafka-access", "motcua-a")
    assert await registry_cli.run(grant, config, out=io.StringIO(), err=io.StringIO()) == 0
    await refused_read(broker, "motcua-a", a_outcomes, f"{namespace}motcua-ab.outcomes")

    # Access alone can be taken back too; an unknown or revoked source gets none.
    remove = ("sources", "kafka-access", "motcua-a", "--remove")
    assert await registry_cli.run(remove, config, out=io.StringIO(), err=io.StringIO()) == 0
    await refused_read(broker, "motcua-a", a_outcomes, f"{namespace}motcua-a.after")
    for name in ("motcua-x", "motcua-b"):
        err = io.StringIO()
        unknown = ("sources", "kafka-access", name)
        assert await registry_cli.run(unknown, config, out=io.StringIO(), err=err) == 1
        assert f"no active source {name}" in err.getvalue()


async def test_over_tls_a_source_sends_with_its_principal_and_hears_its_report_accepted(
    broker: SecureBroker, namespace: str, postgres_dsn: str
) -> None:
    tls = broker.over_tls()
    kafka = tls.settings(namespace, metadata_max_age_ms=2000)
    assert (kafka.security_protocol, kafka.ssl_cafile) == ("SASL_SSL", tls.ca_file)
    postgres = PostgresSettings(dsn=postgres_dsn, schema_prefix=namespace)  # type: ignore[arg-type]
    config = SubmissionSettings(
        kafka=kafka,
        postgres=postgres,
        now=NOW,
        log_format="console",
        submission=SubmissionSection(sender_authentication=True),
    )
    checking = ValidationSettings(kafka=kafka, postgres=postgres, now=NOW, log_format="console")
    argv = ("sources", "create", "motcua-a", "--unit", "TB.DH.N01", "--kafka")
    assert await registry_cli.run(argv, config, out=io.StringIO(), err=io.StringIO()) == 0
    report = factories.report(unit="TB.DH.N01", source="motcua-a")
    async with running(build_app(config)), running(validation_app(checking)):
        await deliver(tls, "motcua-a", inbound_topic(kafka, "motcua-a"), [codec.dumps(report)])
        own = outcomes_topic(kafka, "motcua-a")
        heard = await read(tls, "motcua-a", own, f"{namespace}motcua-a.tls", 1)
    verdict = codec.decode(Outcome, heard[0].value)
    assert (verdict.report_id, verdict.status, verdict.issues) == (
        report.report_id,
        Status.ACCEPTED,
        (),
    )
    assert await stored_senders(postgres_dsn, namespace) == [(report.report_id, "motcua-a")]
