"""Every verdict reaches the sender, over Kafka and over HTTP, with real servers behind.

Proves, with submission and validation running together: every code of DESIGN §3 comes
back for a real report sent on Kafka and for one sent to `POST /v1/reports`, on the field
at fault. Without sender authentication (`CASES`, E100..E130, E142 and E150): on
reports.outcomes.v1 and at `GET /v1/reports/{report_id}`, or in the answer to a body
refused before it is stored. With it (`SENDER_CASES`, E140..E142): over Kafka on the
sending source's own outcome topic, over HTTP in the answer. A guard holds the two tables
to the codes of the message table, so that a new code without a case fails.

A report sent again with its `report_id` gets the original verdict repeated with status
`duplicate`, whether the original was accepted or rejected, and whichever channel either
copy took; an operator's lock exception, opened through `POST /v1/admin/lock-exceptions`,
is recorded, sent on reports.received.v1 keyed regime|period, lets that one unit report
into the locked period until it expires, and refuses a request that names no real regime,
period or unit.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import httpx

from services.submission.kafka_access import SourceTopics
from services.submission.settings import SubmissionSettings
from shared import codec
from shared.contracts import (
    INBOUND,
    OUTCOMES,
    RECEIVED,
    Issue,
    LockException,
    Outcome,
    Status,
    Timeliness,
)
from shared.messages import MESSAGES
from shared.source_topics import inbound_topic, outcomes_topic
from tests import factories
from tests.harness import TopicReader, eventually, produce
from tests.integration.validation_stack import front
from tests.registry import cli, secured

LIMIT = 4096  # submission's max_report_bytes in these tests


def document(**changes: Any) -> dict[str, Any]:
    """A valid KSTT-TTHC 2026-Q1 report as JSON, with changes (None removes a field)."""
    fields: dict[str, Any] = json.loads(factories.report_json())
    for name, value in changes.items():
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    return fields


def values(**changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(codec.dumps(factories.KSTT_VALUES))
    for code, value in changes.items():
        if value is None:
            found.pop(code)
        else:
            found[code] = value
    return found


KTXH = json.loads(codec.dumps(factories.KTXH_VALUES))
# Signed with key k1, which the source the report names never registered: refused for the
# key before the value is even read. A signature a report carries is always checked.
SIGNATURE = {"alg": "Ed25519", "key_id": "k1", "value": base64.b64encode(bytes(64)).decode()}


class Case(NamedTuple):
    code: str
    field: str | None
    changes: dict[str, Any]


CASES = (
    Case("E100", "unit", {"unit": None}),
    Case("E101", "regime", {"regime": "KSTT-XYZ"}),
    Case("E102", "unit", {"unit": "TB.NOWHERE"}),
    Case("E103", "unit", {"unit": "TB.VP"}),
    Case("E104", "period", {"period": "2026-M03"}),
    Case("E105", "period", {"period": "2026-Q3"}),
    Case("E106", "period", {"period": "2025-Q4"}),
    Case(
        "E107",
        "period",
        {"regime": "KTXH-M", "period": "2020-M11", "unit": "TB.DH", "values": KTXH},
    ),
    Case("E110", "values.BUDGET_REVENUE", {"values": values(BUDGET_REVENUE=1)}),
    Case("E111", "values.RECEIVED_ONLINE", {"values": values(RECEIVED_ONLINE=None)}),
    Case("E112", "values.RECEIVED_ONLINE", {"values": values(RECEIVED_ONLINE=120.5)}),
    Case("E113", "values.PROCESSING_DAYS_TOTAL", {"values": values(PROCESSING_DAYS_TOTAL=-0.5)}),
    Case("E114", "values.ON_TIME_RATE", {"values": values(ON_TIME_RATE=91.67)}),
    Case("E120", "values", {"values": values(CARRIED_OVER=6)}),
    Case("E130", "revision", {"revision": 1}),  # sent after revision 2 was accepted
    Case("E142", "signature.key_id", {"signature": SIGNATURE}),
    Case("E150", None, {}),  # padded over the limit
)
# Refused over HTTP before it is stored: the answer itself carries the verdict.
ANSWERED_AT_ONCE = {"E100": 422, "E142": 422, "E150": 413}

# Sent with sender authentication on (`secured`), by two sources:
SOURCE, REVOKED = "motcua-a", "motcua-z"  # both registered for TB.DH.N01; Z then revoked

# The codes of the sender checks. A case's report is sent by the source its `source` field
# names (A unless it says otherwise): over HTTP with that source's credential, over Kafka on
# that source's own inbound topic.
SENDER_CASES = (
    Case("E140", None, {"source": REVOKED}),
    Case("E141", "unit", {"unit": "TB.DH.N02"}),
    Case("E142", "signature.key_id", {"signature": SIGNATURE}),  # A has registered no key
)
# Over HTTP the credential is at fault, in the request's header; over Kafka, the topic the
# report came from, which no field of the report names.
HTTP_ANSWERS = {"E140": (401, "(header) Authorization"), "E141": (403, None), "E142": (422, None)}

# Every code of DESIGN §3: those the message table words (every issue the system gives is
# worded from it, so no code can be given without being in it).
CODES = frozenset(key.split(".", 1)[0] for key in MESSAGES)


def body(case: Case, unit: str) -> bytes:
    """The bytes a local system sends for `case`; E130's unit is the channel's own."""
    changes = dict(case.changes)
    if case.code == "E130":
        changes["unit"] = unit
    raw = json.dumps(document(**changes)).encode()
    return raw + b" " * LIMIT if case.code == "E150" else raw


def stale_setup(unit: str) -> bytes:
    """Revision 2 of `unit`, accepted first, so that revision 1 after it is stale."""
    return json.dumps(document(unit=unit, revision=2)).encode()


def assert_only_issue(case: Case, issues: Sequence[Issue], field: str | None) -> None:
    assert [(i.code, i.field) for i in issues] == [(case.code, field)], (case, issues)
    for found in issues:
        assert found.message_vi.strip()
        assert found.message_en.strip()


def assert_refused_for(case: Case, outcome: Outcome) -> None:
    assert outcome.status is Status.REJECTED, (case, outcome)
    assert_only_issue(case, outcome.issues, case.field)


def answered_issues(answer: httpx.Response) -> list[Issue]:
    """The issues of an HTTP answer refusing a report."""
    return [Issue.model_validate(found) for found in answer.json()["issues"]]


async def verdicts_on(bootstrap: str, topic: str, ids: Collection[str]) -> dict[str, Outcome]:
    """The verdicts on the reports `ids` read from `topic`, once each has one."""
    async with TopicReader(bootstrap, topic) as outcomes:

        async def all_answered() -> dict[str, Outcome] | None:
            seen = [codec.decode(Outcome, r.value) for r in await outcomes.poll()]
            found = {o.report_id: o for o in seen if o.report_id in ids}
            return found if len(found) == len(ids) else None

        return await eventually(all_answered, timeout=90)


def test_the_cases_sent_on_both_channels_cover_every_code() -> None:
    # Each channel's tests send both tables whole: a code of the message table without a
    # case here would be one nobody showed a real report can get.
    assert {c.code for c in CASES} | {c.code for c in SENDER_CASES} == CODES


async def test_every_code_comes_back_for_a_report_sent_on_kafka(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    async with front(
        namespace, kafka_bootstrap, postgres_dsn, submission={"max_report_bytes": LIMIT}
    ) as sender:
        sent = [(case, body(case, "TB.QP.N01")) for case in CASES]
        # One key: one inbound partition, so revision 2 is stored (and judged) before 1.
        await produce(
            kafka_bootstrap,
            sender.topic(INBOUND),
            [(b"sender", stale_setup("TB.QP.N01"))] + [(b"sender", raw) for _, raw in sent],
        )
        ids = {json.loads(raw)["report_id"]: case for case, raw in sent}
        answered = await verdicts_on(kafka_bootstrap, sender.topic(OUTCOMES), ids)
        for report_id, case in ids.items():
            assert_refused_for(case, answered[report_id])
            assert await sender.verdict(report_id) == answered[report_id]


async def test_every_code_comes_back_for_a_report_sent_over_http(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    async with front(
        namespace, kafka_bootstrap, postgres_dsn, submission={"max_report_bytes": LIMIT}
    ) as sender:
        setup = await sender.http.post("/v1/reports", content=stale_setup("TB.QP.N02"))
        assert setup.status_code == 202
        first = await sender.verdict(setup.json()["report_id"])
        assert first.status is Status.ACCEPTED
        for case in CASES:
            raw = body(case, "TB.QP.N02")
            answer = await sender.http.post("/v1/reports", content=raw)
            if case.code in ANSWERED_AT_ONCE:
                assert answer.status_code == ANSWERED_AT_ONCE[case.code], (case, answer.text)
                assert_only_issue(case, answered_issues(answer), case.field)
                continue
            assert answer.status_code == 202, (case, answer.text)
            assert_refused_for(case, await sender.verdict(json.loads(raw)["report_id"]))


def sent_by(case: Case) -> str:
    return str(case.changes.get("source", SOURCE))


def sender_body(case: Case) -> bytes:
    return json.dumps(document(**{"source": SOURCE, **case.changes})).encode()


async def registered(
    namespace: str, bootstrap: str, dsn: str
) -> tuple[SubmissionSettings, dict[str, str]]:
    """Submission's settings with sender authentication on, and the credential of each
    source (Z's revoked)."""
    config = secured(namespace, bootstrap, dsn)
    credentials = {
        name: await cli(config, "sources", "create", name, "--unit", "TB.DH.N01")
        for name in (SOURCE, REVOKED)
    }
    await cli(config, "sources", "revoke", REVOKED)
    return config, credentials


async def test_every_sender_code_comes_back_for_a_report_sent_on_a_sources_topic(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config, _ = await registered(namespace, kafka_bootstrap, postgres_dsn)
    kafka = config.kafka
    senders = {sent_by(case) for case in SENDER_CASES}
    # Submission finds the sources' topics by pattern when it starts: they exist before,
    # as a registered source's do.
    await SourceTopics(kafka, config.submission.source_partitions, config.topics).ensure(senders)
    sent = [(case, sender_body(case)) for case in SENDER_CASES]
    ids = {json.loads(raw)["report_id"]: case for case, raw in sent}
    async with front(namespace, kafka_bootstrap, postgres_dsn, submission=config.submission):
        for case, raw in sent:
            await produce(kafka_bootstrap, inbound_topic(kafka, sent_by(case)), [(None, raw)])
        answered: dict[str, Outcome] = {}
        for source in sorted(senders):
            theirs = {i for i, case in ids.items() if sent_by(case) == source}
            answered |= await verdicts_on(kafka_bootstrap, outcomes_topic(kafka, source), theirs)
    for report_id, case in ids.items():
        assert_refused_for(case, answered[report_id])


async def test_every_sender_code_comes_back_for_a_report_sent_over_http(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    config, credentials = await registered(namespace, kafka_bootstrap, postgres_dsn)
    async with front(
        namespace, kafka_bootstrap, postgres_dsn, submission=config.submission
    ) as sender:
        for case in SENDER_CASES:
            credential = {"Authorization": f"Bearer {credentials[sent_by(case)]}"}
            answer = await sender.http.post(
                "/v1/reports", content=sender_body(case), headers=credential
            )
            status, field = HTTP_ANSWERS[case.code]
            assert answer.status_code == status, (case, answer.text)
            assert_only_issue(case, answered_issues(answer), field or case.field)


async def test_a_report_sent_again_gets_its_original_verdict_as_a_duplicate(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    async with front(namespace, kafka_bootstrap, postgres_dsn) as sender:
        good = factories.report_json(unit="TB.KX.N01")
        bad = factories.report_json(
            unit="TB.KX.N02", values=dict(factories.KSTT_VALUES, CARRIED_OVER=Decimal(6))
        )
        # Over Kafka twice at once (the copy arrives before the verdict exists), then HTTP.
        await produce(
            kafka_bootstrap, sender.topic(INBOUND), [(None, good), (None, good), (None, bad)]
        )
        good_id, bad_id = json.loads(good)["report_id"], json.loads(bad)["report_id"]
        original_good = await sender.verdict(good_id)
        original_bad = await sender.verdict(bad_id)
        again_good = await sender.http.post("/v1/reports", content=good)
        again_bad = await sender.http.post("/v1/reports", content=bad)
        async with TopicReader(kafka_bootstrap, sender.topic(OUTCOMES)) as outcomes:

            async def answered() -> list[Outcome] | None:
                seen = [codec.decode(Outcome, r.value) for r in await outcomes.poll()]
                ours = [o for o in seen if o.report_id in (good_id, bad_id)]
                return ours if len(ours) >= 5 else None

            verdicts = await eventually(answered, timeout=60)
            await outcomes.poll()
        # The stored verdict stays the original's.
        assert await sender.verdict(good_id) == original_good
    assert original_good.status is Status.ACCEPTED
    assert original_bad.status is Status.REJECTED
    assert again_good.status_code == 200
    assert again_good.json()["status"] == "duplicate"
    assert again_good.json()["verdict"]["status"] == "accepted"
    assert again_bad.json()["verdict"]["issues"][0]["rule"] == "R01"
    by_id: dict[str, list[Outcome]] = {good_id: [], bad_id: []}
    for verdict in verdicts:
        by_id[verdict.report_id].append(verdict)
    assert [v.status for v in by_id[good_id]] == [
        Status.ACCEPTED,
        Status.DUPLICATE,
        Status.DUPLICATE,
    ]
    assert [v.status for v in by_id[bad_id]] == [Status.REJECTED, Status.DUPLICATE]
    for original, repeats in (
        (original_good, by_id[good_id][1:]),
        (original_bad, by_id[bad_id][1:]),
    ):
        for repeat in repeats:
            assert repeat.model_copy(update={"status": original.status}) == original


class ServiceClock:
    """Submission's clock as seen from the test: the receipt time of a report it answered,
    advanced by the real time elapsed since (a little behind the service, never ahead)."""

    def __init__(self, received_at: str) -> None:
        self._at = datetime.fromisoformat(received_at)
        self._read = time.monotonic()

    def now(self) -> datetime:
        return self._at + timedelta(seconds=time.monotonic() - self._read)


async def test_a_lock_exception_lets_one_unit_into_a_locked_period_until_it_expires(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    # 2025-Q4: deadline 2025-12-18, locked after 2026-01-17; the clock is at 2026-03-16.
    locked = {"period": "2025-Q4", "unit": "TB.DH.N01"}
    async with front(namespace, kafka_bootstrap, postgres_dsn) as sender:
        first = await sender.http.post("/v1/reports", content=factories.report_json(**locked))
        clock = ServiceClock(first.json()["received_at"])
        refused = await sender.verdict(first.json()["report_id"])
        assert [i.code for i in refused.issues] == ["E106"]

        request = {
            "regime": "KSTT-TTHC",
            **locked,
            "expires_at": (clock.now() + timedelta(seconds=8)).isoformat(),
            "reason": "Đơn vị bị mất điện kéo dài, gửi bù số liệu quý IV",
            "opened_by": "operator-1",
        }
        opened = await sender.http.post("/v1/admin/lock-exceptions", json=request)
        assert opened.status_code == 201, opened.text
        expires_at = datetime.fromisoformat(opened.json()["expires_at"])
        inside = await sender.http.post(
            "/v1/reports", content=factories.report_json(**locked, revision=2)
        )
        other_unit = await sender.http.post(
            "/v1/reports", content=factories.report_json(period="2025-Q4", unit="TB.DH.N02")
        )
        accepted = await sender.verdict(inside.json()["report_id"])
        still_locked = await sender.verdict(other_unit.json()["report_id"])

        async def expired() -> bool:
            return clock.now() > expires_at + timedelta(seconds=1)

        await eventually(expired, timeout=30)
        after = factories.report_json(**locked, revision=3)
        await produce(kafka_bootstrap, sender.topic(INBOUND), [(None, after)])
        late = await sender.verdict(json.loads(after)["report_id"])

        listed = await sender.http.get("/v1/admin/lock-exceptions", params={"unit": "TB.DH.N01"})
        refusal = await sender.http.post(
            "/v1/admin/lock-exceptions",
            json={**request, "unit": "TB.NOWHERE", "expires_at": "2099-01-01T00:00:00+07:00"},
        )
        async with TopicReader(kafka_bootstrap, sender.topic(RECEIVED)) as received:

            async def forwarded() -> list[Any] | None:
                records = await received.poll()
                found = [r for r in records if b"lock_exception" in r.value]
                return found or None

            (record,) = await eventually(forwarded, timeout=30)
    assert accepted.status is Status.ACCEPTED, accepted.issues
    assert accepted.timeliness is Timeliness.LATE
    assert accepted.received_at is not None
    assert accepted.received_at < expires_at
    assert [i.code for i in still_locked.issues] == ["E106"]
    assert late.received_at is not None
    assert late.received_at > expires_at
    assert [i.code for i in late.issues] == ["E106"]
    assert [(e["id"], e["opened_by"], e["reason"]) for e in listed.json()] == [
        (opened.json()["id"], "operator-1", request["reason"])
    ]
    assert refusal.status_code == 422
    assert [(i["code"], i["field"]) for i in refusal.json()["issues"]] == [("E102", "unit")]
    assert record.key == b"KSTT-TTHC|2025-Q4"
    exception = codec.decode(LockException, record.value)
    assert (exception.unit, exception.opened_by, exception.expires_at) == (
        "TB.DH.N01",
        "operator-1",
        expires_at,
    )
