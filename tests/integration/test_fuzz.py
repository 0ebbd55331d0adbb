"""Thousands of random inputs through the real inbound topic and HTTP endpoint.

Proves, with submission and validation running on the real servers and one fixed seed
(SEED: the same inputs every run): random byte strings, random JSON documents and
mutated reports never crash a service (no batch fails, nothing is dead-lettered for
raising, no HTTP answer is a 5xx); every input sent on Kafka is answered on
reports.outcomes.v1 or dead-lettered on reports.inbound.v1.dlq; every report taken over
HTTP gets a verdict; both consumer groups commit to the end of their partitions (no
partition is stuck behind a poison message); and the valid reports sent between the
random inputs, on both channels, are all accepted without an issue.
"""

from __future__ import annotations

import json
import re
from random import Random

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from shared import codec
from shared.contracts import INBOUND, OUTCOMES, RECEIVED, Outcome, Status
from tests import factories, noise
from tests.harness import TopicReader, eventually
from tests.integration.validation_stack import Headers, front, produce_with_headers

SEED = 20260316
KAFKA_INPUTS = 2400
HTTP_INPUTS = 600
VALID_EVERY = 40  # one valid report among every 40 inputs
ANSWERS = {200, 202, 400, 413, 422}
# Senders' clients add headers of their own: none, a JSON content-type (faststream then
# parses the body itself), a null value, bytes that are not UTF-8.
HEADERS: tuple[Headers, ...] = (
    [],
    [],
    [("content-type", b"application/json")],
    [("content-type", b"text/plain"), ("trace", None)],
    [("binary", b"\xff\x00\xfe")],
)
REPORT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")

# Random inputs start from reports of these units; valid reports use other units, so a
# random input that happens to be a valid report never makes a valid one stale.
NOISE_BASES = (
    {"unit": "TB.TT.N01"},
    {"unit": "TB.TH.N02"},
    {"regime": "KTXH-M", "period": "2026-M03", "unit": "TB.VT.N01"},
    {"regime": "NVCP-S", "period": "2026-S1", "unit": "TB.VP"},
)
KAFKA_SLOTS = (
    {"unit": "TB.DH.N01"},
    {"unit": "TB.HH.N02"},
    {"regime": "KTXH-M", "period": "2026-M03", "unit": "TB.DH.N02"},
    {"regime": "NVCP-S", "period": "2026-S1", "unit": "TB.STC"},
)
HTTP_SLOTS = (
    {"unit": "TB.KX.N01"},
    {"regime": "KTXH-M", "period": "2026-M03", "unit": "TB.QP.N02"},
    {"regime": "NVCP-S", "period": "2026-S1", "unit": "TB.SNV"},
)
VALUES = {
    "KSTT-TTHC": factories.KSTT_VALUES,
    "KTXH-M": factories.KTXH_VALUES,
    "NVCP-S": factories.NVCP_VALUES,
}


def valid(slot: dict[str, str], revision: int) -> bytes:
    values = VALUES[slot.get("regime", "KSTT-TTHC")]
    return factories.report_json(**slot, revision=revision, values=dict(values))


class Plan:
    """What one channel sends, in order, and what must come of it."""

    def __init__(self, rng: Random, prefix: str, count: int, slots: tuple[dict[str, str], ...]):
        bases = [json.loads(valid(b, 1)) for b in NOISE_BASES]
        revisions = dict.fromkeys(range(len(slots)), 0)
        self.inputs: list[tuple[bytes, bytes]] = []  # (kafka key, value)
        self.valid_ids: list[str] = []
        self.noise_ids: dict[bytes, str | None] = {}  # key → report id an answer would name
        self.headers: dict[bytes, Headers] = {}
        for i in range(count):
            if i % VALID_EVERY == VALID_EVERY // 2:
                n = len(self.valid_ids) % len(slots)
                revisions[n] += 1
                raw = valid(slots[n], revisions[n])
                self.valid_ids.append(json.loads(raw)["report_id"])
                # One key per slot: one partition, so its revisions arrive in order.
                self.inputs.append((f"{prefix}-slot-{n}".encode(), raw))
                continue
            key = f"{prefix}-{i}".encode()
            base = dict(rng.choice(bases), report_id=key.decode())
            raw = noise.any_input(rng, base)
            self.inputs.append((key, raw))
            self.headers[key] = rng.choice(HEADERS)
            self.noise_ids[key] = _named_id(raw)


