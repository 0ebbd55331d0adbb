"""The bench's own arithmetic: which snapshot counts a report, percentiles, rates.

Proves: every accepted report is counted from the first province snapshot whose figures
are the fold of the accepted sequence up to it, even when one aggregation batch ends in
the middle of a submission batch (equal `received_at`); a report reaches the hub with the
first acknowledgement of a version at least as new; a snapshot that no prefix explains (a
report counted twice) and a final snapshot that is not the fold of every accepted report
are both reported; send → snapshot counts the wait in the inbound topic that receipt →
snapshot cannot see; the hub-sync lag runs from the province snapshot to the hub's
acknowledgement, and the table prints it; percentiles are nearest-rank values that were
observed; settings to try reach the services without moving the run, and the table shows
them and the idle cost; the CPU budget a report sets the relay's cost a hop against what
the target leaves; the machine's CPU splits into busy, idle and stolen cores; a JVM's
share of compiling its own code is shown with its CPU; completions are counted by second.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench import figures
from bench.cli import parser, setting
from bench.processes import Deployment, MachineUsage, Usage, jit_cpu_s, machine_usage
from bench.reference import reference_work
from bench.run import NOW as BENCH_NOW
from bench.run import Phase, _by_second, _latencies
from bench.run import _usage as _phase_usage
from bench.timeline import ReportTimes, Timeline, build
from bench.workload import Payload, Workload
from services.aggregation.folds import Figures, Version, fold, frame_for, versions
from services.traffic.reports import Kind
from shared import codec
from shared.catalog import load_catalog
from shared.contracts import (
    NEWEST_RECEIPT_HEADER,
    AcceptedReport,
    DeliveryOutcome,
    HubSyncResult,
    Outcome,
    Status,
    scope_key,
)
from shared.settings import REPO_ROOT
from tests import factories

pytestmark = pytest.mark.unit

CATALOG = load_catalog(REPO_ROOT / "catalog")
T0 = factories.NOW
T1 = T0 + timedelta(seconds=1)


@dataclass(frozen=True)
class Published:
    """The fields of a consumer record the timeline reads."""

    value: bytes
    timestamp: int  # epoch milliseconds
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


def at(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def kstt(unit: str, revision: int, online: int, received: datetime) -> AcceptedReport:
    values = dict(factories.KSTT_VALUES, RECEIVED_ONLINE=online)
    return factories.accepted(
        report_id=f"{unit}-r{revision}",
        unit=unit,
        revision=revision,
        values=values,
        received_at=received,
    )


def province_versions(
    prefixes: list[list[AcceptedReport]], published: list[datetime]
) -> list[Published]:
    """The province snapshot of each prefix, numbered in turn, as aggregation publishes it."""
    frame = frame_for(CATALOG, "KSTT-TTHC", "2026-Q1")
    assert frame is not None
    records: list[Published] = []
    latest: dict[str, Version] = {}
    for prefix, moment in zip(prefixes, published, strict=True):
        (snapshot,) = versions(frame, "2026-Q1", fold(prefix), latest, moment, scopes=["TB"])
        latest["TB"] = Version(
            snapshot.version,
            Figures(snapshot.regime_version, snapshot.values, snapshot.completeness),
        )
        newest = max(r.received_at for r in prefix).isoformat().encode()
        records.append(
            Published(
                codec.dumps(snapshot),
                at(moment),
                scope_key("KSTT-TTHC", "2026-Q1", "TB"),
                ((NEWEST_RECEIPT_HEADER, newest),),
            )
        )
    return records


def verdicts(reports: list[AcceptedReport], moment: datetime) -> list[Published]:
    return [
        Published(
            codec.dumps(
                Outcome(
                    report_id=r.report_id,
                    regime=r.regime,
                    period=r.period,
                    unit=r.unit,
                    revision=r.revision,
                    status=Status.ACCEPTED,
                    received_at=r.received_at,
                )
            ),
            at(moment),
        )
        for r in reports
    ]


def acknowledged(version: int, moment: datetime) -> Published:
    result = HubSyncResult(
        regime="KSTT-TTHC",
        period="2026-Q1",
        unit="TB",
        version=version,
        outcome=DeliveryOutcome.STORED,
        attempt=1,
        attempted_at=moment,
    )
    return Published(codec.dumps(result), at(moment))


def timeline(
    accepted: list[AcceptedReport], snapshots: list[Published], acks: list[Published]
) -> Timeline:
    return build(
        CATALOG,
        lambda moment: moment.timestamp(),
        verdicts(accepted, T0),
        [Published(codec.dumps(r), at(T0)) for r in accepted],
        snapshots,
        acks,
    )


def test_each_report_counts_from_the_first_snapshot_that_folds_it() -> None:
    # One submission batch (received at T0) split over two aggregation batches, then a
    # correction received at T1.
    a = kstt("TB.DH.N01", 1, 120, T0)
    b = kstt("TB.HH.N01", 1, 80, T0)
    c = kstt("TB.DH.N01", 2, 90, T1)
    published = [T0 + timedelta(seconds=2), T0 + timedelta(seconds=3), T1 + timedelta(seconds=5)]
    snapshots = province_versions([[a], [a, b], [a, b, c]], published)
    acks = [acknowledged(3, T1 + timedelta(seconds=9)), acknowledged(1, T0 + timedelta(seconds=4))]

    found = timeline([a, b, c], snapshots, acks)

    assert found.unmatched_snapshots == []
    assert found.inexact == []
    assert found.never_counted == 0
    times = {i: (t.snapshot, t.counted_by, t.hub) for i, t in found.reports.items()}
    assert times == {
        a.report_id: (published[0].timestamp(), 1, (T0 + timedelta(seconds=4)).timestamp()),
        b.report_id: (published[1].timestamp(), 2, (T1 + timedelta(seconds=9)).timestamp()),
        c.report_id: (published[2].timestamp(), 3, (T1 + timedelta(seconds=9)).timestamp()),
    }
    assert found.done(c.report_id) == published[2].timestamp()


def test_a_report_counted_twice_and_a_final_snapshot_short_of_the_fold_are_reported() -> None:
    a = kstt("TB.DH.N01", 1, 120, T0)
    b = kstt("TB.HH.N01", 1, 80, T0)
    twice = a.model_copy(update={"report_id": "again", "unit": "TB.KX.N01"})
    snapshots = province_versions([[a, twice]], [T1])

    found = timeline([a, b], snapshots, [])

    assert found.unmatched_snapshots == ["KSTT-TTHC 2026-Q1 v1"]
    assert found.inexact == ["KSTT-TTHC 2026-Q1 v1"]
    assert found.never_counted == 2
    assert {t.snapshot for t in found.reports.values()} == {None}


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 99, None),
        ([5.0], 50, 5.0),
        ([3.0, 1.0, 2.0, 4.0], 50, 2.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 100, 100.0),
        ([float(i) for i in range(1, 1001)], 95, 950.0),
    ],
)
def test_percentiles_are_nearest_rank_values_that_were_observed(
    values: list[float], q: float, expected: float | None
) -> None:
    assert figures.percentile(values, q) == expected


def test_the_sustained_rate_leaves_out_the_start_and_the_tail() -> None:
    # 1000 completions one millisecond apart, then a straggler 10 s later.
    done = [i / 1000 for i in range(1000)] + [20.0]
    assert figures.rate(len(done), max(done) - min(done)) == pytest.approx(1001 / 20)
    assert figures.middle_rate(done) == pytest.approx(800 / 0.799, rel=0.01)


@pytest.mark.parametrize(
    ("rates", "chosen"),
    [([15_000.0], 15_000.0), ([19_290.0, 11_348.0, 13_804.0], 13_804.0), ([2.0, 1.0], 2.0)],
)
def test_the_relay_figure_is_its_median_pass(rates: list[float], chosen: float) -> None:
    passes = [{"throughput_per_s": r, "elapsed_s": 1.0} for r in rates]
    assert figures.median_pass(passes)["throughput_per_s"] == chosen


def test_completions_by_second_show_the_ramp_the_pace_and_the_tail() -> None:
    start = 100.0
    done = [100.5, 101.2, 101.3, 101.9, 103.0, 99.9]  # one done as the clock started
    assert figures.per_second(done, start) == [2, 3, 0, 1]
    assert figures.per_second([], start) == []


def test_the_share_of_a_jvm_compiling_its_own_code_is_shown_with_its_cpu() -> None:
    assert jit_cpu_s(os.getpid()) == 0.0  # Python has no JIT compiler threads
    usage = _phase_usage({"kafka (broker)": Usage(2.0, 4.0, 0, jit_s=0.5)}, 1000)
    assert usage["kafka (broker)"]["jit_share"] == 0.25
    assert "jit_share" not in _phase_usage({"submission": Usage(2.0, 4.0, 0)}, 1000)["submission"]
    text = figures.table(
        RUN
        | {
            "relay": {
                "hops": 3,
                "throughput_per_s": 10.0,
                "elapsed_s": 1.0,
                "services": usage,
            }
        }
    )
    assert "2000 us          -  25% of it the JVM compiling its own code (JIT)" in text


def _latency_run(offered: float, sent: float, p99: float) -> dict[str, object]:
    return {
        "latency_run": {
            "offered_per_s": offered,
            "sent_per_s": sent,
            "receipt_to_snapshot_s": {"p99": p99},
            "services": {},
        }
    }


@pytest.mark.parametrize(
    ("offered", "sent", "p99", "met"),
    [
        (1000.0, 990.0, 0.8, True),
        (1000.0, 990.0, 1.2, False),
        (1000.0, 302.0, 0.8, False),  # the generator fell behind: less load than claimed
        (600.0, 600.0, 0.8, False),  # the target is for 1,000/s
    ],
)
def test_the_latency_target_counts_only_at_the_rate_it_is_for(
    offered: float, sent: float, p99: float, met: bool
) -> None:
    found = figures.targets(_latency_run(offered, sent, p99))
    assert found["p99_receipt_to_snapshot_at_most_1_s"] is met


def test_a_setting_to_try_is_a_baocao_setting_with_a_value() -> None:
    assert setting("BAOCAO_KAFKA__FETCH_MAX_WAIT_MS=100") == (
        "BAOCAO_KAFKA__FETCH_MAX_WAIT_MS",
        "100",
    )
    assert setting("BAOCAO_LOG_LEVEL=") == ("BAOCAO_LOG_LEVEL", "")
    for wrong in ("KAFKA_FETCH=1", "BAOCAO_KAFKA__FETCH_MAX_WAIT_MS", "BAOCAO_=1"):
        with pytest.raises(argparse.ArgumentTypeError, match="BAOCAO_NAME=VALUE"):
            setting(wrong)
    args = parser().parse_args(["--set", "BAOCAO_A=1", "--set", "BAOCAO_B=2"])
    assert dict(args.set) == {"BAOCAO_A": "1", "BAOCAO_B": "2"}


def test_settings_to_try_reach_the_services_but_never_move_the_run(tmp_path: Path) -> None:
    deploy = Deployment(
        "benchx_",
        "127.0.0.1:9092",
        "postgresql://postgres@127.0.0.1:5432/baocao",
        tmp_path,
        T0,
        extra_env={"BAOCAO_KAFKA__FETCH_MAX_WAIT_MS": "100", "BAOCAO_KAFKA__NAMESPACE": "prod_"},
    )
    env = deploy.env("validation")
    assert env["BAOCAO_KAFKA__FETCH_MAX_WAIT_MS"] == "100"
    assert env["BAOCAO_KAFKA__NAMESPACE"] == "benchx_"


# What every table starts with, for tests of the sections that follow.
RUN = {
    "mode": "quick",
    "started_at": "2026-11-27T10:00:00+00:00",
    "host": {"cores": 2, "load_before": [0.1], "load_after": [0.2]},
    "workload": {"reports": 1, "slots": 1, "values_per_report": [3, 13], "kinds": {}},
}


def test_the_table_shows_the_settings_tried_and_the_idle_cost() -> None:
    result = RUN | {
        "settings": {"BAOCAO_KAFKA__FETCH_MAX_WAIT_MS": "100"},
        "idle": {
            "seconds": 5.0,
            "cores": {"submission": 0.031, "kafka (broker)": 0.05},
            "total_cores": 0.081,
        },
    }
    text = figures.table(result)
    assert "settings: BAOCAO_KAFKA__FETCH_MAX_WAIT_MS=100" in text
    assert (
        "idle, no reports, for 5 s: 0.08 cores in all (submission 0.03, kafka (broker) 0.05)"
        in text
    )


def test_the_table_shows_the_reference_work_before_and_after_the_run() -> None:
    text = figures.table(RUN | {"reference_work_us": {"before": 86.3, "after": 97.7}})
    assert (
        "reference work (parsing and judging a report in the bench's process, idle machine): "
        "86 us before the run, 98 us after" in text
    )


def test_the_table_names_the_relay_passes_its_figure_is_the_median_of() -> None:
    result = RUN | {
        "relay": {
            "hops": 3,
            "reports": 100,
            "elapsed_s": 0.01,
            "throughput_per_s": 13_804.0,
            "passes_per_s": [19_290.0, 11_348.0, 13_804.0],
            "services": {},
        }
    }
    assert (
        "raw aiokafka relay, 3 hops, same payloads: 13804 reports/s (0.0 s), the median of "
        "3 passes: 19290, 11348, 13804" in figures.table(result)
    )


def test_the_table_says_how_soon_after_the_flat_out_run_the_relay_started() -> None:
    relay = {"hops": 3, "reports": 100, "elapsed_s": 0.01, "throughput_per_s": 13_804.0}
    result = RUN | {"relay": relay | {"after_throughput_s": 2.4, "services": {}}}
    assert (
        "raw aiokafka relay, 3 hops, same payloads: 13804 reports/s (0.0 s); started 2 s "
        "after the flat-out run" in figures.table(result)
    )


def test_the_reference_work_judges_only_readable_reports() -> None:
    readable = Workload(CATALOG, BENCH_NOW, 7).take(20)
    unreadable = Payload(b"k", b'{"schema": "baocao.report.v1"}', Kind.BAD_TYPE, "x")
    assert reference_work(CATALOG, [unreadable, *readable], BENCH_NOW) > 0
    with pytest.raises(ValueError, match="no readable report"):
        reference_work(CATALOG, [unreadable], BENCH_NOW)


def test_the_flat_out_section_shows_the_servers_busiest_statements_when_counted() -> None:
    statement = {
        "statement": "INSERT INTO verdicts (report_id) SELECT * FROM unnest($1::text[])",
        "calls": 58,
        "rows": 58523,
        "total_ms": 1787,
        "us_per_row": 30.5,
        "share": 0.297,
    }
    flat_out: dict[str, Any] = {
        "reports": 1,
        "send_s": 1.0,
        "elapsed_s": 1.0,
        "throughput_per_s": 1.0,
        "sustained_per_s": 1.0,
        "receipt_to_snapshot_s": None,
        "services": {},
    }
    text = figures.table(RUN | {"throughput_run": flat_out | {"postgres_statements": [statement]}})
    assert "  postgres by statement (server wall time, share, calls, per row):" in text
    assert "    29.7%   1787 ms    58 calls   30.5 us/row  INSERT INTO verdicts (report_id)" in text
    text = figures.table(RUN | {"throughput_run": flat_out | {"postgres_statements": None}})
    assert "postgres by statement: pg_stat_statements is not loaded on the server" in text


def _usage(us: int) -> dict[str, float | int]:
    return {"cpu_s": 0.0, "cpu_share": 0.0, "cpu_us_per_report": us, "peak_rss_mb": 0.0}


def test_the_cpu_budget_sets_the_relay_cost_a_hop_against_what_the_target_leaves() -> None:
    result = RUN | {
        "throughput_run": {
            "services": {"submission": _usage(150), "kafka (broker)": _usage(250)},
            "bench_process": _usage(60),
        },
        "relay": {
            "hops": 3,
            "services": {"hop0": _usage(40), "hop1": _usage(50), "kafka (broker)": _usage(180)},
        },
    }
    found = figures.budget(result)
    assert found == {
        "allowed_us_per_report": 667,  # 2 cores at 3,000/s
        "relay_us_per_hop": 90,  # (40 + 50 + 180) / 3
        "pipeline_hops_per_report": 4,
        "hops_alone_us_per_report": 360,
        "pipeline_us_per_report": 400,
        "load_generator_us_per_report": 60,
    }
    text = figures.table(RUN | {"budget": found})
    assert "leaves 667 us in all; the relay took 90 us a hop" in text
    assert "alone take about 360 us; the pipeline took 400 us, the load generator 60 us" in text
    assert figures.budget(RUN) is None  # a run without its flat-out phase has no budget


def test_the_machine_splits_into_busy_idle_and_stolen_cores() -> None:
    # (all, idle, stolen) CPU seconds of both cores, 4 s apart: 8 s in all.
    found = machine_usage((100.0, 40.0, 5.0), (108.0, 42.0, 5.4), 4.0)
    assert (found.busy, found.idle, found.stolen) == pytest.approx((1.4, 0.5, 0.1))
    assert machine_usage((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 0.0) == MachineUsage(0.0, 0.0, 0.0)
    text = figures.table(
        RUN
        | {
            "throughput_run": {
                "reports": 10,
                "send_s": 0.1,
                "elapsed_s": 1.0,
                "throughput_per_s": 10.0,
                "sustained_per_s": 10.0,
                "receipt_to_snapshot_s": None,
                "services": {},
                "machine": {"busy_cores": 1.4, "idle_cores": 0.5, "stolen_cores": 0.1},
            }
        }
    )
    assert "machine: 1.40 cores busy, 0.50 idle, 0.10 stolen by the hypervisor" in text


def test_revisions_of_the_last_batch_that_change_no_figure_count_in_its_snapshot() -> None:
    # One submission batch with three revisions of a unit; the third gives the province
    # the figures of the first, so the shortest prefix that explains the snapshot is [a].
    a = kstt("TB.DH.N01", 1, 120, T0)
    b = kstt("TB.DH.N01", 2, 90, T0)
    c = kstt("TB.DH.N01", 3, 120, T0)
    snapshots = province_versions([[a, b, c]], [T1])

    found = timeline([a, b, c], snapshots, [])

    assert found.unmatched_snapshots == []
    assert found.inexact == []
    assert found.never_counted == 0
    assert {i: t.snapshot for i, t in found.reports.items()} == dict.fromkeys(
        (a.report_id, b.report_id, c.report_id), T1.timestamp()
    )


def test_send_to_snapshot_counts_the_wait_before_submission_reads_a_report() -> None:
    first = Payload(b"k", b"{}", Kind.FIRST, "r-1")
    again = Payload(b"k", b"{}", Kind.DUPLICATE, "r-1")
    late = Payload(b"k", b"{}", Kind.FIRST, "r-2")
    timeline = Timeline(
        reports={
            # Read by submission 0.5 s after it was sent, counted 1.5 s after that.
            "r-1": ReportTimes(received=10.5, status="accepted", verdict=11.0, snapshot=12.0),
            # Waited 3 s in the inbound topic: the receipt figure cannot see it.
            "r-2": ReportTimes(received=13.0, status="accepted", verdict=13.5, snapshot=13.5),
        }
    )
    phase = Phase([first, again, late], sent_at=(10.0, 10.0, 10.0))

    found = _latencies(timeline, phase)

    assert found["receipt_to_snapshot_s"]["max"] == pytest.approx(1.5)
    assert found["send_to_snapshot_s"]["max"] == pytest.approx(3.5)
    assert found["send_to_snapshot_s"]["count"] == 2  # the duplicate is not a report of its own


def test_the_hub_sync_lag_runs_from_the_province_snapshot_to_the_hub_acknowledgement() -> None:
    payloads = [Payload(b"k", b"{}", Kind.FIRST, f"r-{i}") for i in range(3)]
    timeline = Timeline(
        reports={
            # Counted 1 s after receipt, acknowledged by the hub 2.5 s after that.
            "r-0": ReportTimes(
                received=10.0, status="accepted", verdict=10.5, snapshot=11.0, hub=13.5
            ),
            "r-1": ReportTimes(
                received=10.2, status="accepted", verdict=10.6, snapshot=11.0, hub=11.25
            ),
            # Counted, not acknowledged yet: no lag to measure.
            "r-2": ReportTimes(received=10.4, status="accepted", verdict=10.7, snapshot=11.0),
        }
    )

    found = _latencies(timeline, Phase(payloads, sent_at=(10.0, 10.0, 10.0)))

    lag = found["snapshot_to_hub_s"]
    assert (lag["count"], lag["p50"], lag["max"]) == (2, pytest.approx(0.25), pytest.approx(2.5))
    assert found["receipt_to_hub_s"]["max"] == pytest.approx(3.5)  # the lag and what came before
    run = {"offered_per_s": 3.0, "sent_per_s": 3.0, "duration_s": 1.0, "reports": 3}
    text = figures.table(RUN | {"latency_run": run | found | {"services": {}}})
    assert (
        "  province snapshot -> hub ack p50   250 ms  p95  2500 ms  p99  2500 ms  max  2500 ms"
        "  (2 reports)" in text.splitlines()
    )


def test_latency_by_second_groups_reports_by_the_second_they_were_received_in() -> None:
    payloads = [Payload(b"k", b"{}", Kind.FIRST, f"r-{i}") for i in range(4)]
    payloads.append(Payload(b"k", b"{}", Kind.DUPLICATE, "r-0"))
    timeline = Timeline(
        reports={
            "r-0": ReportTimes(received=100.2, status="accepted", verdict=100.4, snapshot=100.7),
            "r-1": ReportTimes(received=100.9, status="accepted", verdict=101.0, snapshot=101.1),
            # Received 2.5 s after the first: a second with a stall in it.
            "r-2": ReportTimes(received=102.7, status="accepted", verdict=104.0, snapshot=104.7),
            "r-3": ReportTimes(received=102.8, status="rejected", verdict=103.0),
        }
    )

    found = _by_second(timeline, Phase(payloads))

    assert [s["second"] for s in found] == [0, 2]
    assert [s["count"] for s in found] == [2, 1]
    assert found[0]["max"] == pytest.approx(0.5)
    assert found[1]["max"] == pytest.approx(2.0)
    assert found[0]["receipt_to_verdict"]["max"] == pytest.approx(0.2)
    assert found[1]["receipt_to_verdict"]["max"] == pytest.approx(1.3)
