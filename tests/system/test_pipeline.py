"""The whole pipeline as processes: reports sent over Kafka and HTTP, with a duplicate, a
correction and some refusals, reach the hub as province snapshots whose values equal the
fold of the latest accepted revision of each unit."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import httpx

from services.aggregation.folds import fold, frame_for, snapshot
from shared import codec
from shared.catalog import load_catalog
from shared.contracts import INBOUND, OUTCOMES, AcceptedReport, Outcome, Report, Status
from shared.settings import REPO_ROOT
from tests import factories
from tests.harness import TopicReader, eventually, produce
from tests.system.stack import HubReader, Stack


def kstt(unit: str, online: int, revision: int = 1) -> Report:
    return factories.report(unit=unit, revision=revision, values=factories.kstt_values(online))


def ktxh(unit: str, revenue: str) -> Report:
    values = dict(factories.KTXH_VALUES, BUDGET_REVENUE=Decimal(revenue))
    return factories.report(regime="KTXH-M", period="2026-M03", unit=unit, values=values)


def nvcp(unit: str, assigned: int) -> Report:
    values = dict(
        factories.NVCP_VALUES,
        TASKS_ASSIGNED=Decimal(assigned),
        TASKS_IN_PROGRESS=Decimal(assigned - 15),
    )
    return factories.report(regime="NVCP-S", period="2026-S1", unit=unit, values=values)


def as_accepted(report: Report) -> AcceptedReport:
    return factories.accepted_from(report, regime_version=2 if report.regime == "KTXH-M" else 1)


async def test_reports_reach_the_hub_as_exact_province_totals(stack: Stack) -> None:
    catalog = load_catalog(REPO_ROOT / "catalog")
    over_kafka = [
        kstt("TB.DH.N01", 120),
        kstt("TB.HH.N01", 200),
        kstt("TB.TTPVHCC", 300),
        ktxh("TB.DH.N01", "152.35"),
        ktxh("TB.VT.N02", "1234567890.123456789"),
        nvcp("TB.STC", 20),
        nvcp("TB.SNV", 31),
    ]
    correction = kstt("TB.HH.N01", 250, revision=2)
    over_http = [kstt("TB.QP.N02", 90), ktxh("TB.TT.N01", "0.001"), nvcp("TB.SKHDT", 16)]
    duplicate = over_kafka[0]
    stale = kstt("TB.HH.N01", 999, revision=1)
    locked = factories.report(
        regime="KTXH-M", period="2026-M02", unit="TB.KX.N01", values=factories.KTXH_VALUES
    )
    not_a_reporter = kstt("TB.SCT", 100)  # a department does not report KSTT-TTHC
    topic = f"{stack.namespace}{INBOUND.name}"
    await produce(stack.bootstrap, topic, [(None, codec.dumps(r)) for r in over_kafka])
    async with httpx.AsyncClient(base_url=stack.url("submission")) as http:
        answers = [await http.post("/v1/reports", content=codec.dumps(r)) for r in over_http]
        assert [a.status_code for a in answers] == [202, 202, 202]
        await produce(stack.bootstrap, topic, [(None, codec.dumps(duplicate))])
        await produce(
            stack.bootstrap,
            topic,
            [(None, codec.dumps(r)) for r in (correction, locked, not_a_reporter)],
        )

        # The stale revision is sent after the correction was judged.
        async def judged() -> bool:
            answer = await http.get(f"/v1/reports/{correction.report_id}")
            return answer.status_code == 200

        await eventually(judged)
        await produce(stack.bootstrap, topic, [(None, codec.dumps(stale))])

    counted = [*over_kafka, correction, *over_http]
    expected = {}
    for regime, period in {(r.regime, r.period) for r in counted}:
        frame = frame_for(catalog, regime, period)
        assert frame is not None
        state = fold(as_accepted(r) for r in counted if (r.regime, r.period) == (regime, period))
        expected[(regime, period)] = snapshot(state, frame, "TB")

    hub = HubReader(stack.url("hub_simulator"))
    try:
        for (regime, period), figures in expected.items():

            async def arrived(
                regime: str = regime,
                period: str = period,
                reported: int = figures.completeness.reported,
                values: Mapping[str, Any] = figures.values,
            ) -> dict[str, Any] | None:
                answer = await asyncio.to_thread(hub.aggregate, regime, period, "TB")
                if answer.status_code != 200:
                    return None
                held: dict[str, Any] = codec.loads(answer.content)
                # A correction leaves the reported count as it was: wait for its values too.
                counted = held["completeness"]["reported"] == reported
                done = counted and held["values"] == dict(values)
                return held if done else None

            held = await eventually(arrived, timeout=60)
            assert held["values"] == dict(figures.values), (regime, period)
            assert held["completeness"]["missing"] == list(figures.completeness.missing)
            assert held["completeness"]["expected"] == figures.completeness.expected
        log = await asyncio.to_thread(hub.received)
    finally:
        hub.close()
    for scope in {(e["regime"], e["period"], e["unit"]) for e in log}:
        versions = [e["version"] for e in log if (e["regime"], e["period"], e["unit"]) == scope]
        assert versions == sorted(versions), scope  # never an older version after a newer one

    kstt_total = expected[("KSTT-TTHC", "2026-Q1")].values["RECEIVED_ONLINE"]
    assert kstt_total == Decimal(120 + 250 + 300 + 90)  # the correction replaced 200
    async with TopicReader(stack.bootstrap, f"{stack.namespace}{OUTCOMES.name}") as outcomes:

        async def all_answered() -> list[Outcome] | None:
            seen = [codec.decode(Outcome, r.value) for r in await outcomes.poll()]
            return seen if len(seen) >= 15 else None

        verdicts = await eventually(all_answered, timeout=30)
    by_id: dict[str, list[Outcome]] = {}
    for verdict in verdicts:
        by_id.setdefault(verdict.report_id, []).append(verdict)
    assert [v.status for v in by_id[duplicate.report_id]] == [Status.ACCEPTED, Status.DUPLICATE]
    assert [i.code for i in by_id[stale.report_id][0].issues] == ["E130"]
    assert [i.code for i in by_id[locked.report_id][0].issues] == ["E106"]
    assert [i.code for i in by_id[not_a_reporter.report_id][0].issues] == ["E103"]
