"""Sender authentication over HTTP against real PostgreSQL and Kafka: credentials (E140),
units (E141), signatures (E142), the rate limit (429), the operator endpoints, the
command line that manages sources and operators, and the audit log it writes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx

from services.submission.admin import MAX_BODY_BYTES
from services.submission.app import build_app
from services.submission.settings import SubmissionSection, SubmissionSettings
from shared import codec
from shared.contracts import INBOUND, OUTCOMES, RECEIVED, Outcome, ReceivedReport
from tests import factories
from tests.harness import TopicReader, eventually, produce, running, service_settings
from tests.registry import cli, secured
from tests.signing import private_key, public_key_b64, signed

NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")


# A lock exception operator nguyen-van-a may open.
LOCK_EXCEPTION = {
    "regime": "KSTT-TTHC",
    "period": "2025-Q4",
    "unit": "TB.DH.N01",
    "expires_at": "2026-03-20T17:00:00+07:00",
    "reason": "Mất điện kéo dài",
    "opened_by": "nguyen-van-a",
}


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def body(**overrides: Any) -> bytes:
    return factories.report_json(source=overrides.pop("source", "motcua-a"), **overrides)


async def test_a_source_reports_only_with_its_credential_and_only_for_its_units(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = secured(namespace, kafka_bootstrap, postgres_dsn)
    a = await cli(config, "sources", "create", "motcua-a", "--unit", "TB.DH.N01")
    b = await cli(config, "sources", "create", "motcua-b", "--unit", "TB.DH.N02")
    async with running(build_app(config)) as http:
        missing = await http.post("/v1/reports", content=body())
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert [i["code"] for i in missing.json()["issues"]] == ["E140"]
        wrong = await http.post("/v1/reports", content=body(), headers=bearer(a + "x"))
        assert (wrong.status_code, wrong.json()["issues"][0]["code"]) == (401, "E140")
        garbage = await http.post("/v1/reports", content=body(), headers=bearer("no-dot"))
        assert garbage.status_code == 401

        own = await http.post("/v1/reports", content=body(), headers=bearer(a))
        assert own.status_code == 202, own.text

        # A for B's unit: refused and not stored, so B's genuine report with the same id
        # is new, not a duplicate.
        squatted = factories.report(unit="TB.DH.N02", source="motcua-a")
        refused = await http.post("/v1/reports", content=codec.dumps(squatted), headers=bearer(a))
        assert refused.status_code == 403
        assert [(i["code"], i["field"]) for i in refused.json()["issues"]] == [("E141", "unit")]
        genuine = codec.dumps(squatted.model_copy(update={"source": "motcua-b"}))
        assert (
            await http.post("/v1/reports", content=genuine, headers=bearer(b))
        ).status_code == 202

        # Report ids are one namespace: an id another sender used is refused, never taken
        # as a duplicate (which would leave the report uncounted, with the other's verdict).
        taken = body(report_id=squatted.report_id)
        reused = await http.post("/v1/reports", content=taken, headers=bearer(a))
        assert reused.status_code == 403
        assert [i["field"] for i in reused.json()["issues"]] == ["report_id"]

        # A forged `source` field changes nothing: the credential names the sender.
        forged = body(unit="TB.DH.N02", source="motcua-b")
        answer = await http.post("/v1/reports", content=forged, headers=bearer(a))
        assert answer.status_code == 403
        assert {i["field"] for i in answer.json()["issues"]} == {"source", "unit"}
        wrong_name = await http.post("/v1/reports", content=body(source="x"), headers=bearer(a))
        assert [i["field"] for i in wrong_name.json()["issues"]] == ["source"]

        # Reading: one's own report, never another unit's.
        own_id = own.json()["report_id"]
        assert (await http.get(f"/v1/reports/{own_id}", headers=bearer(a))).status_code == 202
        assert (await http.get(f"/v1/reports/{own_id}", headers=bearer(b))).status_code == 404
        assert (await http.get(f"/v1/reports/{own_id}")).status_code == 401

        # Rotation stops the old credential at once; revocation stops the source.
        rotated = await cli(config, "sources", "rotate", "motcua-a")
        old = await http.post("/v1/reports", content=body(), headers=bearer(a))
        assert old.status_code == 401
        assert (
            await http.post("/v1/reports", content=body(), headers=bearer(rotated))
        ).status_code == 202
        await cli(config, "sources", "revoke", "motcua-a")
        revoked = await http.post("/v1/reports", content=body(), headers=bearer(rotated))
        assert revoked.status_code == 401
        metrics = (await http.get("/metrics")).text
    # Every report refused for its credential is counted, checked before its body or after.
    assert 'baocao_senders_refused_total{channel="http",code="E140"} 5.0' in metrics

    conn = await asyncpg.connect(postgres_dsn)
    try:
        stored = await conn.fetch(
            f'SELECT unit, sender FROM "{namespace}submission".reports ORDER BY received_at'
        )
        audit = await conn.fetch(
            f'SELECT actor, action, target FROM "{namespace}submission".audit_log ORDER BY id'
        )
        hashes = await conn.fetch(f'SELECT credential_hash FROM "{namespace}submission".sources')
    finally:
        await conn.close()
    assert [(r["unit"], r["sender"]) for r in stored] == [
        ("TB.DH.N01", "motcua-a"),
        ("TB.DH.N02", "motcua-b"),
        ("TB.DH.N01", "motcua-a"),
    ]  # none of the refused reports
    assert [(r["action"], r["target"]) for r in audit] == [
        ("source.create", "source:motcua-a"),
        ("source.create", "source:motcua-b"),
        ("source.rotate", "source:motcua-a"),
        ("source.revoke", "source:motcua-a"),
    ]
    assert all(r["actor"] for r in audit)
    for r in hashes:  # only hashes are kept
        assert r["credential_hash"].startswith("$argon2id$")
        assert a not in r["credential_hash"]


async def test_signatures_are_required_where_the_regime_or_the_source_says_and_checked_always(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, tmp_path: Any
) -> None:
    config = secured(namespace, kafka_bootstrap, postgres_dsn)
    a = await cli(
        config, "sources", "create", "motcua-a", "--unit", "TB.STC", "--unit", "TB.DH.N01"
    )
    strict = await cli(
        config, "sources", "create", "motcua-s", "--unit", "TB.HH.N01", "--signatures-required"
    )
    key = private_key()
    pem = tmp_path / "k1.pem"
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    pem.write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    await cli(config, "sources", "add-key", "motcua-a", "--key-id", "k1", "--public-key", str(pem))
    await cli(
        config,
        "sources",
        "add-key",
        "motcua-s",
        "--key-id",
        "k1",
        "--public-key",
        public_key_b64(key),
    )
    await cli(
        config, "sources", "add-key", "motcua-s", "--key-id", "k1", "--public-key", "x", status=1
    )
    nvcp = codec.loads(
        factories.report_json(
            regime="NVCP-S", period="2026-S1", unit="TB.STC", values=factories.NVCP_VALUES,
            source="motcua-a",
        )
    )  # fmt: skip
    async with running(build_app(config)) as http:

        async def post(document: dict[str, Any], credential: str) -> httpx.Response:
            return await http.post(
                "/v1/reports", content=codec.dumps(document), headers=bearer(credential)
            )

        unsigned = await post(nvcp, a)
        assert unsigned.status_code == 422
        assert [(i["code"], i["field"]) for i in unsigned.json()["issues"]] == [
            ("E142", "signature")
        ]
        good = signed(nvcp, key, "k1")
        assert (await post(good, a)).status_code == 202
        replayed = {
            **good,
            "report_id": "replay-1",
            "values": {**good["values"], "TASKS_ASSIGNED": 99},
        }
        changed = await post(replayed, a)
        assert changed.status_code == 422
        assert changed.json()["issues"][0]["field"] == "signature.value"
        # A regime without the requirement still has a present signature checked.
        kstt = codec.loads(body())
        bad_key = signed(kstt, private_key(bytes(32)), "k1")
        assert (await post(bad_key, a)).status_code == 422
        assert (await post(kstt, a)).status_code == 202
        # The source that must sign: unsigned refused whatever the regime, signed taken.
        mine = codec.loads(body(unit="TB.HH.N01", source="motcua-s"))
        assert (await post(mine, strict)).json()["issues"][0]["code"] == "E142"
        assert (await post(signed(mine, key, "k1"), strict)).status_code == 202
        await cli(config, "sources", "revoke-key", "motcua-s", "--key-id", "k1")
        again = signed({**mine, "report_id": "after-revoke"}, key, "k1")
        revoked = await post(again, strict)
        assert revoked.json()["issues"][0]["field"] == "signature.key_id"

    conn = await asyncpg.connect(postgres_dsn)
    try:
        row = await conn.fetchrow(
            f'SELECT signature_key_id, signature, body FROM "{namespace}submission".reports'
            " WHERE report_id = $1",
            good["report_id"],
        )
    finally:
        await conn.close()
    assert row is not None
    assert (row["signature_key_id"], row["signature"]) == ("k1", good["signature"]["value"])
    assert json.loads(row["body"])["signature"] == good["signature"]


async def test_a_source_over_its_rate_limit_is_told_when_to_come_back(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = secured(namespace, kafka_bootstrap, postgres_dsn, rate_limit="2/minute")
    a = await cli(config, "sources", "create", "motcua-a", "--unit", "TB.DH.N01")
    async with running(build_app(config)) as http:
        answers = [
            await http.post("/v1/reports", content=body(), headers=bearer(a)) for _ in range(3)
        ]
        metrics = (await http.get("/metrics")).text
    assert [r.status_code for r in answers] == [202, 202, 429]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert answers[2].json()["retry_after"] == int(answers[2].headers["Retry-After"])
    assert 'baocao_senders_refused_total{channel="http",code="429"} 1.0' in metrics


async def test_operator_endpoints_need_an_operator_credential_and_are_audited(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = secured(namespace, kafka_bootstrap, postgres_dsn)
    operator = await cli(config, "operators", "create", "nguyen-van-a")
    source = await cli(config, "sources", "create", "motcua-a", "--unit", "TB.DH.N01")
    request = dict(LOCK_EXCEPTION)
    async with running(build_app(config)) as http:
        path = "/v1/admin/lock-exceptions"
        assert (await http.post(path, json=request)).status_code == 401
        assert (await http.get(path)).status_code == 401
        as_source = await http.post(path, json=request, headers=bearer(source))
        assert as_source.status_code == 401  # a source's credential is not an operator's
        other = await http.post(
            path, json={**request, "opened_by": "someone-else"}, headers=bearer(operator)
        )
        assert other.status_code == 403
        assert other.json()["issues"][0]["code"] == "E141"
        opened = await http.post(path, json=request, headers=bearer(operator))
        assert opened.status_code == 201, opened.text
        listed = await http.get(path, headers=bearer(operator))
        assert [e["opened_by"] for e in listed.json()] == ["nguyen-van-a"]
        rotated = await cli(config, "operators", "rotate", "nguyen-van-a")
        assert (await http.get(path, headers=bearer(operator))).status_code == 401
        assert (await http.get(path, headers=bearer(rotated))).status_code == 200
    await cli(config, "operators", "revoke", "nguyen-van-a")
    log = await cli(config, "audit", "list")
    lines = log.splitlines()
    assert [line.split("  ")[2] for line in lines] == [
        "operator.create",
        "source.create",
        "lock_exception.open",
        "operator.rotate",
        "operator.revoke",
    ]
    assert lines[2].split("  ")[1] == "nguyen-van-a"
    assert operator not in log
    assert source not in log
    listing = await cli(config, "sources", "list")
    assert listing.startswith("motcua-a  active  units=TB.DH.N01")
    assert "operator nguyen-van-a exists already" in await cli(
        config, "operators", "create", "nguyen-van-a", status=1
    )
    assert "units not in the catalog: TB.XX" in await cli(
        config, "sources", "create", "motcua-x", "--unit", "TB.XX", status=1
    )
    # A revoked holder cannot be rotated or revoked again.
    assert "no active operator nguyen-van-a" in await cli(
        config, "operators", "rotate", "nguyen-van-a", status=1
    )
    await cli(config, "sources", "revoke", "motcua-a")
    assert "no active source motcua-a" in await cli(
        config, "sources", "revoke", "motcua-a", status=1
    )


async def test_an_oversized_lock_exception_request_is_refused_as_it_streams_and_not_recorded(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = secured(namespace, kafka_bootstrap, postgres_dsn)
    operator = await cli(config, "operators", "create", "nguyen-van-a")
    request = dict(LOCK_EXCEPTION)
    padded = json.dumps(request).encode() + b" " * (MAX_BODY_BYTES + 1)  # valid JSON
    chunk, sent = 1024, []

    async def streamed() -> AsyncIterator[bytes]:
        # Without a Content-Length, a megabyte of which the service must read no more
        # than the limit (and one chunk).
        for _ in range(1024):
            sent.append(chunk)
            yield b" " * chunk

    path = "/v1/admin/lock-exceptions"
    async with running(build_app(config)) as http:
        declared = await http.post(path, content=padded, headers=bearer(operator))
        chunked = await http.post(path, content=streamed(), headers=bearer(operator))
        listed = await http.get(path, headers=bearer(operator))
    assert sum(sent) <= MAX_BODY_BYTES + chunk
    for answer in (declared, chunked):
        assert answer.status_code == 413, answer.text
        assert [i["code"] for i in answer.json()["issues"]] == ["E150"]
    assert listed.json() == []
    log = await cli(config, "audit", "list")
    assert [line.split("  ")[2] for line in log.splitlines()] == ["operator.create"]


async def test_without_sender_authentication_nothing_is_asked_as_before(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(SubmissionSettings, namespace, kafka_bootstrap, postgres_dsn, now=NOW)
    async with running(build_app(config)) as http:
        answers = [await http.post("/v1/reports", content=body()) for _ in range(3)]
        assert [a.status_code for a in answers] == [202, 202, 202]

        async def listed() -> bool:
            return (await http.get("/v1/admin/lock-exceptions")).status_code == 200

        assert await eventually(listed)


async def test_unauthenticated_signatures_are_still_checked_and_signed_regimes_need_one(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config = service_settings(
        SubmissionSettings,
        namespace,
        kafka_bootstrap,
        postgres_dsn,
        now=NOW,
        submission=SubmissionSection(signed_regimes=("NVCP-S",)),
    )
    key, other = private_key(), private_key(bytes(32))
    await cli(config, "sources", "create", "motcua-a", "--unit", "TB.STC", "--unit", "TB.DH.N01")
    await cli(
        config,
        "sources",
        "add-key",
        "motcua-a",
        "--key-id",
        "k1",
        "--public-key",
        public_key_b64(key),
    )
    kstt = codec.loads(body())
    nvcp = codec.loads(
        factories.report_json(
            regime="NVCP-S", period="2026-S1", unit="TB.STC", values=factories.NVCP_VALUES,
            source="motcua-a",
        )
    )  # fmt: skip
    forged = signed(kstt, other, "k1")
    async with running(build_app(config)) as http:

        async def post(document: dict[str, Any]) -> tuple[int, list[str]]:
            answer = await http.post("/v1/reports", content=codec.dumps(document))
            fields = [i["field"] for i in answer.json().get("issues", [])]
            return answer.status_code, fields

        assert await post(forged) == (422, ["signature.value"])
        unregistered = signed({**kstt, "source": "motcua-z"}, key, "k1")
        assert await post(unregistered) == (422, ["signature.key_id"])
        assert await post(nvcp) == (422, ["signature"])  # a signed regime, whatever the mode
        assert (await post(signed(nvcp, key, "k1")))[0] == 202
        assert (await post(signed(kstt, key, "k1")))[0] == 202
        unsigned = codec.loads(body())
        assert (await post(unsigned))[0] == 202  # unsigned, where none is asked

        # Over Kafka alike: the forged report is refused on the shared topics, the other taken.
        good = signed(codec.loads(body()), key, "k1")
        again = {**forged, "report_id": "forged-on-kafka"}
        inbound = [(None, codec.dumps(again)), (None, codec.dumps(good))]
        await produce(kafka_bootstrap, config.kafka.topic(INBOUND), inbound)
        async with (
            TopicReader(kafka_bootstrap, config.kafka.dlq(INBOUND)) as dlq,
            TopicReader(kafka_bootstrap, config.kafka.topic(OUTCOMES)) as outcomes,
            TopicReader(kafka_bootstrap, config.kafka.topic(RECEIVED)) as received,
        ):
            dead = await dlq.until(4)
            refusals = [codec.decode(Outcome, r.value) for r in await outcomes.until(4)]
            forwarded = [codec.decode(ReceivedReport, r.value) for r in await received.until(4)]
    # The three refused over HTTP are kept and answered on the shared topics too.
    over_http = [d.value for d in dead if dict(d.headers).get("dlq.source.channel") == b"http"]
    assert sorted(over_http) == sorted(codec.dumps(d) for d in (forged, unregistered, nvcp))
    assert [d.value for d in dead if d.value not in over_http] == [codec.dumps(again)]
    codes = {r.report_id: [i.code for i in r.issues] for r in refusals}
    assert codes["forged-on-kafka"] == ["E142"]
    assert set(codes) == {"forged-on-kafka", kstt["report_id"], nvcp["report_id"]}
    assert good["report_id"] in {f.report.report_id for f in forwarded}
    conn = await asyncpg.connect(postgres_dsn)
    try:
        stored = await conn.fetch(f'SELECT report_id FROM "{namespace}submission".reports')
    finally:
        await conn.close()
    # Refused reports are not stored: the same ids, signed, were taken afterwards.
    taken = {nvcp["report_id"], kstt["report_id"], unsigned["report_id"], good["report_id"]}
    assert {r["report_id"] for r in stored} == taken
