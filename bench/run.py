"""One benchmark run against the running Kafka and PostgreSQL: every phase, then the figures.

0. The throughput phase's payloads go once through the raw relay of step 4, untimed: a
   broker just started compiles its hot paths first, and would charge that to the pipeline.
1. The services start as processes on a fresh namespace; a warm-up of first reports goes
   through, so that every consumer group has formed before anything is timed. Then the
   system idles a few seconds: the CPU it spends with no reports at all (polling, timers)
   is a standing cost on a 2-core machine.
2. Latency: after SETTLE_S seconds of reports at the same rate, untimed, reports offered
   at a fixed rate (1,000/s by default); for each accepted one,
   receipt → province snapshot and receipt → hub acknowledgement; CPU and peak RSS of each
   service during the phase.
3. Throughput: reports sent as fast as the producer goes; reports per second until every
   one has its verdict and every accepted one is counted in a province snapshot.
4. The limit, right after step 3 with the services stopped: the throughput phase's
   payloads through a raw aiokafka relay of as many topic hops as the pipeline has up to
   the province snapshot, no work done.
5. Replay: the services restart under new consumer groups on the same topics and database
   and read everything again from the start; the snapshots (aggregation's and the hub's)
   and every topic must come out unchanged, and the rate is measured.

The topics and schemas of the run are dropped at the end (unless `keep`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench import figures, profiling, statements
from bench.figures import MB
from bench.probes import batches, first_progress, stage_counters, stored, wait_done
from bench.processes import Deployment, MachineUsage, Meter, Usage, listening
from bench.reference import reference_work
from bench.timeline import ReportTimes, Timeline, build
from bench.topics import read_all, send, total_end
from bench.workload import Payload, Workload, kinds, values_per_report
from services.traffic.reports import Kind
from shared.catalog import load_catalog
from shared.contracts import ACCEPTED, AGGREGATES, HUB_SYNC, INBOUND, OUTCOMES, TOPICS
from shared.settings import REPO_ROOT

# The day the catalog's periods are open for the plan (as in the system tests).
NOW = datetime.fromisoformat("2026-03-16T10:00:00+07:00")
WARM_UP = 300
# Seconds of reports at the offered rate before the latency run, untimed: on a broker just
# started, the JIT compiled the paths of a steady stream (small fetches, frequent commits)
# during the latency run itself, and its p99 came out at 0.9-1.2 s against 0.24-0.28 s.
SETTLE_S = 10.0
# Topic hops from reports.inbound.v1 to the province snapshot on aggregates.v1.
HOPS = 3
# The relay's rate moved from 11 000 to 19 000 reports/s between runs of the same code, a
# pass of 3-5 s against the pipeline's 17-20: its figure is the median of a few passes.
RELAY_PASSES = 3
REPLAY_GROUPS = "replay_"
# Idle phase, right after the warm-up is done (every delivery acknowledged).
IDLE_S = 5.0


@dataclass(frozen=True)
class Plan:
    mode: str
    rate: float
    seconds: float
    flat_out: int
    profile: bool = False
    keep: bool = False
    seed: int = 20260316
    # BAOCAO_ settings given to every service under test (`--set`), on top of the run's own.
    settings: Mapping[str, str] = field(default_factory=dict)
    bootstrap: str = "127.0.0.1:9092"
    dsn: str = "postgresql://postgres@127.0.0.1:5432/baocao"
    results: Path = REPO_ROOT / "bench" / "results"


QUICK = Plan("quick", rate=1000.0, seconds=10.0, flat_out=10_000)
# 300 + 40,000 + 59,700: the replay reads exactly 100,000 reports.
FULL = Plan("full", rate=1000.0, seconds=40.0, flat_out=59_700)


@dataclass
class Phase:
    payloads: list[Payload]
    first_send: float = 0.0
    last_send: float = 0.0
    sent_at: tuple[float, ...] = ()  # each payload's, in order
    usage: dict[str, Usage] = field(default_factory=dict)
    machine: MachineUsage | None = None
    batches: dict[str, Any] = field(default_factory=dict)
    bench_cpu_s: float = 0.0  # this process's: the load generator and the probes


def _usage(usage: dict[str, Usage], reports: int) -> dict[str, dict[str, float]]:
    return {
        name: {
            "cpu_s": round(u.cpu_s, 2),
            "cpu_share": round(u.cpu_share, 3),
            "cpu_us_per_report": round(u.cpu_s / reports * 1e6) if reports else 0,
            "peak_rss_mb": round(u.peak_rss_bytes / MB, 1),
            **({"jit_share": round(u.jit_s / u.cpu_s, 3)} if u.jit_s and u.cpu_s > 0 else {}),
        }
        for name, u in usage.items()
    }


def _bench_usage(phase: Phase) -> dict[str, float]:
    """This process's CPU in a phase (sending, then polling until done): it shares the
    cores under test, so it is shown, but not counted among the system's."""
    wall = next(iter(phase.usage.values())).wall_s if phase.usage else 0.0
    usage = Usage(phase.bench_cpu_s, wall, 0)
    return _usage({"bench": usage}, len(phase.payloads))["bench"]


