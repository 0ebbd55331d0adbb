"""Every domain metric of baocao, declared once, built against an injected registry.

Names start `baocao_`, use base units (seconds, ratios) and bounded labels only: stage,
regime (catalog codes or `unknown`), period (only the open periods of a catalog regime),
code, status, outcome, channel, topic, group, partition. Never ids. Dashboards and alert
rules in `deploy/` may only use names that exist here (a test checks it). Transport
metrics (`faststream_*`) come from faststream's Prometheus middleware.

Counters whose label values are known in advance are created at zero when the step that
moves them is built (`prepare_*`), so that a rate or an alert sees the first increment
and a dashboard shows 0 rather than "no data".
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.contracts import Channel, DeliveryOutcome, Status

UNKNOWN_REGIME = "unknown"
# Validation's verdicts; `duplicate` is submission's answer, never a verdict.
VERDICT_STATUSES = (Status.ACCEPTED.value, Status.REJECTED.value)
STAGE_OUTCOMES = ("ok", "dead_lettered")

# Receipt to snapshot and to hub acknowledgement: from tens of milliseconds to an outage.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The metrics one service process exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # Per pipeline stage (ingest, validate, aggregate, deliver, ...): a Kafka batch, or
        # for a stage that takes requests (ingest_http) one request, is one batch.
        self.stage_received = Counter(
            "baocao_stage_messages_received_total",
            "Messages a stage took in.",
            ["stage"],
            registry=registry,
        )
        self.stage_processed = Counter(
            "baocao_stage_messages_processed_total",
            "Messages a stage finished, by outcome (ok, dead_lettered).",
            ["stage", "outcome"],
            registry=registry,
        )
        self.stage_failures = Counter(
            "baocao_stage_batch_failures_total",
            "Batches a stage failed to process and left for redelivery (over HTTP: answered "
            "with a server error, for the sender to send again).",
            ["stage"],
            registry=registry,
        )
        self.stage_duration = Histogram(
            "baocao_stage_batch_duration_seconds",
            "Time to process one batch, database commit included.",
            ["stage"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        # Reports.
        self.reports_received = Counter(
            "baocao_reports_received_total",
            "Reports submission stored (duplicates excluded), by regime and channel.",
            ["regime", "channel"],
            registry=registry,
        )
        self.reports_malformed = Counter(
            "baocao_reports_malformed_total",
            "Inputs that were not a report (E100/E150), by channel.",
            ["channel", "code"],
            registry=registry,
        )
        self.senders_refused = Counter(
            "baocao_senders_refused_total",
            "Reports refused before they were stored because of their sender: not "
            "authenticated (E140), not its unit (E141), signature missing or wrong (E142); "
            "and requests over a sender's rate limit (code 429).",
            ["channel", "code"],
            registry=registry,
        )
        self.verdicts = Counter(
            "baocao_report_verdicts_total",
            "Verdicts, by regime and status (accepted, rejected).",
            ["regime", "status"],
            registry=registry,
        )
        self.rejection_issues = Counter(
            "baocao_report_issues_total",
            "Issues found in reports, by regime, code and severity.",
            ["regime", "code", "severity"],
            registry=registry,
        )
        self.late_reports = Counter(
            "baocao_reports_late_total",
            "Accepted reports that arrived after the unit_to_province deadline.",
            ["regime"],
            registry=registry,
        )
        self.duplicates = Counter(
            "baocao_reports_duplicate_total",
            "Reports sent again with a report_id already received.",
            ["channel"],
            registry=registry,
        )
        self.dlq_messages = Counter(
            "baocao_dlq_messages_total",
            "Messages sent to a dead-letter topic, by source topic.",
            ["topic"],
            registry=registry,
        )
        # Aggregation and hub.
        self.snapshots_emitted = Counter(
            "baocao_snapshots_emitted_total",
            "Aggregate snapshot versions emitted.",
            ["regime"],
            registry=registry,
        )
        self.receipt_to_snapshot = Histogram(
            "baocao_receipt_to_snapshot_seconds",
            "From a report's received_at to the snapshot that counts it.",
            ["regime"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.receipt_to_hub = Histogram(
            "baocao_receipt_to_hub_ack_seconds",
            "From the received_at of the newest report in a snapshot to the hub's acknowledgement.",
            ["regime"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.snapshot_to_hub = Histogram(
            "baocao_hub_sync_lag_seconds",
            "From a snapshot's computation to the hub's acknowledgement of it.",
            ["regime"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.hub_deliveries = Counter(
            "baocao_hub_deliveries_total",
            "Delivery attempts to the hub, by outcome (stored, unchanged, stale, refused, failed).",
            ["outcome"],
            registry=registry,
        )
        self.hub_backlog = Gauge(
            "baocao_hub_delivery_backlog",
            "Scopes whose latest version the hub has not acknowledged yet.",
            registry=registry,
        )
        self.hub_parked = Gauge(
            "baocao_hub_parked_scopes",
            "Scopes parked after the hub refused their snapshot (422).",
            registry=registry,
        )
        self.hub_circuit_open = Gauge(
            "baocao_hub_circuit_open",
            "1 while the circuit to the hub is open.",
            registry=registry,
        )
        # Plumbing.
        self.outbox_backlog = Gauge(
            "baocao_outbox_backlog",
            "Messages written to the outbox and not yet acknowledged by Kafka (sampled).",
            registry=registry,
        )
        self.outbox_oldest_age = Gauge(
            "baocao_outbox_oldest_age_seconds",
            "Age of the oldest message waiting in the outbox, 0 when it is empty (sampled).",
            registry=registry,
        )
        self.outbox_published = Counter(
            "baocao_outbox_published_total",
            "Messages relayed from the outbox to Kafka, by topic.",
            ["topic"],
            registry=registry,
        )
        self.published = Counter(
            "baocao_published_total",
            "Messages a stage published itself, acknowledged by Kafka before its database "
            "transaction committed (not through an outbox), by topic.",
            ["topic"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "baocao_consumer_lag_messages",
            "Messages in a partition not yet committed by a consumer group (sampled).",
            ["group", "topic", "partition"],
            registry=registry,
        )
        self.consumer_committed = Gauge(
            "baocao_consumer_committed_offset",
            "The offset a consumer group last committed on a partition (sampled); none "
            "before its first commit.",
            ["group", "topic", "partition"],
            registry=registry,
        )
        # Regimes and their open periods, province scope (sampled by aggregation from the
        # snapshots it stored; DESIGN §4 completeness).
        self.regime_completeness = Gauge(
            "baocao_regime_completeness_ratio",
            "Share of the expected reporting units with an accepted report, province scope.",
            ["regime", "period"],
            registry=registry,
        )
        self.regime_on_time = Gauge(
            "baocao_regime_on_time_ratio",
            "Share of the expected reporting units whose first accepted report was on time.",
            ["regime", "period"],
            registry=registry,
        )
        self.regime_missing_units = Gauge(
            "baocao_regime_missing_units",
            "Expected reporting units without an accepted report, province scope.",
            ["regime", "period"],
            registry=registry,
        )
        self.regime_expected_units = Gauge(
            "baocao_regime_expected_units",
            "Reporting units expected to report, province scope.",
            ["regime", "period"],
            registry=registry,
        )
        self.regime_deadline = Gauge(
            "baocao_regime_deadline_seconds",
            "Seconds until the end of the unit_to_province deadline day; negative after it.",
            ["regime", "period"],
            registry=registry,
        )

    # --- label sets known in advance, created at zero ------------------------------------

    def prepare_stage(self, stage: str) -> None:
        self.stage_received.labels(stage=stage)
        self.stage_failures.labels(stage=stage)
        self.stage_duration.labels(stage=stage)
        for outcome in STAGE_OUTCOMES:
            self.stage_processed.labels(stage=stage, outcome=outcome)

    def prepare_intake(self, regimes: Sequence[str]) -> None:
        for channel in (c.value for c in Channel):
            self.duplicates.labels(channel=channel)
            for code in ("E140", "E141", "E142"):
                self.senders_refused.labels(channel=channel, code=code)
            for regime in (*regimes, UNKNOWN_REGIME):
                self.reports_received.labels(regime=regime, channel=channel)

    def prepare_verdicts(self, regimes: Sequence[str]) -> None:
        for regime in (*regimes, UNKNOWN_REGIME):
            self.late_reports.labels(regime=regime)
            for status in VERDICT_STATUSES:
                self.verdicts.labels(regime=regime, status=status)

    def prepare_rollup(self, regimes: Sequence[str]) -> None:
        for regime in regimes:
            self.snapshots_emitted.labels(regime=regime)
            self.receipt_to_snapshot.labels(regime=regime)

    def prepare_delivery(self, regimes: Sequence[str]) -> None:
        for outcome in (o.value for o in DeliveryOutcome):
            self.hub_deliveries.labels(outcome=outcome)
        for regime in regimes:
            self.receipt_to_hub.labels(regime=regime)
            self.snapshot_to_hub.labels(regime=regime)


class HubSimulatorMetrics:
    """What the national hub simulator exports about the traffic it receives."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "baocao_hubsim_requests_total",
            "Requests to the simulated hub, by endpoint and HTTP status.",
            ["endpoint", "status"],
            registry=registry,
        )
        self.in_progress = Gauge(
            "baocao_hubsim_requests_in_progress",
            "Requests the simulated hub is answering now, by endpoint.",
            ["endpoint"],
            registry=registry,
        )
        self.stored = Counter(
            "baocao_hubsim_snapshots_stored_total",
            "Snapshot versions the simulated hub stored.",
            ["regime"],
            registry=registry,
        )


@contextmanager
def stage_work(metrics: Metrics, stage: str) -> Iterator[None]:
    """One message a stage takes outside a Kafka batch (an HTTP request), counted as a
    batch of one: received, then processed (ok) and timed, or failed."""
    metrics.stage_received.labels(stage=stage).inc()
    started = time.perf_counter()
    try:
        yield
    except Exception:
        metrics.stage_failures.labels(stage=stage).inc()
        raise
    metrics.stage_duration.labels(stage=stage).observe(time.perf_counter() - started)
    metrics.stage_processed.labels(stage=stage, outcome="ok").inc()
