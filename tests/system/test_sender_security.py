"""The whole system as processes on a Kafka broker that authenticates (SASL/SCRAM-SHA-512)
and authorizes (ACLs), sender authentication on, real credentials everywhere.

Proves: the local system of commune A cannot change commune B's figures by any path (HTTP
with its credential, Kafka with its principal, a forged `source` field, B's signed report
replayed with a changed value or as it was): the province's figures at the hub equal the
fold of A's and B's genuine reports exactly, and A learns its refusals on its own outcome
topic. Then, with every log line of every service captured: no secret (a credential, a
Kafka or hub password, the database password, a signing key) appears in any log line, nor
in `/healthz`, `/readyz`, `/metrics` or an error answer.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from aiokafka.errors import TopicAuthorizationFailedError

from services.aggregation.folds import fold, frame_for, snapshot
from services.connector.access import issue_credential
from services.submission import registry_cli
from services.submission.settings import SubmissionSection, SubmissionSettings
from shared import codec
from shared.catalog import load_catalog
from shared.contracts import AcceptedReport, Outcome, Report
from shared.settings import REPO_ROOT, PostgresSettings
from shared.source_topics import inbound_topic, outcomes_topic
from tests import factories
from tests.harness import eventually
from tests.secure_broker import SecureBroker, secure_broker
from tests.signing import private_key, public_key_b64, signed
from tests.system.stack import SERVICES, HubReader, Stack

NOW = "2026-03-16T10:00:00+07:00"
A, B = "motcua-a", "motcua-b"
UNITS = {A: "TB.DH.N01", B: "TB.DH.N02"}
SEEDS = {A: secrets.token_bytes(32), B: secrets.token_bytes(32)}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    with secure_broker(tmp_path_factory.mktemp("secure-kafka"), [A, B]) as running:
        yield running


def kstt(unit: str, source: str, online: int, revision: int = 1) -> dict[str, Any]:
    values = factories.kstt_values(online)
    report = factories.report(unit=unit, source=source, revision=revision, values=values)
    document: dict[str, Any] = codec.loads(codec.dumps(report))
    return signed(document, private_key(SEEDS[source]), "k1")


def accepted(document: dict[str, Any]) -> AcceptedReport:
    return factories.accepted_from(Report.model_validate(document))


async def test_commune_a_cannot_touch_commune_b_and_no_secret_leaks(
    broker: SecureBroker, postgres_dsn: str, tmp_path: Path
) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}_"
    db_password = secrets.token_urlsafe(16)
    parts = urlsplit(postgres_dsn)
    dsn = urlunsplit(parts._replace(netloc=f"postgres:{db_password}@{parts.hostname}:{parts.port}"))
    hub_secret = secrets.token_urlsafe(24)
    kafka = broker.settings(namespace)
    config = SubmissionSettings(
        kafka=kafka,
        postgres=PostgresSettings(dsn=dsn, schema_prefix=namespace),  # type: ignore[arg-type]
        now=datetime.fromisoformat(NOW),
        submission=SubmissionSection(sender_authentication=True),
    )

    async def cli(*argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        assert await registry_cli.run(argv, config, out=out, err=err) == 0, err.getvalue()
        return out.getvalue().strip()

    credentials = {}
    for source, unit in UNITS.items():
        credentials[source] = await cli(
            "sources", "create", source, "--unit", unit, "--signatures-required", "--kafka"
        )
        key = public_key_b64(private_key(SEEDS[source]))
        await cli("sources", "add-key", source, "--key-id", "k1", "--public-key", key)
    operator = await cli("operators", "create", "nguyen-van-a")
    # The connector's operators are its own (it reads no other service's tables).
    hub_operator, hub_operator_digest = issue_credential("nguyen-van-a")
    connector_operator = hub_operator.get_secret_value()

    stack = Stack(
        namespace,
        broker.bootstrap,
        dsn,
        tmp_path,
        now=NOW,
        extra_env={
            **broker.env(),
            "BAOCAO_KAFKA__METADATA_MAX_AGE_MS": "2000",
            "BAOCAO_SUBMISSION__SENDER_AUTHENTICATION": "true",
            "BAOCAO_CONNECTOR__OPERATORS": json.dumps({"nguyen-van-a": hub_operator_digest}),
            "BAOCAO_HUB__CLIENT_SECRET": hub_secret,
        },
    )
    answers: list[httpx.Response] = []
    try:
        stack.start_all()
        genuine_a = kstt(UNITS[A], A, 120)
        genuine_b = kstt(UNITS[B], B, 200)
        a_inbound = inbound_topic(kafka, A)
        producer = broker.producer(A)
        await producer.start()
        try:
            await producer.send_and_wait(a_inbound, codec.dumps(genuine_a))
            # Kafka with A's principal: a report for B's unit on its own topic...
            await producer.send_and_wait(a_inbound, codec.dumps(kstt(UNITS[B], A, 999, 2)))
            # ...B's signed report replayed, as it was and with a changed value...
            await producer.send_and_wait(a_inbound, codec.dumps(genuine_b))
            changed = {**genuine_b, "values": {**genuine_b["values"], "RECEIVED_ONLINE": 999}}
            await producer.send_and_wait(a_inbound, codec.dumps(changed))
            # ...and B's topic, which the broker does not let A write.
            with pytest.raises(TopicAuthorizationFailedError):
                await producer.send_and_wait(inbound_topic(kafka, B), codec.dumps(genuine_a))
        finally:
            await producer.stop()

        def bearer(source: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {credentials[source]}"}

        async with httpx.AsyncClient(base_url=stack.url("submission"), timeout=30) as http:
            b_sent = await http.post(
                "/v1/reports", content=codec.dumps(genuine_b), headers=bearer(B)
            )
            assert b_sent.status_code == 202, b_sent.text
            attacks = [
                # HTTP with A's credential: a "correction" of B's figures, signed by A.
                (bearer(A), kstt(UNITS[B], A, 999, 2), 403),
                # A forged `source` field: A claims to be B.
                (bearer(A), {**kstt(UNITS[B], A, 999, 3), "source": B}, 403),
                # B's signed report replayed by A with a changed value, then as it was.
                (bearer(A), {**changed, "revision": 4}, 403),
                (bearer(A), genuine_b, 403),
                # B's report replayed with a changed value under no credential at all.
                ({}, {**changed, "revision": 5}, 401),
                # A rotated-away or made-up credential for B.
                ({"Authorization": f"Bearer {B}.{secrets.token_urlsafe(32)}"}, changed, 401),
            ]
            for headers, document, status in attacks:
                answer = await http.post(
                    "/v1/reports", content=codec.dumps(document), headers=headers
                )
                answers.append(answer)
                assert answer.status_code == status, answer.text
            answers.append(await http.get("/v1/admin/lock-exceptions"))
            assert answers[-1].status_code == 401
            listed = await http.get(
                "/v1/admin/lock-exceptions", headers={"Authorization": f"Bearer {operator}"}
            )
            assert listed.status_code == 200

        async with httpx.AsyncClient(base_url=stack.url("connector"), timeout=30) as http:
            path = "/v1/admin/deliveries/reconcile"
            answers.append(await http.post(path))
            assert answers[-1].status_code == 401
            wrong = f"nguyen-van-a.{operator.partition('.')[2]}"  # submission's secret
            answers.append(await http.post(path, headers={"Authorization": f"Bearer {wrong}"}))
            assert answers[-1].status_code == 401
            done = await http.post(path, headers={"Authorization": f"Bearer {connector_operator}"})
            assert done.status_code == 200, done.text

        catalog = load_catalog(REPO_ROOT / "catalog")
        frame = frame_for(catalog, "KSTT-TTHC", "2026-Q1")
        assert frame is not None
        state = fold([accepted(genuine_a), accepted(genuine_b)])
        hub = HubReader(stack.url("hub_simulator"), secret=hub_secret)
        try:
            for scope in ("TB",):  # communes report straight to the province since 2025-M07
                expected = snapshot(state, frame, scope)

                async def arrived(scope: str = scope) -> dict[str, Any] | None:
                    answer = await asyncio.to_thread(hub.aggregate, "KSTT-TTHC", "2026-Q1", scope)
                    if answer.status_code != 200:
                        return None
                    held: dict[str, Any] = codec.loads(answer.content)
                    return held if held["completeness"]["reported"] == 2 else None

                held = await eventually(arrived, timeout=90)
                assert held["values"] == dict(expected.values), scope
                assert held["values"]["RECEIVED_ONLINE"] == Decimal(120 + 200)
        finally:
            hub.close()

        # A hears of every refusal on its own topic, and of its report's verdict.
        consumer = broker.consumer(A, outcomes_topic(kafka, A), f"{namespace}{A}.verdicts")
        await consumer.start()
        seen: list[Outcome] = []
        try:

            async def heard() -> list[Outcome] | None:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    seen.extend(codec.decode(Outcome, r.value) for r in records)
                return seen if len(seen) >= 4 else None

            await eventually(heard, timeout=60)
        finally:
            await consumer.stop()
        codes = sorted(sorted({i.code for i in o.issues}) for o in seen if o.issues)
        assert codes == [["E141"], ["E141", "E142"], ["E141", "E142"]]
        assert [o.status.value for o in seen if not o.issues] == ["accepted"]

        faces = []
        async with httpx.AsyncClient(timeout=10) as http:
            for service in SERVICES:
                for path in ("/healthz", "/readyz", "/metrics"):
                    faces.append((await http.get(f"{stack.url(service)}{path}")).text)
    finally:
        stack.stop_all()

    logs = {
        service: (tmp_path / f"{service}.log").read_text(errors="replace") for service in SERVICES
    }
    assert all(logs.values()), "a service wrote no log at all"
    assert "report_refused" in logs["submission"]  # the refusals above were logged
    leaks = {
        "source credentials": list(credentials.values()),
        "source secrets": [c.partition(".")[2] for c in credentials.values()],
        "operator credential": [operator, operator.partition(".")[2]],
        "connector operator credential": [
            connector_operator,
            connector_operator.partition(".")[2],
        ],
        "kafka passwords": list(broker.passwords.values()),
        "hub client secret": [hub_secret],
        "database password": [db_password],
        "signing keys": [
            encoded
            for seed in SEEDS.values()
            for encoded in (seed.hex(), base64.b64encode(seed).decode())
        ],
    }
    texts = {**logs, "http faces": "\n".join(faces), "answers": "\n".join(a.text for a in answers)}
    for kind, values in leaks.items():
        for value in values:
            assert len(value) >= 16
            for where, text in texts.items():
                assert value not in text, f"a {kind} value appears in {where}"