def _machine(phase: Phase) -> dict[str, float] | None:
    found = phase.machine
    if found is None:
        return None
    return {
        "busy_cores": round(found.busy, 2),
        "idle_cores": round(found.idle, 2),
        "stolen_cores": round(found.stolen, 2),
    }


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def servers(plan: Plan) -> dict[str, int]:
    """The Kafka broker and PostgreSQL server on this machine, when they can be found."""
    found = {
        "kafka (broker)": listening(int(plan.bootstrap.rpartition(":")[2])),
        "postgres (server)": listening(urlsplit(plan.dsn).port or 5432),
    }
    return {name: pid for name, pid in found.items() if pid is not None}


async def _timed(deploy: Deployment, phase: Phase, rate: float | None, plan: Plan) -> None:
    meter = Meter(deploy.pids(), servers(plan))
    counters = await stage_counters(deploy)
    cpu_before = time.process_time()
    sending = await send(deploy.bootstrap, deploy.topic(INBOUND.name), phase.payloads, rate)
    phase.first_send, phase.last_send = sending.first, sending.last
    phase.sent_at = sending.sent_at
    await wait_done(deploy)
    phase.usage = meter.read()
    phase.machine = meter.machine()
    phase.bench_cpu_s = time.process_time() - cpu_before
    phase.batches = batches(counters, await stage_counters(deploy))


async def _idle(deploy: Deployment, plan: Plan) -> dict[str, Any]:
    meter = Meter(deploy.pids(), servers(plan))
    await asyncio.sleep(IDLE_S)
    cores = {name: round(u.cpu_share, 3) for name, u in meter.read().items()}
    return {"seconds": IDLE_S, "cores": cores, "total_cores": round(sum(cores.values()), 3)}


def _accepted(timeline: Timeline, phase: Phase) -> Iterator[tuple[int, ReportTimes]]:
    """(place in the phase, times) of each report of the phase that was accepted; a
    duplicate is not a report of its own."""
    for place, payload in enumerate(phase.payloads):
        if payload.kind is Kind.DUPLICATE:
            continue
        times = timeline.reports.get(payload.report_id)
        if times is not None and times.status == "accepted":
            yield place, times


def _latencies(timeline: Timeline, phase: Phase) -> dict[str, Any]:
    to_snapshot: list[float] = []
    to_hub: list[float] = []
    sent_to_snapshot: list[float] = []
    snapshot_to_hub: list[float] = []
    for place, times in _accepted(timeline, phase):
        if times.snapshot is not None:
            to_snapshot.append(times.snapshot - times.received)
            sent_to_snapshot.append(times.snapshot - phase.sent_at[place])
        if times.hub is not None:
            to_hub.append(times.hub - times.received)
            # The hub-sync lag alone: the connector's share of receipt -> hub.
            if times.snapshot is not None:
                snapshot_to_hub.append(times.hub - times.snapshot)
    return {
        "receipt_to_snapshot_s": figures.distribution(to_snapshot),
        "receipt_to_hub_s": figures.distribution(to_hub),
        "send_to_snapshot_s": figures.distribution(sent_to_snapshot),
        "snapshot_to_hub_s": figures.distribution(snapshot_to_hub),
    }


def _by_second(timeline: Timeline, phase: Phase) -> list[dict[str, Any]]:
    """Receipt → province snapshot for the reports received in each second of the phase:
    a queue that builds up, or one stall, shows here where a percentile cannot say when.
    Receipt → verdict beside it tells whether the time went before validation's verdict
    was published or after it."""
    seconds: dict[int, list[float]] = {}
    to_verdict: dict[int, list[float]] = {}
    received = [times for _, times in _accepted(timeline, phase) if times.snapshot is not None]
    if not received:
        return []
    start = min(times.received for times in received)
    for times in received:
        assert times.snapshot is not None
        second = int(times.received - start)
        seconds.setdefault(second, []).append(times.snapshot - times.received)
        to_verdict.setdefault(second, []).append(times.verdict - times.received)
    return [
        {
            "second": second,
            **figures.distribution(values),
            "receipt_to_verdict": figures.distribution(to_verdict[second]),
        }
        for second, values in sorted(seconds.items())
    ]


