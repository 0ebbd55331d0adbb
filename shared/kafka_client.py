"""Connection options shared by every Kafka client the services build.

Every client (the broker's, the outbox producer, admin and lag clients) takes the same
deadline per request, `request_timeout_ms`: aiokafka's own default (40 s) would otherwise
hold an admin call or a lag sample longer than the settings say.

Producers are idempotent with `acks=all` (aiokafka defaults to `acks=1`, which loses a
message when the leader fails before replicating it).
"""

from __future__ import annotations

import ssl
from typing import Any, Literal, TypedDict

from shared.settings import KafkaSettings


def client_options(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = (
            kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        )
    return options


def producer_options() -> dict[str, Any]:
    # Record batches of up to 256 KiB (aiokafka's default is 16 KiB): a stage relays
    # hundreds of messages at once, and each batch is one unit of work for the broker.
    return {"acks": "all", "enable_idempotence": True, "linger_ms": 2, "max_batch_size": 262144}


class ConsumerOptions(TypedDict):
    auto_offset_reset: Literal["earliest"]
    max_records: int
    batch_timeout_ms: int
    max_poll_interval_ms: int
    session_timeout_ms: int
    fetch_min_bytes: int
    fetch_max_wait_ms: int


def consumer_options(kafka: KafkaSettings) -> ConsumerOptions:
    """A new consumer group starts from the beginning: nothing published is skipped."""
    return {
        "auto_offset_reset": "earliest",
        "max_records": kafka.batch_max_records,
        "batch_timeout_ms": kafka.batch_timeout_ms,
        "max_poll_interval_ms": kafka.max_poll_interval_ms,
        "session_timeout_ms": kafka.session_timeout_ms,
        "fetch_min_bytes": kafka.fetch_min_bytes,
        "fetch_max_wait_ms": kafka.fetch_max_wait_ms,
    }
