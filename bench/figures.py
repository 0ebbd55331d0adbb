"""The figures of a run: percentiles, rates, the targets, and the table printed at the end.

Pure: numbers in, numbers and text out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MB = 1024 * 1024

# The goals the pipeline is held to on a 2-core machine with Kafka and PostgreSQL on it.
TARGET_THROUGHPUT = 3000.0  # reports/s end to end, sustained
TARGET_RATIO = 0.20  # of the raw relay's figure in the same run
TARGET_P99_S = 1.0  # receipt to province snapshot, at 1,000 reports/s offered
TARGET_P99_RATE = 1000.0  # the rate that latency target is for
RATE_HELD = 0.95  # share of the offered rate the generator must have kept up for it to count
TARGET_RSS_MB = 250.0  # peak resident memory of each service under that load
TARGET_REPLAY = 5000.0  # reports/s replayed from the start of the topics

# Topics every report is read from on its way: reports.inbound.v1 and reports.outcomes.v1
# (submission), reports.received.v1 (validation), reports.accepted.v1 (aggregation).
# aggregates.v1 and hub.sync.v1 carry a message per snapshot, not per report.
PIPELINE_HOPS_PER_REPORT = 4


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..100): a value that was observed."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def middle_rate(done: Sequence[float], share: float = 0.8) -> float:
    """Completions per second between the (1-share)/2 and (1+share)/2 quantiles of the
    completion times: the sustained rate, without the start and the tail."""
    if len(done) < 10:
        return 0.0
    ordered = sorted(done)
    low = ordered[int(len(ordered) * (1 - share) / 2)]
    high = ordered[int(len(ordered) * (1 + share) / 2) - 1]
    return rate(int(len(ordered) * share), high - low)


def median_pass(passes: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The pass of middle rate (`throughput_per_s`); of an even number, the faster of the
    two in the middle, so that a slow pass never lowers the bar."""
    if not passes:
        raise ValueError("no pass to choose from")
    return sorted(passes, key=lambda p: p["throughput_per_s"])[len(passes) // 2]


def per_second(times: Sequence[float], start: float) -> list[int]:
    """How many of `times` fall in each whole second from `start` (earlier ones in the
    first)."""
    if not times:
        return []
    counts = [0] * (max(0, math.floor(max(times) - start)) + 1)
    for t in times:
        counts[max(0, math.floor(t - start))] += 1
    return counts


def targets(result: Mapping[str, Any]) -> dict[str, bool | None]:
    latency = result.get("latency_run") or {}
    throughput = result.get("throughput_run") or {}
    replay = result.get("replay") or {}
    p99 = (latency.get("receipt_to_snapshot_s") or {}).get("p99")
    # A latency measured while the generator fell behind was measured under less load.
    loaded = (
        latency.get("offered_per_s", 0.0) >= TARGET_P99_RATE
        and (latency.get("sent_per_s") or 0.0) >= RATE_HELD * latency["offered_per_s"]
    )
    rss = [u["peak_rss_mb"] for u in (latency.get("services") or {}).values() if u["peak_rss_mb"]]
    return {
        "throughput_at_least_3000_per_s": (
            throughput["throughput_per_s"] >= TARGET_THROUGHPUT if throughput else None
        ),
        "at_least_20_percent_of_relay": (
            result["ratio_to_relay"] >= TARGET_RATIO
            if result.get("ratio_to_relay") is not None
            else None
        ),
        "p99_receipt_to_snapshot_at_most_1_s": (
            p99 <= TARGET_P99_S and loaded if p99 is not None else None
        ),
        "peak_rss_at_most_250_mb": max(rss) <= TARGET_RSS_MB if rss else None,
        "replay_identical_and_at_least_5000_per_s": (
            replay["identical"] and replay["throughput_per_s"] >= TARGET_REPLAY if replay else None
        ),
    }


def budget(result: Mapping[str, Any]) -> dict[str, int] | None:
    """CPU a report that the throughput target leaves on this machine, against what the
    same run spent: the relay's hops moving the payloads with no work (client and broker),
    the pipeline, and the load generator, all on the same cores."""
    throughput = result.get("throughput_run")
    relay = result.get("relay")
    if not throughput or not relay or not relay.get("hops"):
        return None
    relay_us = sum(u.get("cpu_us_per_report", 0) for u in relay["services"].values())
    per_hop = relay_us / relay["hops"]
    return {
        "allowed_us_per_report": round(result["host"]["cores"] * 1e6 / TARGET_THROUGHPUT),
        "relay_us_per_hop": round(per_hop),
        "pipeline_hops_per_report": PIPELINE_HOPS_PER_REPORT,
        "hops_alone_us_per_report": round(per_hop * PIPELINE_HOPS_PER_REPORT),
        "pipeline_us_per_report": sum(
            u.get("cpu_us_per_report", 0) for u in throughput["services"].values()
        ),
        "load_generator_us_per_report": (throughput.get("bench_process") or {}).get(
            "cpu_us_per_report", 0
        ),
    }


def _budget_lines(found: Mapping[str, int] | None, cores: int) -> list[str]:
    if not found:
        return []
    return [
        "",
        f"CPU a report: {TARGET_THROUGHPUT:.0f}/s on {cores} cores leaves "
        f"{found['allowed_us_per_report']} us in all; the relay took "
        f"{found['relay_us_per_hop']} us a hop with no work (client and broker), so the "
        f"pipeline's {found['pipeline_hops_per_report']} hops a report alone take about "
        f"{found['hops_alone_us_per_report']} us; the pipeline took "
        f"{found['pipeline_us_per_report']} us, the load generator "
        f"{found['load_generator_us_per_report']} us more",
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _latency_line(label: str, found: Mapping[str, Any] | None) -> str:
    if not found or not found.get("count"):
        return f"  {label:<28} (none observed)"
    return (
        f"  {label:<28} p50 {_ms(found['p50']):>8}  p95 {_ms(found['p95']):>8}  "
        f"p99 {_ms(found['p99']):>8}  max {_ms(found['max']):>8}  ({found['count']} reports)"
    )


def _services(services: Mapping[str, Mapping[str, Any]]) -> list[str]:
    lines = [f"  {'process':<18} {'CPU (cores)':>11} {'CPU/report':>11} {'peak RSS':>10}"]
    for name, usage in services.items():
        rss = f"{usage['peak_rss_mb']:>7.0f} MB" if usage["peak_rss_mb"] else f"{'-':>10}"
        per_report = f"{usage.get('cpu_us_per_report', 0):>8} us"
        line = f"  {name:<18} {usage['cpu_share']:>11.2f} {per_report:>11} {rss}"
        if usage.get("jit_share"):
            line += f"  {usage['jit_share']:.0%} of it the JVM compiling its own code (JIT)"
        lines.append(line)
    total = sum(u.get("cpu_us_per_report", 0) for u in services.values())
    lines.append(f"  {'all':<18} {'':>11} {total:>8} us")
    return lines


def _bench_process(usage: Mapping[str, Any] | None) -> list[str]:
    if not usage:
        return []
    return [
        f"  {'(bench process)':<18} {usage['cpu_share']:>11.2f} "
        f"{usage['cpu_us_per_report']:>8} us  load generator and probes, not in 'all'"
    ]


def _machine(found: Mapping[str, float] | None) -> list[str]:
    if not found:
        return []
    return [
        f"  machine: {found['busy_cores']:.2f} cores busy, {found['idle_cores']:.2f} idle, "
        f"{found['stolen_cores']:.2f} stolen by the hypervisor"
    ]


def _batches(batches: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    if not batches:
        return []
    parts = [
        f"{stage} {b['batches']} x {b['mean_records']:.0f} in {b['mean_ms']:.0f} ms"
        for stage, b in batches.items()
    ]
    return ["  batches: " + "; ".join(parts)]


STATEMENTS_SHOWN = 5
STATEMENT_CHARS = 72


def _statements(throughput: Mapping[str, Any]) -> list[str]:
    if "postgres_statements" not in throughput:
        return []
    found = throughput["postgres_statements"]
    if found is None:
        return ["  postgres by statement: pg_stat_statements is not loaded on the server"]
    lines = ["  postgres by statement (server wall time, share, calls, per row):"]
    for s in found[:STATEMENTS_SHOWN]:
        per_row = f"{s['us_per_row']:.1f} us/row" if s["us_per_row"] is not None else "-"
        lines.append(
            f"    {s['share']:>5.1%} {s['total_ms']:>6} ms {s['calls']:>5} calls {per_row:>13}  "
            f"{s['statement'][:STATEMENT_CHARS]}"
        )
    return lines


def table(result: Mapping[str, Any]) -> str:
    """The run's figures as text, one section per measurement."""
    workload = result["workload"]
    fewest, most = workload["values_per_report"]
    lines = [
        f"baocao bench ({result['mode']}), {result['started_at']}, "
        f"{result['host']['cores']} cores, load average {result['host']['load_before']} "
        f"before, {result['host']['load_after']} after",
        f"workload: {workload['reports']} reports over {workload['slots']} open "
        f"(regime, period, unit) slots, {fewest}-{most} values each, kinds {workload['kinds']}",
    ]
    reference = result.get("reference_work_us")
    if reference:
        lines.append(
            "reference work (parsing and judging a report in the bench's process, idle "
            f"machine): {reference['before']:.0f} us before the run, "
            f"{reference['after']:.0f} us after"
        )
    if result.get("settings"):
        lines.append("settings: " + ", ".join(f"{k}={v}" for k, v in result["settings"].items()))
    idle = result.get("idle")
    if idle:
        each = ", ".join(f"{name} {cores:.2f}" for name, cores in idle["cores"].items())
        lines += [
            "",
            f"idle, no reports, for {idle['seconds']:.0f} s: {idle['total_cores']:.2f} cores "
            f"in all ({each})",
        ]
    latency = result.get("latency_run")
    if latency:
        lines += [
            "",
            f"at {latency['offered_per_s']:.0f} reports/s offered (sent at "
            f"{latency.get('sent_per_s') or 0:.0f}/s) for "
            f"{latency['duration_s']:.0f} s ({latency['reports']} reports):",
            _latency_line("receipt -> province snapshot", latency["receipt_to_snapshot_s"]),
            _latency_line("receipt -> hub acknowledgement", latency["receipt_to_hub_s"]),
            _latency_line("province snapshot -> hub ack", latency.get("snapshot_to_hub_s")),
            _latency_line("send -> province snapshot", latency.get("send_to_snapshot_s")),
            *_services(latency["services"]),
            *_bench_process(latency.get("bench_process")),
            *_machine(latency.get("machine")),
            *_batches(latency.get("batches")),
        ]
    throughput = result.get("throughput_run")
    if throughput:
        lines += [
            "",
            f"flat out ({throughput['reports']} reports sent in {throughput['send_s']:.1f} s):",
            f"  end to end                   {throughput['throughput_per_s']:>8.0f} reports/s "
            f"(all done in {throughput['elapsed_s']:.1f} s; middle 80%: "
            f"{throughput['sustained_per_s']:.0f}/s)",
            _latency_line("receipt -> province snapshot", throughput["receipt_to_snapshot_s"]),
            *_services(throughput["services"]),
            *_bench_process(throughput.get("bench_process")),
            *_machine(throughput.get("machine")),
            *_batches(throughput.get("batches")),
            *_statements(throughput),
        ]
    relay = result.get("relay")
    if relay:
        lines += [
            "",
            f"raw aiokafka relay, {relay['hops']} hops, same payloads: "
            f"{relay['throughput_per_s']:.0f} reports/s ({relay['elapsed_s']:.1f} s)"
            + _passes(relay.get("passes_per_s", []))
            + _after(relay.get("after_throughput_s")),
            *_services(relay["services"]),
        ]
        if result.get("ratio_to_relay") is not None:
            lines.append(f"  pipeline / relay             {result['ratio_to_relay']:.1%}")
    lines += _budget_lines(result.get("budget"), result["host"]["cores"])
    replay = result.get("replay")
    if replay:
        lines += [
            "",
            f"replay of {replay['reports']} reports from the start of the topics "
            f"(new consumer groups, same database): {replay['throughput_per_s']:.0f} reports/s "
            f"({replay['elapsed_s']:.1f} s); snapshots identical: {replay['identical']}, "
            f"messages published: {replay['messages_published']}",
        ]
    checks = result.get("checks") or {}
    lines += [
        "",
        "checks: "
        + ", ".join(
            f"{name} {value}" for name, value in checks.items() if not isinstance(value, list)
        ),
    ]
    for name, value in checks.items():
        if isinstance(value, list) and value:
            lines.append(f"  {name}: {value[:10]}")
    lines += ["", "targets:"]
    for name, met in (result.get("targets") or {}).items():
        mark = "n/a" if met is None else ("met" if met else "NOT MET")
        lines.append(f"  {name:<44} {mark}")
    return "\n".join(lines)


def _after(seconds: float | None) -> str:
    return "" if seconds is None else f"; started {seconds:.0f} s after the flat-out run"


def _passes(rates: Sequence[float]) -> str:
    if len(rates) < 2:
        return ""
    return f", the median of {len(rates)} passes: " + ", ".join(f"{r:.0f}" for r in rates)