def _done_times(timeline: Timeline, phase: Phase) -> list[float]:
    done = [
        timeline.done(p.report_id)
        for p in phase.payloads
        if p.kind is not Kind.DUPLICATE and p.report_id in timeline.reports
    ]
    done += [t for t in timeline.duplicate_answers if t >= phase.first_send]
    return done


def _checks(timeline: Timeline, sent: Sequence[Payload]) -> dict[str, Any]:
    originals = {p.report_id for p in sent if p.kind is not Kind.DUPLICATE}
    duplicates = sum(1 for p in sent if p.kind is Kind.DUPLICATE)
    return {
        "verdicts_missing": len(originals - timeline.reports.keys()),
        "duplicate_answers": f"{len(timeline.duplicate_answers)}/{duplicates}",
        "snapshots_read": timeline.snapshots,
        "accepted_never_counted": timeline.never_counted,
        "unmatched_snapshots": timeline.unmatched_snapshots,
        "final_snapshots_not_the_fold": timeline.inexact,
    }


async def _timeline(deploy: Deployment) -> Timeline:
    catalog = load_catalog(REPO_ROOT / "catalog")
    read = [
        read_all(deploy.bootstrap, deploy.topic(spec.name))
        for spec in (OUTCOMES, ACCEPTED, AGGREGATES, HUB_SYNC)
    ]
    outcomes, accepted, aggregates, hub_sync = await asyncio.gather(*read)
    return build(catalog, deploy.real_time, outcomes, accepted, aggregates, hub_sync)


async def _replay(deploy: Deployment, reports: int) -> dict[str, Any]:
    topics = [deploy.topic(spec.name) for spec in TOPICS]
    before = await stored(deploy)
    ends_before = await total_end(deploy.bootstrap, topics)
    await asyncio.to_thread(deploy.stop)
    again = replace(
        deploy, group_namespace=f"{deploy.namespace}{REPLAY_GROUPS}", processes={}, ports={}
    )
    began = time.time()
    progress = asyncio.create_task(first_progress(again))
    try:
        await asyncio.to_thread(again.start)
        meter = Meter(again.pids())
        working = await progress
        finished = await wait_done(again)
        usage = meter.read()
    finally:
        progress.cancel()
        await asyncio.to_thread(again.stop)
    after = await stored(again)
    ends_after = await total_end(deploy.bootstrap, topics)
    # From the moment the new groups began to work, not from the processes' start.
    elapsed = finished - working
    return {
        "reports": reports,
        "start_s": round(working - began, 1),
        "elapsed_s": round(elapsed, 2),
        "throughput_per_s": round(figures.rate(reports, elapsed), 1),
        "identical": before == after,
        "snapshots_compared": len(before["snapshots"]),
        "hub_scopes_compared": len(before["hub"]),
        # Only duplicates are answered again: a copy of a report is not stored, so reading
        # it again repeats its answer (an at-least-once answer, same content).
        "messages_published": {
            topic.removeprefix(deploy.namespace): ends_after[topic] - ends_before[topic]
            for topic in topics
            if ends_after[topic] != ends_before[topic]
        },
        "services": _usage(usage, reports),
    }


async def _relay(plan: Plan, namespace: str, payloads: Sequence[Payload]) -> dict[str, Any]:
    """The same payloads through HOPS raw relays, each its own process, RELAY_PASSES times
    over: the figures of the median pass, and each pass's rate."""
    passes = await _relay_passes(plan, f"{namespace}relay.", payloads, RELAY_PASSES)
    return {
        "hops": HOPS,
        "reports": len(payloads),
        **figures.median_pass(passes),
        "passes_per_s": [p["throughput_per_s"] for p in passes],
    }


async def _warm_broker(plan: Plan, namespace: str, payloads: Sequence[Payload]) -> None:
    """One untimed relay pass before anything is timed. A broker just started spends its
    first minutes compiling its hot paths (HotSpot's JIT): measured on a fresh broker, the
    throughput phase cost it 104-111 µs a report, a third to a half of it compiling, against
    34-52 µs once it had run a while; and the relay, timed after the pipeline, always met a
    warm one."""
    await _relay_passes(plan, f"{namespace}warm.", payloads, 1)


