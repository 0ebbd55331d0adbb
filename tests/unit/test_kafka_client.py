"""Every Kafka client the services build takes its options from one place, so the
configured deadline of a request reaches each of them, not only the faststream broker."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from shared.kafka_client import client_options, producer_options
from shared.settings import KafkaSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"])
def test_every_client_gets_the_configured_request_deadline(protocol: str) -> None:
    kafka = KafkaSettings(
        security_protocol=protocol,  # type: ignore[arg-type]
        sasl_username="u",
        sasl_password=SecretStr("p"),
        request_timeout_ms=12_345,
    )
    assert client_options(kafka)["request_timeout_ms"] == 12_345


async def test_the_options_are_accepted_by_each_kind_of_client() -> None:
    options = client_options(KafkaSettings(request_timeout_ms=12_345))
    producer = AIOKafkaProducer(**options, **producer_options())
    consumer = AIOKafkaConsumer(**options, group_id=None)
    admin = AIOKafkaAdminClient(**options)
    try:
        assert producer.client._request_timeout_ms == 12_345
        assert consumer._client._request_timeout_ms == 12_345
        assert admin._client._request_timeout_ms == 12_345
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()
