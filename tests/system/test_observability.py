"""The operators' view, proven against a real Prometheus scraping the running system.

Known traffic goes in over Kafka and HTTP on 19 March 2026 (KSTT-TTHC 2026-Q1 is past its
deadline, so its reports are late; KTXH-M 2026-M04 and NVCP-S 2026-S1 are open), with
rejections, a warning, a duplicate, an unknown regime and an unreadable input. Prometheus
must then show, per regime, exactly the received, accepted, rejected and late counts that
were sent, end-to-end latency observations, the completeness of the open periods, and
data for every query of every dashboard panel, recording rule and alert.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import codec
from shared.catalog import load_catalog
from shared.contracts import INBOUND, OUTCOMES, Outcome, Report, Status
from shared.periods import cutoff_window, parse_period, regime_for_period
from shared.settings import REPO_ROOT
from tests import factories
from tests.deploy_queries import RULE_FILES, dashboard_queries, rules, signals
from tests.harness import TopicReader, eventually, produce
from tests.system.prometheus import PrometheusServer
from tests.system.stack import SERVICES, Stack

NOW = "2026-03-19T10:00:00+07:00"
KSTT, KTXH, NVCP = "KSTT-TTHC", "KTXH-M", "NVCP-S"


@pytest.fixture
def observed(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str, tmp_path: Path
) -> Iterator[tuple[Stack, PrometheusServer]]:
    """Every service as a process, sampling its gauges every second, and a Prometheus
    scraping them every second with the rules of deploy/."""
    stack = Stack(
        namespace,
        kafka_bootstrap,
        postgres_dsn,
        tmp_path,
        now=NOW,
        extra_env={"BAOCAO_METRICS_INTERVAL_S": "1"},
    )
    targets = {service: f"127.0.0.1:{stack.ports[service]}" for service in SERVICES}
    prometheus = PrometheusServer(tmp_path, targets, RULE_FILES)
    try:
        stack.start_all()
        prometheus.start()
        yield stack, prometheus
    finally:
        prometheus.stop()
        stack.stop_all()


def kstt(unit: str, **changes: int) -> Report:
    values = dict(factories.KSTT_VALUES, **{k: Decimal(v) for k, v in changes.items()})
    return factories.report(unit=unit, values=values)


def ktxh(unit: str, period: str = "2026-M04") -> Report:
    return factories.report(regime=KTXH, period=period, unit=unit, values=factories.KTXH_VALUES)


def nvcp(unit: str) -> Report:
    return factories.report(regime=NVCP, period="2026-S1", unit=unit, values=factories.NVCP_VALUES)


# What is sent, and the verdict each report must get.
ACCEPTED_KAFKA = [
    kstt("TB.DH.N01"),
    kstt("TB.HH.N01"),
    kstt("TB.TTPVHCC"),
    # R04 (warning): received 155 but resolved + pending 156; accepted and flagged.
    kstt("TB.KX.N01", PENDING_WITHIN=31, PENDING_TOTAL=36),
    ktxh("TB.DH.N01"),
    ktxh("TB.VT.N02"),
    nvcp("TB.STC"),
    nvcp("TB.SNV"),
]
ACCEPTED_HTTP = [kstt("TB.QP.N02"), nvcp("TB.SKHDT")]
REJECTED = [
    kstt("TB.SCT"),  # E103: a department does not report KSTT-TTHC
    kstt("TB.TT.N01", RECEIVED_TOTAL=999),  # R01 (error): the total is not the sum
    ktxh("TB.KX.N01", period="2026-M02"),  # E106: locked since 11 March
    factories.report(regime="XYZ", unit="TB.DH.N01"),  # E101: unknown regime
]
UNREADABLE = b"this is not a report"

RECEIVED: dict[str, float] = {KSTT: 7, KTXH: 3, NVCP: 3, "unknown": 1}
VERDICTS: dict[tuple[str, str], float] = {
    (KSTT, "accepted"): 5,
    (KSTT, "rejected"): 2,
    (KTXH, "accepted"): 2,
    (KTXH, "rejected"): 1,
    (NVCP, "accepted"): 3,
    (NVCP, "rejected"): 0,
    ("unknown", "accepted"): 0,
    ("unknown", "rejected"): 1,
}
LATE: dict[str, float] = {
    KSTT: 5,
    KTXH: 0,
    NVCP: 0,
    "unknown": 0,
}  # 2026-Q1's deadline was 18 March
REPORTED = {(KSTT, "2026-Q1"): 5, (KTXH, "2026-M04"): 2, (NVCP, "2026-S1"): 3}
ON_TIME = {(KSTT, "2026-Q1"): 0, (KTXH, "2026-M04"): 2, (NVCP, "2026-S1"): 3}


def expected_units(regime: str, period: str) -> int:
    catalog = load_catalog(REPO_ROOT / "catalog")
    version = regime_for_period(catalog, regime, parse_period(period))
    assert version is not None
    day = cutoff_window(parse_period(period), version.period_convention).end
    return len(catalog.reporters_under(version, day, catalog.province))


async def send_traffic(stack: Stack) -> None:
    topic = f"{stack.namespace}{INBOUND.name}"
    kafka = [*ACCEPTED_KAFKA, *REJECTED]
    await produce(stack.bootstrap, topic, [(None, codec.dumps(r)) for r in kafka])
    await produce(stack.bootstrap, topic, [(None, UNREADABLE)])
    async with httpx.AsyncClient(base_url=stack.url("submission")) as http:
        answers = [await http.post("/v1/reports", content=codec.dumps(r)) for r in ACCEPTED_HTTP]
        assert [a.status_code for a in answers] == [202, 202]

        async def judged() -> bool:
            answer = await http.get(f"/v1/reports/{ACCEPTED_KAFKA[0].report_id}")
            return answer.status_code == 200

        await eventually(judged, timeout=60)
    # The same report again, once its verdict is known: a duplicate, never counted. Its
    # answer is awaited, so that what is checked next includes what the duplicate did.
    await produce(stack.bootstrap, topic, [(None, codec.dumps(ACCEPTED_KAFKA[0]))])
    await answered_as_duplicate(stack, ACCEPTED_KAFKA[0].report_id)


async def answered_as_duplicate(stack: Stack, report_id: str) -> None:
    """Until the original verdict comes back on reports.outcomes.v1 as `duplicate`."""
    async with TopicReader(stack.bootstrap, f"{stack.namespace}{OUTCOMES.name}") as outcomes:

        async def seen() -> bool:
            answers = [codec.decode(Outcome, r.value) for r in await outcomes.poll()]
            return any(a.report_id == report_id and a.status is Status.DUPLICATE for a in answers)

        await eventually(seen, timeout=60)


async def until_equal(
    prometheus: PrometheusServer, expr: str, labels: tuple[str, ...], expected: Mapping[Any, float]
) -> None:
    async def matches() -> dict[Any, float] | None:
        found = await asyncio.to_thread(prometheus.values, expr, *labels)
        keyed = {k[0] if len(k) == 1 else k: v for k, v in found.items()}
        return keyed if keyed == dict(expected) else None

    try:
        await eventually(matches, timeout=90, interval=1.0)
    except AssertionError:
        found = await asyncio.to_thread(prometheus.values, expr, *labels)
        raise AssertionError(f"{expr}: expected {expected}, Prometheus has {found}") from None


async def has_data(prometheus: PrometheusServer, where: str, expr: str) -> None:
    async def answered() -> list[dict[str, Any]] | None:
        return await asyncio.to_thread(prometheus.query, expr) or None

    try:
        await eventually(answered, timeout=60, interval=1.0)
    except AssertionError:
        raise AssertionError(f"{where}: no data for {expr}") from None


async def test_prometheus_shows_what_was_sent_and_every_dashboard_and_alert_query_has_data(
    observed: tuple[Stack, PrometheusServer],
) -> None:
    stack, prometheus = observed
    # Counters start at zero on a first scrape before the traffic, as in production, so
    # that rates and alerts see every increment.
    await until_equal(prometheus, "count(up == 1)", (), {(): len(SERVICES)})
    await has_data(prometheus, "dlq", 'baocao_dlq_messages_total{topic="reports.inbound.v1"}')
    await send_traffic(stack)

    # The screenshot-free check: counts per regime exactly as sent. Received last: once
    # every verdict is in and a scrape shows the duplicate processed, a duplicate counted
    # as received would show.
    await until_equal(
        prometheus,
        "sum by (regime, status) (baocao_report_verdicts_total)",
        ("regime", "status"),
        VERDICTS,
    )
    await until_equal(prometheus, "sum by (regime) (baocao_reports_late_total)", ("regime",), LATE)
    await until_equal(
        prometheus,
        "sum by (channel) (baocao_reports_duplicate_total)",
        ("channel",),
        {"kafka": 1, "http": 0},
    )
    await until_equal(
        prometheus, "sum by (regime) (baocao_reports_received_total)", ("regime",), RECEIVED
    )
    await until_equal(
        prometheus, "sum by (code) (baocao_reports_malformed_total)", ("code",), {"E100": 1}
    )
    await until_equal(
        prometheus,
        'sum by (code, severity) (baocao_report_issues_total{regime="KSTT-TTHC"})',
        ("code", "severity"),
        # E120 is a regime rule: R01 (error) once; R04 (warning) in the flagged report
        # and again in the one R01 rejects (its total no longer adds up either).
        {("E103", "error"): 1, ("E120", "error"): 1, ("E120", "warning"): 2},
    )
    await until_equal(
        prometheus,
        'sum by (topic) (baocao_dlq_messages_total{topic="reports.inbound.v1"})',
        ("topic",),
        {"reports.inbound.v1": 1},
    )
    # Every accepted report is observed once from receipt to the snapshot counting it.
    await until_equal(prometheus, "sum(baocao_receipt_to_snapshot_seconds_count)", (), {(): 10})
    await has_data(prometheus, "hub", "sum(baocao_receipt_to_hub_ack_seconds_count) > 0")
    await has_data(prometheus, "hub", 'sum(baocao_hub_deliveries_total{outcome="stored"}) > 0')

    # Completeness and timeliness of the open periods, province scope.
    for (regime, period), reported in REPORTED.items():
        expected = expected_units(regime, period)
        selector = f'{{regime="{regime}", period="{period}"}}'
        await until_equal(
            prometheus,
            f"baocao:regime_missing_units:count{selector}",
            ("period",),
            {period: expected - reported},
        )
        ratios = prometheus.values(f"baocao:regime_completeness:ratio{selector}", "period")
        assert ratios == {(period,): pytest.approx(reported / expected)}
        on_time = prometheus.values(f"baocao:regime_on_time:ratio{selector}", "period")
        assert on_time == {(period,): pytest.approx(ON_TIME[(regime, period)] / expected)}
    deadlines = prometheus.values("baocao:regime_deadline:seconds", "regime", "period")
    assert deadlines[(KSTT, "2026-Q1")] < 0 < deadlines[(NVCP, "2026-S1")]  # late; open

    # Every query operators rely on has data: dashboards, recording rules, alert signals.
    queries = [(q.where, q.expr) for q in dashboard_queries()]
    queries += [(r.where, r.record) for r in rules() if r.record]
    queries += [(r.where, s) for r in rules() if r.alert for s in signals(r.expr)]
    for where, expr in queries:
        await has_data(prometheus, where, expr)
    loaded = {rule["name"] for rule in prometheus.rules()}
    assert loaded == {r.record or r.alert for r in rules()}
    # The dead letter's alert is evaluated against live data: pending, then firing.
    await has_data(prometheus, "alert", 'ALERTS{alertname="BaocaoDeadLettersGrowing"}')

    assert_report_lines_carry_their_report(stack)


def assert_report_lines_carry_their_report(stack: Stack) -> None:
    """Every JSON log line naming a report names its regime, period and unit too (an
    unreadable input's line names only what could be read of it)."""
    about_reports = []
    for service in SERVICES:
        for line in (stack.logs / f"{service}.log").read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if "report_id" in entry and entry["event"] != "report_unreadable":
                about_reports.append(entry)
    events = {entry["event"] for entry in about_reports}
    assert {"duplicate_report", "report_rejected"} <= events
    for entry in about_reports:
        assert {"regime", "period", "unit"} <= entry.keys(), entry