async def _relay_passes(
    plan: Plan, prefix: str, payloads: Sequence[Payload], count: int
) -> list[dict[str, Any]]:
    topics = [f"{prefix}hop{i}" for i in range(HOPS + 1)]
    admin = AIOKafkaAdminClient(bootstrap_servers=plan.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 12, 1) for t in topics])
    finally:
        await admin.close()
    relays = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.relay",
            "--bootstrap",
            plan.bootstrap,
            "--source",
            topics[i],
            "--target",
            topics[i + 1],
            "--group",
            f"{prefix}{i}",
            cwd=REPO_ROOT,
            start_new_session=True,
        )
        for i in range(HOPS)
    ]
    try:
        warm = list(payloads[:WARM_UP])
        await send(plan.bootstrap, topics[0], warm, None)
        await _arrived(plan.bootstrap, topics[-1], len(warm))
        passes: list[dict[str, Any]] = []
        for done in range(1, count + 1):
            meter = Meter({f"hop{i}": p.pid for i, p in enumerate(relays)}, servers(plan))
            sending = await send(plan.bootstrap, topics[0], payloads, None)
            await _arrived(plan.bootstrap, topics[-1], len(warm) + done * len(payloads))
            usage = meter.read()
            elapsed = await _last_timestamp(plan.bootstrap, topics[-1]) - sending.first
            passes.append(
                {
                    "elapsed_s": round(elapsed, 2),
                    "throughput_per_s": round(figures.rate(len(payloads), elapsed), 1),
                    "services": _usage(usage, len(payloads)),
                }
            )
    finally:
        for relay in relays:
            relay.terminate()
        for relay in relays:
            await asyncio.wait_for(relay.wait(), 30)
        if not plan.keep:
            await _drop_topics(plan.bootstrap, topics)
    return passes


async def _arrived(bootstrap: str, topic: str, count: int, timeout_s: float = 600.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await total_end(bootstrap, [topic]))[topic] >= count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{count} records did not reach {topic} within {timeout_s} s")


async def _last_timestamp(bootstrap: str, topic: str) -> float:
    records = await read_all(bootstrap, topic)
    return max(float(r.timestamp) / 1000.0 for r in records)


