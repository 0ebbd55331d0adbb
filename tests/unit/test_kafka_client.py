"""Every Kafka client the services build takes its options from one place, so the
configured deadline of a request reaches each of them, not only the faststream broker; over
TLS (SSL, SASL_SSL) each trusts the configured CA file alone and checks the broker's name,
the faststream broker included."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.security import BaseSecurity, SASLScram512
from pydantic import SecretStr

from devstack.tls import issue
from shared.kafka_client import client_options, producer_options
from shared.runtime import broker_security
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


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return issue(tmp_path_factory.mktemp("tls"), "127.0.0.1").ca


def tls_settings(protocol: str, ca_file: Path) -> KafkaSettings:
    return KafkaSettings(
        security_protocol=protocol,  # type: ignore[arg-type]
        sasl_username="motcua-a",
        sasl_password=SecretStr("a-password"),
        ssl_cafile=ca_file,
    )


def trusts_only(context: ssl.SSLContext, ca_file: Path) -> None:
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    expected = ssl.PEM_cert_to_DER_cert(ca_file.read_text())
    assert context.get_ca_certs(binary_form=True) == [expected]


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_over_tls_every_client_trusts_the_ca_file_alone_and_checks_the_brokers_name(
    protocol: str, ca_file: Path
) -> None:
    options = client_options(tls_settings(protocol, ca_file))
    assert options["security_protocol"] == protocol
    trusts_only(options["ssl_context"], ca_file)
    sasl = {key: value for key, value in options.items() if key.startswith("sasl")}
    if protocol == "SSL":
        assert sasl == {}  # TLS alone: no login
    else:
        assert sasl == {
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "motcua-a",
            "sasl_plain_password": "a-password",
        }


def test_without_tls_no_client_is_given_a_tls_context(ca_file: Path) -> None:
    for protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        assert "ssl_context" not in client_options(tls_settings(protocol, ca_file))


def test_the_faststream_broker_logs_in_over_tls_with_the_same_trust(ca_file: Path) -> None:
    over_tls = broker_security(tls_settings("SASL_SSL", ca_file))
    assert isinstance(over_tls, SASLScram512)
    assert (over_tls.username, over_tls.password) == ("motcua-a", "a-password")
    assert over_tls.use_ssl
    assert over_tls.ssl_context is not None
    trusts_only(over_tls.ssl_context, ca_file)
    tls_only = broker_security(tls_settings("SSL", ca_file))
    assert type(tls_only) is BaseSecurity
    assert tls_only.use_ssl
    assert tls_only.ssl_context is not None
    trusts_only(tls_only.ssl_context, ca_file)
    plaintext = broker_security(tls_settings("SASL_PLAINTEXT", ca_file))
    assert isinstance(plaintext, SASLScram512)
    assert not plaintext.use_ssl


async def test_the_tls_options_are_accepted_by_each_kind_of_client(ca_file: Path) -> None:
    options = client_options(tls_settings("SASL_SSL", ca_file))
    producer = AIOKafkaProducer(**options, **producer_options())
    consumer = AIOKafkaConsumer(**options, group_id=None)
    admin = AIOKafkaAdminClient(**options)
    try:
        assert producer.client._security_protocol == "SASL_SSL"
        assert consumer._client._ssl_context is options["ssl_context"]
        assert admin._client._sasl_mechanism == "SCRAM-SHA-512"
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()
