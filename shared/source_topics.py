"""Each source's own Kafka topics: their names and their settings.

With sender authentication on, source `s` writes `reports.inbound.v1.s` and reads its
verdicts from `reports.outcomes.v1.s` (`services.submission.kafka_access` binds its
principal to them). Submission creates them; topic provisioning (`services.topics`) finds
them on the cluster by these names and holds them to the same settings as the system's own
topics, since in production they carry every inbound report.

Pure: names and settings only, no client.
"""

from __future__ import annotations

import re

from shared.contracts import INBOUND, OUTCOMES, TopicSpec
from shared.settings import DAY_MS, KafkaSettings, RetentionSection

# A source's name (as `sources create` admits it), bar `dlq`: `<topic>.dlq` is the system
# topic's dead letters, never a source's topic.
_SOURCE = r"(?!dlq$)[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
# The system topics each source has its own copy of.
PER_SOURCE: tuple[TopicSpec, ...] = (INBOUND, OUTCOMES)


def inbound_topic(kafka: KafkaSettings, source: str) -> str:
    return kafka.topic(f"{INBOUND.name}.{source}")


def outcomes_topic(kafka: KafkaSettings, source: str) -> str:
    return kafka.topic(f"{OUTCOMES.name}.{source}")


def _prefix(kafka: KafkaSettings, spec: TopicSpec) -> str:
    # The namespace is escaped: it is a prefix, not a regular expression.
    return re.escape(kafka.topic(spec) + ".")


def inbound_pattern(kafka: KafkaSettings) -> str:
    """Every source's inbound topic, and neither the shared one nor its dead letters."""
    return f"^{_prefix(kafka, INBOUND)}{_SOURCE}$"


def source_topic_pattern(kafka: KafkaSettings) -> str:
    """Every source's inbound and outcome topics, and none of the system's own."""
    prefixes = "|".join(_prefix(kafka, spec) for spec in PER_SOURCE)
    return f"^(?:{prefixes}){_SOURCE}$"


def sender_of(kafka: KafkaSettings, topic: str) -> str | None:
    """The source whose own inbound topic `topic` is, or None."""
    if re.match(inbound_pattern(kafka), topic) is None:
        return None
    return topic[len(kafka.topic(INBOUND.name)) + 1 :]


def source_topic_configs(kafka: KafkaSettings, retention: RetentionSection) -> dict[str, str]:
    """The settings of each source's topics: those of the system's event topics (records
    deleted after the events' retention, the configured `min.insync.replicas`)."""
    configs = {"cleanup.policy": "delete", "retention.ms": str(retention.events_days * DAY_MS)}
    if kafka.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(kafka.min_insync_replicas)
    return configs