async def _drop_topics(bootstrap: str, topics: Sequence[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(list(topics))
    finally:
        await admin.close()


async def _drop(deploy: Deployment) -> None:
    topics = [deploy.topic(spec.name) for spec in TOPICS]
    topics += [deploy.topic(spec.dlq) for spec in TOPICS if spec.has_dlq]
    await _drop_topics(deploy.bootstrap, topics)
    conn = await asyncpg.connect(deploy.dsn)
    try:
        for service in ("submission", "validation", "aggregation", "connector", "hub_simulator"):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{deploy.schema(service)}" CASCADE')
    finally:
        await conn.close()


def _profile_summary(raws: dict[str, Path]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, raw in raws.items():
        samples, hotspots = profiling.top(raw)
        summary[name] = {
            "samples": samples,
            "self": [
                {
                    "function": h.function,
                    "self": round(h.self_share, 3),
                    "total": round(h.total_share, 3),
                }
                for h in hotspots
            ],
            "own_code": [
                {"function": f, "total": round(share, 3)}
                for f, share in profiling.top_inclusive(raw, "services/")
                + profiling.top_inclusive(raw, "shared/")
            ],
        }
    return summary


async def run(plan: Plan, say: Any = print) -> dict[str, Any]:
    started = datetime.now(UTC)
    result: dict[str, Any] = {
        "mode": plan.mode,
        "started_at": started.isoformat(timespec="seconds"),
        "host": {"cores": os.cpu_count(), "load_before": _load()},
    }
    catalog = load_catalog(REPO_ROOT / "catalog")
    workload = Workload(catalog, NOW, plan.seed)
    warm_up = Phase(workload.take(WARM_UP))
    settle = Phase(workload.take(int(plan.rate * SETTLE_S)))
    steady = Phase(workload.take(int(plan.rate * plan.seconds)))
    burst = Phase(workload.take(plan.flat_out))
    sent = warm_up.payloads + settle.payloads + steady.payloads + burst.payloads
    result["workload"] = {
        "slots": workload.slots,
        "reports": len(sent),
        "kinds": kinds(sent),
        "values_per_report": list(values_per_report(sent)),
    }
    namespace = f"bench{uuid.uuid4().hex[:8]}_"
    deploy = Deployment(
        namespace,
        plan.bootstrap,
        plan.dsn,
        plan.results / "logs" / namespace.rstrip("_"),
        NOW,
        extra_env=plan.settings,
    )
    result["settings"] = dict(plan.settings)
    say(f"bench: namespace {namespace}, {len(sent)} reports prepared; timing the reference work")
    reference_before = reference_work(catalog, sent, NOW)
    try:
        say(f"bench: warming the broker: {len(burst.payloads)} reports through {HOPS} hops")
        await _warm_broker(plan, namespace, burst.payloads)
        say("bench: starting the services")
        try:
            await asyncio.to_thread(deploy.start)
            await _timed(deploy, warm_up, None, plan)
            say(f"bench: idle for {IDLE_S:.0f} s")
            result["idle"] = await _idle(deploy, plan)
            say(f"bench: settling, {len(settle.payloads)} reports at {plan.rate:.0f}/s, untimed")
            await _timed(deploy, settle, plan.rate, plan)
            say(f"bench: latency run, {len(steady.payloads)} reports at {plan.rate:.0f}/s")
            await _timed(deploy, steady, plan.rate, plan)
            say(f"bench: throughput run, {len(burst.payloads)} reports as fast as possible")
            profiler = profiling.Profiler(deploy.pids(), plan.results / "profile")
            if plan.profile:
                profiler.start()
            counting = await statements.reset(plan.dsn)
            try:
                await _timed(deploy, burst, None, plan)
            finally:
                raws = profiler.stop() if plan.profile else {}
            burst_end = time.monotonic()
            by_statement = await statements.top(plan.dsn) if counting else None
            # The limit right after the pipeline, with the services stopped (as they are
            # for the replay's restart): the machine's speed drifts by minutes, and the
            # ratio compares the two rates, so they are measured as close as can be.
            await asyncio.to_thread(deploy.stop)
            say(f"bench: raw relay of {len(burst.payloads)} reports through {HOPS} hops")
            relay_start = time.monotonic()
            result["relay"] = await _relay(plan, namespace, burst.payloads)
            result["relay"]["after_throughput_s"] = round(relay_start - burst_end, 1)
            say("bench: reading the topics back")
            timeline = await _timeline(deploy)
            say(f"bench: replay of {len(sent)} reports under new consumer groups")
            result["replay"] = await _replay(deploy, len(sent))
        finally:
            await asyncio.to_thread(deploy.stop)
    finally:
        if not plan.keep:
            await _drop(deploy)
    result["reference_work_us"] = {
        "before": round(reference_before, 1),
        "after": round(reference_work(catalog, sent, NOW), 1),
    }

    result["latency_run"] = {
        "offered_per_s": plan.rate,
        "duration_s": round(steady.last_send - steady.first_send, 1),
        "sent_per_s": round(
            figures.rate(len(steady.payloads) - 1, steady.last_send - steady.first_send), 1
        ),
        "reports": len(steady.payloads),
        **_latencies(timeline, steady),
        "receipt_to_snapshot_by_second": _by_second(timeline, steady),
        "services": _usage(steady.usage, len(steady.payloads)),
        "bench_process": _bench_usage(steady),
        "machine": _machine(steady),
        "batches": steady.batches,
    }
    done = _done_times(timeline, burst)
    elapsed = max(done) - burst.first_send if done else 0.0
    result["throughput_run"] = {
        "reports": len(burst.payloads),
        "send_s": round(burst.last_send - burst.first_send, 2),
        "elapsed_s": round(elapsed, 2),
        "throughput_per_s": round(figures.rate(len(burst.payloads), elapsed), 1),
        "sustained_per_s": round(figures.middle_rate(done), 1),
        # Reports done in each second from the first send: the ramp, the pace, the tail.
        "done_by_second": figures.per_second(done, burst.first_send),
        **_latencies(timeline, burst),
        "services": _usage(burst.usage, len(burst.payloads)),
        "bench_process": _bench_usage(burst),
        "machine": _machine(burst),
        "batches": burst.batches,
        # None: the server has no pg_stat_statements loaded.
        "postgres_statements": by_statement,
    }
    relay_rate = result["relay"]["throughput_per_s"]
    result["ratio_to_relay"] = (
        round(result["throughput_run"]["throughput_per_s"] / relay_rate, 4) if relay_rate else None
    )
    result["budget"] = figures.budget(result)
    result["checks"] = _checks(timeline, sent)
    if raws:
        result["profile"] = _profile_summary(raws)
    result["host"]["load_after"] = _load()
    result["targets"] = figures.targets(result)
    return result
