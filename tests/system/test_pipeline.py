"""The whole pipeline as processes: reports sent over Kafka and HTTP, with a duplicate, a
correction and some refusals, reach the hub as province snapshots whose values equal the
fold of the latest accepted revision of each unit, and the figures worked out by hand from
the reports sent (sums, a maximum, derived rates rounded to their decimals, completeness),
so that a fault of the fold itself cannot hide."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, NamedTuple

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


class Hand(NamedTuple):
    """A province snapshot's figures worked out by hand from the reports the test sends."""

    values: Mapping[str, str | None]  # rolled-up indicators, compared by value
    derived: Mapping[str, str]  # derived ones, compared as written: rounded to `decimals`
    expected: int
    reported: int
    rate: str


# KSTT-TTHC: online 120 + 250 (TB.HH.N01's correction, not 200) + 300 + 90 = 760; each of
# the 4 units sends 30 direct, 5 carried over, 50 early, 60 on time, 10 late (120
# resolved), 480.5 days and a longest overdue of 4; pending = received - 120. KTXH-M: the
# revenues sent, and 3 times the factory's other figures. NVCP-S: 20 + 31 + 16 assigned, in
# progress = assigned - 15. Expected: the communes and the service centre (17), the
# communes (16) and the departments (6) in force on the windows' last days. Every report
# is on time (the clock is at 2026-03-16).
BY_HAND: dict[tuple[str, str], Hand] = {
    ("KSTT-TTHC", "2026-Q1"): Hand(
        values={
            "RECEIVED_ONLINE": "760",
            "RECEIVED_DIRECT": "120",
            "RECEIVED_TOTAL": "900",  # 760 + 120 + 20
            "RESOLVED_TOTAL": "480",
            "PENDING_TOTAL": "420",  # 900 - 480
            "PROCESSING_DAYS_TOTAL": "1922",
            "MAX_OVERDUE_DAYS": "4",  # max, not sum
        },
        derived={
            "ON_TIME_RATE": "91.67",  # (200 + 240) / 480 = 91.666…
            "ONLINE_RATE": "86.36",  # 760 / (760 + 120) = 86.3636…
            "AVG_PROCESSING_DAYS": "4.0",  # 1922 / 480 = 4.0041…
        },
        expected=17,
        reported=4,
        rate="23.53",  # 4 / 17
    ),
    ("KTXH-M", "2026-M03"): Hand(
        values={
            "BUDGET_REVENUE": "1234568042.474456789",  # 152.35 + 1234567890.123456789 + 0.001
            "BUDGET_EXPENDITURE": "294.3",
            "PUBLIC_INVEST_PLAN": "1200",
            "PUBLIC_INVEST_DISBURSED": "370.368",
            "NEW_ENTERPRISES": "36",
        },
        derived={"DISBURSEMENT_RATE": "30.86"},  # 370.368 / 1200 = 30.864 %
        expected=16,
        reported=3,
        rate="18.75",
    ),
    ("NVCP-S", "2026-S1"): Hand(
        values={
            "TASKS_ASSIGNED": "67",
            "TASKS_DONE_ON_TIME": "36",
            "TASKS_DONE_LATE": "6",
            "TASKS_IN_PROGRESS": "22",  # 5 + 16 + 1
            "ASSESSMENT": None,  # not rolled up, and the province does not report itself
        },
        derived={"COMPLETION_RATE": "62.69"},  # (36 + 6) / 67 = 62.686…
        expected=6,
        reported=3,
        rate="50.00",
    ),
}


def agrees_with_hand(
    values: Mapping[str, Any], completeness: Mapping[str, Any], hand: Hand
) -> None:
    """A province snapshot (the hub's, or the fold's) has the figures worked out by hand."""
    for code, figure in hand.values.items():
        assert values[code] == (None if figure is None else Decimal(figure)), code
    for code, shown in hand.derived.items():
        assert str(values[code]) == shown, code
    assert completeness["expected"] == hand.expected
    assert completeness["reported"] == completeness["on_time"] == hand.reported
    assert len(completeness["missing"]) == hand.expected - hand.reported
    assert str(completeness["rate"]) == hand.rate


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
    assert sorted(expected) == sorted(BY_HAND)
    for regime_period, figures in expected.items():
        agrees_with_hand(figures.values, figures.completeness.model_dump(), BY_HAND[regime_period])

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
            agrees_with_hand(held["values"], held["completeness"], BY_HAND[(regime, period)])
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