def _named_id(raw: bytes) -> str | None:
    """The report id an outcome for `raw` could name (None when it names none)."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    found = document.get("report_id") if isinstance(document, dict) else None
    return found if isinstance(found, str) and REPORT_ID.match(found) else None


async def committed_to_the_end(bootstrap: str, group: str, topic: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await consumer.start()
        (described,) = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await consumer.stop()
        await admin.close()
    # A partition that never held a record has nothing to commit.
    position = {tp: committed[tp].offset if tp in committed else 0 for tp in partitions}
    return bool(partitions) and all(position[tp] == ends[tp] for tp in partitions)


def failures(metrics_text: str) -> dict[str, float]:
    """Batches that raised, and records dead-lettered for raising, by stage."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "baocao_stage_batch_failures_total":
                found[f"failed {sample.labels['stage']}"] = sample.value
            dead = sample.labels.get("outcome") == "dead_lettered"
            if sample.name == "baocao_stage_messages_processed_total" and dead:
                found[f"dead-lettered {sample.labels['stage']}"] = sample.value
    return {k: v for k, v in found.items() if v}


@pytest.mark.timeout(300)
async def test_random_inputs_are_all_answered_and_never_block_valid_reports(
    namespace: str, kafka_bootstrap: str, postgres_dsn: str
) -> None:
    rng = Random(SEED)
    on_kafka = Plan(rng, "kafka", KAFKA_INPUTS, KAFKA_SLOTS)
    over_http = Plan(rng, "http", HTTP_INPUTS, HTTP_SLOTS)
    async with front(namespace, kafka_bootstrap, postgres_dsn) as sender:
        await produce_with_headers(
            kafka_bootstrap,
            sender.topic(INBOUND),
            [(key, raw, on_kafka.headers.get(key, [])) for key, raw in on_kafka.inputs],
        )
        statuses: dict[bytes, int] = {}
        taken: list[str] = []
        for key, raw in over_http.inputs:
            answer = await sender.http.post("/v1/reports", content=raw)
            statuses[key] = answer.status_code
            if answer.status_code == 202:
                taken.append(answer.json()["report_id"])
        assert set(statuses.values()) <= ANSWERS, sorted(set(statuses.values()) - ANSWERS)

        async with (
            TopicReader(kafka_bootstrap, sender.topic(OUTCOMES)) as outcomes,
            TopicReader(kafka_bootstrap, sender.settings.kafka.dlq(INBOUND)) as dead,
        ):

            async def everything_answered() -> dict[str, list[Outcome]] | None:
                await dead.poll()
                verdicts: dict[str, list[Outcome]] = {}
                for record in await outcomes.poll():
                    outcome = codec.decode(Outcome, record.value)
                    verdicts.setdefault(outcome.report_id, []).append(outcome)
                dead_keys = {r.key for r in dead.records}
                unanswered = [
                    key
                    for key, report_id in on_kafka.noise_ids.items()
                    if key not in dead_keys and report_id not in verdicts
                ]
                waiting = [i for i in [*on_kafka.valid_ids, *taken] if i not in verdicts]
                return verdicts if not unanswered and not waiting else None

            verdicts = await eventually(everything_answered, timeout=200, interval=1.0)
            dead_letters = len(dead.records)

        group = sender.settings.kafka.group
        consumed = ((INBOUND, "submission"), (RECEIVED, "validation"))
        for spec, service in consumed:
            topic = sender.topic(spec)

            async def moved(topic: str = topic, service: str = service) -> bool:
                return await committed_to_the_end(kafka_bootstrap, group(service), topic)

            await eventually(moved, timeout=60, interval=0.5)
        submission_metrics = (await sender.http.get("/metrics")).text
        validation_metrics = (await sender.validation.get("/metrics")).text
        async with TopicReader(
            kafka_bootstrap, sender.settings.kafka.dlq(RECEIVED)
        ) as validation_dlq:
            await validation_dlq.poll()
            validation_dead = len(validation_dlq.records)

    assert failures(submission_metrics) == {}
    assert failures(validation_metrics) == {}
    assert validation_dead == 0  # submission forwards only reports
    assert dead_letters > KAFKA_INPUTS // 2  # most random inputs are not reports at all
    for report_id in [*on_kafka.valid_ids, *over_http.valid_ids]:
        (verdict,) = verdicts[report_id]
        assert verdict.status is Status.ACCEPTED, verdict.issues
        assert verdict.issues == ()
    assert len(on_kafka.valid_ids) == KAFKA_INPUTS // VALID_EVERY
    assert set(over_http.valid_ids) <= set(taken)
