"""Verdicts end to end, every service a process: a sample of the codes, duplicates, a
lock exception opened with the operators' command line, and validation killed mid-stream.

Proves, with the clock at 2026-03-16: reports sent on the inbound topic and over HTTP get
their verdict (the code on the field at fault, both languages) on reports.outcomes.v1 and
at `GET /v1/reports/{report_id}`; a warning accepts the report and is listed; a report
sent again is answered with its original verdict as a duplicate; `python -m
services.submission lock-exception open` lets one unit report into a locked period (its
report is accepted, late, and reaches the national hub in the province's snapshot) while
another unit is still refused, and `lock-exception list` shows who opened it and why.
And, with validation killed (SIGKILL) while corrections stream in and restarted: every
report gets a verdict, the same one however often it is published, and the province's
figures at the hub equal the fold of each unit's latest revision, exactly.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

import httpx

from services.aggregation.folds import fold, frame_for, snapshot
from shared import codec
from shared.catalog import load_catalog
from shared.contracts import (
    INBOUND,
    OUTCOMES,
    Outcome,
    Report,
    Severity,
    Status,
    Timeliness,
)
from shared.settings import REPO_ROOT
from tests import factories
from tests.harness import TopicReader, eventually, produce
from tests.system.stack import HubReader, Stack


def operator(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "services.submission", "lock-exception", *args]
    return subprocess.run(
        [*command, f"--url={stack.url('submission')}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def verdict(http: httpx.AsyncClient, report_id: str) -> Outcome:
    async def known() -> Outcome | None:
        answer = await http.get(f"/v1/reports/{report_id}")
        return codec.decode(Outcome, answer.content) if answer.status_code == 200 else None

    return await eventually(known, timeout=60, interval=0.3)


def codes(outcome: Outcome) -> list[tuple[str, str | None]]:
    return [(i.code, i.field) for i in outcome.issues]


async def test_a_sample_of_verdicts_reaches_senders_and_an_exception_reaches_the_hub(
    stack: Stack,
) -> None:
    missing_unit: dict[str, Any] = json.loads(factories.report_json(unit="TB.DH.N01"))
    del missing_unit["unit"]
    warned = dict(factories.KSTT_VALUES, CARRIED_OVER=Decimal(6), RECEIVED_TOTAL=Decimal(156))
    on_kafka = {
        "E100": json.dumps(missing_unit).encode(),
        "E105": factories.report_json(period="2026-Q3", unit="TB.DH.N02"),
        "E111": factories.report_json(
            unit="TB.HH.N01",
            values={k: v for k, v in factories.KSTT_VALUES.items() if k != "RECEIVED_ONLINE"},
        ),
        "E120": factories.report_json(unit="TB.HH.N02", values=warned),
    }
    over_http = {
        "E102": factories.report_json(unit="TB.NOWHERE"),
        "E112": factories.report_json(
            unit="TB.KX.N01", values=dict(factories.KSTT_VALUES, RECEIVED_DIRECT="ba mươi")
        ),
    }
    topic = f"{stack.namespace}{INBOUND.name}"
    await produce(stack.bootstrap, topic, [(None, raw) for raw in on_kafka.values()])
    async with httpx.AsyncClient(base_url=stack.url("submission"), timeout=30) as http:
        answers = {c: await http.post("/v1/reports", content=raw) for c, raw in over_http.items()}
        too_large = await http.post("/v1/reports", content=b" " * (600 * 1024))
        ids = {c: json.loads(raw)["report_id"] for c, raw in {**on_kafka, **over_http}.items()}
        judged = {code: await verdict(http, report_id) for code, report_id in ids.items()}
        again = await http.post("/v1/reports", content=on_kafka["E120"])

        # A locked period: 2025-Q4 (deadline 2025-12-18, locked after 2026-01-17).
        locked = {"period": "2025-Q4"}
        before = factories.report_json(**locked, unit="TB.DH.N01")
        refused = await verdict(
            http, (await http.post("/v1/reports", content=before)).json()["report_id"]
        )
        opened = await asyncio.to_thread(
            operator,
            stack,
            "open",
            "--regime=KSTT-TTHC",
            "--period=2025-Q4",
            "--unit=TB.DH.N01",
            "--expires-at=2026-03-17T10:00:00+07:00",
            "--reason=Đơn vị bị mất điện kéo dài, gửi bù số liệu",
            "--opened-by=operator-1",
        )
        assert opened.returncode == 0, opened.stderr
        inside = factories.report_json(**locked, unit="TB.DH.N01", revision=2)
        other = factories.report_json(**locked, unit="TB.DH.N02")
        await produce(stack.bootstrap, topic, [(None, inside), (None, other)])
        accepted = await verdict(http, json.loads(inside)["report_id"])
        still_locked = await verdict(http, json.loads(other)["report_id"])
    listed = await asyncio.to_thread(operator, stack, "list", "--period=2025-Q4")
    wrong = await asyncio.to_thread(
        operator,
        stack,
        "open",
        "--regime=KSTT-TTHC",
        "--period=2025-Q4",
        "--unit=TB.VP",
        "--expires-at=2026-03-17T10:00:00+07:00",
        "--reason=x",
    )
    async with TopicReader(stack.bootstrap, f"{stack.namespace}{OUTCOMES.name}") as outcomes:

        async def sent_back() -> dict[str, list[Outcome]] | None:
            seen: dict[str, list[Outcome]] = {}
            for record in await outcomes.poll():
                outcome = codec.decode(Outcome, record.value)
                seen.setdefault(outcome.report_id, []).append(outcome)
            return seen if all(i in seen for i in ids.values()) else None

        on_topic = await eventually(sent_back, timeout=60)

    assert codes(judged["E100"]) == [("E100", "unit")]
    assert codes(judged["E105"]) == [("E105", "period")]
    assert codes(judged["E111"]) == [("E111", "values.RECEIVED_ONLINE")]
    assert codes(judged["E102"]) == [("E102", "unit")]
    assert codes(judged["E112"]) == [("E112", "values.RECEIVED_DIRECT")]
    warning = judged["E120"]
    assert warning.status is Status.ACCEPTED
    assert [(i.code, i.rule, i.severity) for i in warning.issues] == [
        ("E120", "R04", Severity.WARNING)
    ]
    for code, outcome in judged.items():
        assert outcome.status is (Status.ACCEPTED if code == "E120" else Status.REJECTED)
        assert all(i.message_vi and i.message_en for i in outcome.issues)
        assert on_topic[outcome.report_id][0] == outcome
    assert {c: a.status_code for c, a in answers.items()} == {"E102": 202, "E112": 202}
    assert too_large.status_code == 413
    assert too_large.json()["issues"][0]["code"] == "E150"
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert again.json()["verdict"] == json.loads(codec.dumps(warning))

    assert codes(refused) == [("E106", "period")]
    assert accepted.status is Status.ACCEPTED, accepted.issues
    assert accepted.timeliness is Timeliness.LATE
    assert codes(still_locked) == [("E106", "period")]
    assert json.loads(opened.stdout)["opened_by"] == "operator-1"
    assert "operator-1" in listed.stdout
    assert "TB.DH.N01" in listed.stdout
    assert wrong.returncode == 1
    assert "E103 unit:" in wrong.stderr

    hub = HubReader(stack.url("hub_simulator"))
    try:

        async def counted() -> dict[str, Any] | None:
            answer = await asyncio.to_thread(hub.aggregate, "KSTT-TTHC", "2025-Q4", "TB")
            if answer.status_code != 200:
                return None
            held: dict[str, Any] = codec.loads(answer.content)
            return held if held["completeness"]["reported"] == 1 else None

        held = await eventually(counted, timeout=90)
    finally:
        hub.close()
    assert held["values"]["RECEIVED_ONLINE"] == factories.KSTT_VALUES["RECEIVED_ONLINE"]
    assert held["completeness"]["on_time"] == 0


def dossiers(unit: str, online: int, revision: int) -> bytes:
    """A KSTT-TTHC 2026-Q1 report whose rules hold, with `online` dossiers received online."""
    return factories.report_json(unit=unit, revision=revision, values=factories.kstt_values(online))


async def test_validation_killed_mid_stream_gives_every_report_one_verdict_and_exact_totals(
    stack: Stack,
) -> None:
    catalog = load_catalog(REPO_ROOT / "catalog")
    frame = frame_for(catalog, "KSTT-TTHC", "2026-Q1")
    assert frame is not None
    units = frame.reporters["TB"]
    # Six revisions per unit, each unit's on one inbound key (one partition: in order).
    chunks: list[list[tuple[bytes | None, bytes]]] = [[], [], []]
    sent: list[Report] = []
    for revision in range(1, 7):
        for n, unit in enumerate(units):
            raw = dossiers(unit, 100 + 7 * n + revision, revision)
            sent.append(codec.decode(Report, raw))
            chunks[(revision - 1) // 2].append((unit.encode(), raw))
    topic = f"{stack.namespace}{INBOUND.name}"
    async with TopicReader(stack.bootstrap, f"{stack.namespace}{OUTCOMES.name}") as outcomes:
        await produce(stack.bootstrap, topic, chunks[0])

        async def some_judged() -> bool:
            return len(await outcomes.poll()) >= 5

        await eventually(some_judged, timeout=60)
        stack.kill("validation")  # SIGKILL, wherever it was
        await produce(stack.bootstrap, topic, chunks[1])
        stack.start("validation")
        await asyncio.to_thread(stack.wait_ready, "validation")
        await produce(stack.bootstrap, topic, chunks[2])

        async def all_judged() -> dict[str, set[str]] | None:
            seen: dict[str, set[str]] = {}
            for record in await outcomes.poll():
                outcome = codec.decode(Outcome, record.value)
                seen.setdefault(outcome.report_id, set()).add(codes_and_status(outcome))
            return seen if len(seen) >= len(sent) else None

        verdicts = await eventually(all_judged, timeout=120)
    # A verdict relayed again after the crash is the same verdict, never a second opinion.
    assert verdicts == {r.report_id: {"accepted"} for r in sent}
    expected = snapshot(fold(factories.accepted_from(r) for r in sent), frame, "TB")
    hub = HubReader(stack.url("hub_simulator"))
    try:

        async def arrived() -> dict[str, Any] | None:
            answer = await asyncio.to_thread(hub.aggregate, "KSTT-TTHC", "2026-Q1", "TB")
            if answer.status_code != 200:
                return None
            held: dict[str, Any] = codec.loads(answer.content)
            return held if held["values"] == dict(expected.values) else None

        held = await eventually(arrived, timeout=120)
    finally:
        hub.close()
    assert held["completeness"]["reported"] == len(units)
    assert held["values"]["RECEIVED_ONLINE"] == sum(100 + 7 * n + 6 for n in range(len(units)))


def codes_and_status(outcome: Outcome) -> str:
    return " ".join([outcome.status.value, *(i.code for i in outcome.issues)])
